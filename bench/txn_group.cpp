// Group `txn` of mktl_bench: committed single-row transactions through the
// real `markd --mkio`: a record item log_add whose op set inserts one row
// into the table log, with 1 and with 64 transactions in flight. The
// baseline is a raw SQLite loop in this process doing the same inserts (the
// same table, the same INSERT and SELECT of the new row by its rowid that
// the daemon's writer prepares, the same values), with the same durability (WAL,
// synchronous=FULL: one fsync per COMMIT), on a file in the same directory,
// in batches of the size the daemon's writer made in the slice just before
// (its stats, GET {"stats": true}: transactions per commit).
#include "txn_group.hpp"

#include "bench_util.hpp"

#include <mktl/mktl.hpp>

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

namespace bench::txn {

namespace {

namespace fs = std::filesystem;

// The daemon's configuration, mkio-shaped; the database sits next to it.
constexpr const char* kTxnConfig = R"({
  "db_path": "txn.sqlite3",
  "tables": {
    "log": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "t": "REAL NOT NULL", "v": "INTEGER NOT NULL"}}
  },
  "services": {
    "log": {"type": "transaction", "description": "benchmark: one row per transaction",
            "ops": {"add": [{"table": "log", "op_type": "insert", "fields": ["t", "v"]}]}}
  }
})";

// The table as the daemon creates it (columns in name order), and the
// statements its writer prepares for the op set: the insert, and the read
// of the new row that makes the transaction's reply.
constexpr const char* kTxnTable =
    "CREATE TABLE IF NOT EXISTS \"log\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"t\" REAL NOT NULL, "
    "\"v\" INTEGER NOT NULL)";
constexpr const char* kTxnInsert = "INSERT INTO \"log\" (\"t\", \"v\") VALUES (?, ?)";
constexpr const char* kTxnReadBack = "SELECT * FROM \"log\" WHERE rowid = ?";

// The values of the n-th transaction, the same on both sides.
double txn_t(long n) { return 1.8e9 + static_cast<double>(n) * 1e-3; }

// The raw SQLite loop (the baseline): sqlite3 alone, no mktl code.
class RawSqlite {
 public:
  explicit RawSqlite(const std::string& path) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) fail("open " + path);
    if (query_text("PRAGMA journal_mode=WAL") != "wal") fail("WAL journal mode");
    if (sqlite3_exec(db_, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr) != SQLITE_OK) fail("synchronous=FULL");
    if (sqlite3_exec(db_, kTxnTable, nullptr, nullptr, nullptr) != SQLITE_OK) fail("create table");
    begin_ = prepare("BEGIN IMMEDIATE");
    commit_ = prepare("COMMIT");
    insert_ = prepare(kTxnInsert);
    read_back_ = prepare(kTxnReadBack);
  }
  ~RawSqlite() {
    for (auto* s : {begin_, commit_, insert_, read_back_}) sqlite3_finalize(s);
    sqlite3_close(db_);
  }
  RawSqlite(const RawSqlite&) = delete;
  RawSqlite& operator=(const RawSqlite&) = delete;

  // Inserts for `duration` seconds in COMMITs of `per_commit` rows on average
  // (sizes alternate, e.g. 63 and 64, so that the mean is exact), numbering
  // the values from `n`; returns the rows committed.
  long run(double per_commit, double duration, long& n) {
    per_commit = std::max(per_commit, 1.0);
    long rows = 0, batches = 0;
    auto start = Clock::now();
    do {
      long size = static_cast<long>(std::floor((batches + 1) * per_commit)) -
                  static_cast<long>(std::floor(batches * per_commit));
      ++batches;
      step_done(begin_, "BEGIN");
      for (long i = 0; i < size; ++i, ++n) {
        sqlite3_bind_double(insert_, 1, txn_t(n));
        sqlite3_bind_int64(insert_, 2, n);
        int rc = sqlite3_step(insert_);
        sqlite3_reset(insert_);
        if (rc != SQLITE_DONE) fail("INSERT");
        sqlite3_bind_int64(read_back_, 1, sqlite3_last_insert_rowid(db_));
        while ((rc = sqlite3_step(read_back_)) == SQLITE_ROW) {  // the new row, read as the daemon reads it
          (void)sqlite3_column_int64(read_back_, 0);
          (void)sqlite3_column_double(read_back_, 1);
          (void)sqlite3_column_int64(read_back_, 2);
        }
        sqlite3_reset(read_back_);
        if (rc != SQLITE_DONE) fail("SELECT of the new row");
      }
      step_done(commit_, "COMMIT");
      rows += size;
    } while (seconds_since(start) < duration);
    return rows;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("raw SQLite loop: " + what + ": " + (db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3_stmt* prepare(const char* text) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, text, -1, &stmt, nullptr) != SQLITE_OK) fail(std::string("prepare ") + text);
    return stmt;
  }
  std::string query_text(const char* text) {
    sqlite3_stmt* stmt = prepare(text);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return out;
  }
  void step_done(sqlite3_stmt* stmt, const char* what) {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) fail(what);
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt *begin_ = nullptr, *commit_ = nullptr, *insert_ = nullptr, *read_back_ = nullptr;
};

// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Wakes every CPU every 100 µs while it exists: one thread pinned to each
// CPU, sleeping 100 µs at a time. On a VM whose idle vCPUs halt (this
// benchmark's machines), an I/O completion that finds its vCPU halted waits
// for the next timer tick, so an fsync by a lone thread takes 4 ms instead of
// 0.2 ms, while a process with other threads at work (the daemon) rarely
// waits: the comparison would measure the VM. Spinning threads (SCHED_IDLE)
// would keep the CPUs awake too, but they slowed the daemon's thread
// hand-offs and made the raw loop erratic; these ticks cost a few percent of
// a CPU and leave at most 100 µs of the wait.
class WakeCpus {
 public:
  WakeCpus() {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    tids_.resize(n);
    for (unsigned i = 0; i < n; ++i)
      threads_.emplace_back([i, this](std::stop_token stop) {
        tids_[i] = static_cast<pid_t>(gettid());
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(i, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
        timespec tick{0, 100'000};
        while (!stop.stop_requested()) nanosleep(&tick, nullptr);
      });
  }
  // Its threads, to leave out of the client's CPU time (each has set its id
  // by the time the first transaction completes).
  const std::vector<pid_t>& tids() const { return tids_; }

 private:
  std::vector<pid_t> tids_;
  std::vector<std::jthread> threads_;
};

struct TxnRun {
  long completed = 0;  // REPs received within the window
  double seconds = 0;
  std::vector<double> latency_ms;  // of each of those, SET sent to REP received
};

// `depth` transactions in flight on `key` for `duration` seconds: set_then
// handlers that each issue the next, as a client pipelining transactions
// would; then the ones in flight drain. Values are numbered from `n`.
TxnRun txn_pipeline(mktl::Client& client, const std::string& key, int depth, double duration, std::atomic<long>& n) {
  TxnRun run;
  std::mutex m;
  std::condition_variable drained, stopped;
  std::atomic<bool> stop{false};
  int outstanding = 0;  // under m
  std::exception_ptr error;
  std::function<void()> issue = [&] {
    {
      std::lock_guard lock(m);
      ++outstanding;
    }
    long i = n++;
    auto sent = Clock::now();
    client.set_then(key, mktl::Reading(mktl::Json{{"t", txn_t(i)}, {"v", i}}), [&, sent](std::exception_ptr e) {
      {
        std::lock_guard lock(m);
        if (e) {
          if (!error) error = e;
          stop = true;
          stopped.notify_all();
        } else if (!stop.load()) {
          ++run.completed;
          run.latency_ms.push_back(seconds_since(sent) * 1e3);
        }
      }
      if (!stop.load()) issue();
      std::lock_guard lock(m);
      if (--outstanding == 0) drained.notify_all();
    });
  };
  auto start = Clock::now();
  for (int i = 0; i < depth; ++i) issue();
  std::unique_lock lock(m);
  // A wait, not a polling loop: on a VM, a thread that keeps waking a CPU
  // makes fsyncs return sooner (see WakeCpus), and the raw loop has no such help.
  stopped.wait_until(lock, start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration)),
                     [&] { return stop.load(); });
  stop = true;  // no completion is counted after this
  run.seconds = seconds_since(start);
  if (!drained.wait_for(lock, std::chrono::seconds(30), [&] { return outstanding == 0; }))
    throw std::runtime_error("transactions: the daemon did not answer every transaction within 30 s");
  if (error) std::rethrow_exception(error);
  return run;
}

}  // namespace

std::vector<Series> run(const Settings& o) {
  const std::string what_raw1 = "raw SQLite loop, 1 insert per COMMIT (WAL, synchronous=FULL)";
  const std::string what_txn1 = "mktl transactions, 1 in flight (`markd --mkio`, REP after COMMIT)";
  const std::string what_raw64 = "raw SQLite loop, inserts per COMMIT as the daemon batched them";
  const std::string what_txn64 = "mktl transactions, 64 in flight";
  struct Depth {
    Depth(int depth_in, std::string raw_in, std::string txn_in, std::string raw_what_in, std::string txn_what_in)
        : depth(depth_in), raw(std::move(raw_in)), txn(std::move(txn_in)), raw_what(std::move(raw_what_in)),
          txn_what(std::move(txn_what_in)) {}
    int depth;
    std::string raw, txn, raw_what, txn_what;
    // Per rep, summed over its slices.
    long raw_rows = 0, txn_done = 0;
    double raw_seconds = 0, txn_seconds = 0, transactions = 0, commits = 0;
    // CPU time: markd's threads and the client's during the daemon's runs,
    // the raw loop's thread during its own.
    double daemon_cpu = 0, client_cpu = 0, raw_cpu = 0;
    std::vector<double> latency_ms;
  };
  std::vector<Depth> depths;
  depths.emplace_back(1, "raw_txn1", "mktl_txn1", what_raw1, what_txn1);
  depths.emplace_back(64, "raw_txn64", "mktl_txn64", what_raw64, what_txn64);
  std::vector<Series> out;
  for (auto& d : depths) {  // table order
    row_of(out, d.raw, d.raw_what, Unit::rate);
    row_of(out, d.txn, d.txn_what, Unit::rate);
    row_of(out, d.txn + "_batch", "… transactions per COMMIT (mean, daemon's stats)", Unit::number);
    row_of(out, d.txn + "_p50", "… latency seen by the client, median", Unit::ms);
    row_of(out, d.txn + "_p99", "… latency seen by the client, p99", Unit::ms);
    row_of(out, d.txn + "_cpu_daemon", "… markd CPU per transaction (all its threads)", Unit::us);
    row_of(out, d.txn + "_cpu_client", "… client CPU per transaction (mktl::Client, all its threads)", Unit::us);
    row_of(out, d.raw + "_cpu", "… raw loop CPU per row (its thread, COMMIT included)", Unit::us);
  }
  if (!executable(o.markd)) {
    for (auto& s : out) s.note = o.markd + " not built";
    return out;
  }

  const fs::path dir = fs::path(std::getenv("MKTL_HOME")) / "txn";
  fs::create_directories(dir);
  const std::string config = (dir / "log.json").string();
  std::ofstream(config) << kTxnConfig;
  auto daemon = Child::spawn({o.markd, "--mkio", config, "--no-discovery", "--bind", "127.0.0.1", "--hostname",
                              "127.0.0.1", "txn", "txn1"});
  auto ready = daemon.wait_for("markd: txn txn1 ready", 60);
  if (!ready) throw std::runtime_error("markd --mkio did not print its ready line");
  const int port = std::atoi(field_of(*ready, "rep").c_str());
  if (port <= 0) throw std::runtime_error("no ports in '" + *ready + "'");
  const std::string key = "txn.log_add";
  mktl::ClientOptions copts = mktl::ClientOptions::from_env();
  copts.ack_timeout = 5;
  mktl::Client client(copts);
  client.connect("tcp://127.0.0.1:" + std::to_string(port), "txn");
  RawSqlite raw((dir / "raw.sqlite3").string());
  std::optional<WakeCpus> wake;
  if (!o.idle) wake.emplace();

  auto stats = [&] {
    auto v = client.call("GET", key, mktl::Json{{"stats", true}}).at("value");
    return std::pair<double, double>(v.at("transactions").get<double>(), v.at("commits").get<double>());
  };
  std::atomic<long> n_txn{0};
  long n_raw = 0;
  // Warm-up: statements prepared, pages cached, on both sides.
  txn_pipeline(client, key, 1, o.quick ? 0.01 : 0.1, n_txn);
  txn_pipeline(client, key, 64, o.quick ? 0.01 : 0.1, n_txn);
  raw.run(1, o.quick ? 0.01 : 0.1, n_raw);
  raw.run(64, o.quick ? 0.01 : 0.1, n_raw);

  const int slices = o.quick ? 1 : 4;
  const double slice = o.duration / slices;
  for (int rep = 0; rep < o.reps; ++rep) {
    for (auto& d : depths) {
      d.raw_rows = d.txn_done = 0;
      d.raw_seconds = d.txn_seconds = d.transactions = d.commits = 0;
      d.daemon_cpu = d.client_cpu = d.raw_cpu = 0;  // per rep, as the counts they are divided by
      d.latency_ms.clear();
    }
    for (int s = 0; s < slices; ++s)
      for (std::size_t k = 0; k < depths.size(); ++k) {
        // The depths alternate which goes first; the raw loop follows the
        // daemon's run, whose batch size it copies.
        auto& d = depths[(k + static_cast<std::size_t>(s)) % depths.size()];
        auto before = stats();
        const std::vector<pid_t> not_client = wake ? wake->tids() : std::vector<pid_t>{};
        const double daemon_cpu = cpu_seconds(daemon.pid()), client_cpu = cpu_seconds(0, not_client);
        TxnRun window = txn_pipeline(client, key, d.depth, slice, n_txn);
        d.daemon_cpu += cpu_seconds(daemon.pid()) - daemon_cpu;
        d.client_cpu += cpu_seconds(0, not_client) - client_cpu;
        auto after = stats();
        double transactions = after.first - before.first, commits = after.second - before.second;
        if (commits <= 0) throw std::runtime_error("transactions: the daemon's stats show no commit");
        d.txn_done += window.completed;
        d.txn_seconds += window.seconds;
        d.latency_ms.insert(d.latency_ms.end(), window.latency_ms.begin(), window.latency_ms.end());
        d.transactions += transactions;
        d.commits += commits;
        auto start = Clock::now();
        const double raw_cpu = thread_cpu_seconds();
        d.raw_rows += raw.run(transactions / commits, slice, n_raw);
        d.raw_cpu += thread_cpu_seconds() - raw_cpu;
        d.raw_seconds += seconds_since(start);
      }
    for (auto& d : depths) {
      row_of(out, d.raw, "", Unit::rate).values.push_back(d.raw_rows / d.raw_seconds);
      row_of(out, d.txn, "", Unit::rate).values.push_back(d.txn_done / d.txn_seconds);
      row_of(out, d.txn + "_batch", "", Unit::number).values.push_back(d.transactions / d.commits);
      row_of(out, d.txn + "_p50", "", Unit::ms).values.push_back(percentile(d.latency_ms, 0.5));
      row_of(out, d.txn + "_p99", "", Unit::ms).values.push_back(percentile(d.latency_ms, 0.99));
      // Per transaction the daemon made (the drain after each window included).
      row_of(out, d.txn + "_cpu_daemon", "", Unit::us).values.push_back(d.daemon_cpu / d.transactions * 1e6);
      row_of(out, d.txn + "_cpu_client", "", Unit::us).values.push_back(d.client_cpu / d.transactions * 1e6);
      row_of(out, d.raw + "_cpu", "", Unit::us).values.push_back(d.raw_cpu / static_cast<double>(d.raw_rows) * 1e6);
    }
  }
  daemon.terminate();
  return out;
}

}  // namespace bench::txn
