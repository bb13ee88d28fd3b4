#include "persist/tables.hpp"
#include "common/thread_name.hpp"
#include "common/text.hpp"

#include "persist/migration.hpp"
#include "persist/sql_values.hpp"
#include "persist/sqlite.hpp"
#include "persist/tables_common.hpp"
#include "persist/txn_log.hpp"
#include "collections/column.hpp"
#include "json/detail.hpp"

#include <mktl/error.hpp>
#include <mktl/reading.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace mktl::persist {

using collections::Column;
using collections::Op;
using collections::OpSet;
using collections::OpType;
using collections::Table;
using sql::Db;
using sql::errmsg;
using sql::quote;
using sql::Stmt;

namespace {
using mktl::detail::shown;

// mkio's ref form, "YYYYMMDD HH:MM:SS.mmmuuunnnppp" in UTC: sortable and
// unique, the last three digits counting refs made in one nanosecond. The
// date and time of day are formatted once per second.
class RefClock {
 public:
  std::string next() {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (ns <= last_) {
      ++counter_;
      if (counter_ == 1000) {  // a thousand in one nanosecond: borrow the next one
        counter_ = 0;
        ++last_;
      }
      ns = last_;
    } else {
      counter_ = 0;
      last_ = ns;
    }
    const std::int64_t secs = ns / 1000000000;
    if (secs != prefix_secs_) {
      std::time_t t = static_cast<std::time_t>(secs);
      std::tm tm{};
      gmtime_r(&t, &tm);
      prefix_len_ = std::strftime(prefix_, sizeof prefix_, "%Y%m%d %H:%M:%S", &tm);
      prefix_secs_ = secs;
    }
    char buf[sizeof prefix_ + 13];
    std::memcpy(buf, prefix_, prefix_len_);
    char* p = buf + prefix_len_;
    *p++ = '.';
    digits(p, static_cast<std::uint64_t>(ns % 1000000000), 9);
    digits(p + 9, static_cast<std::uint64_t>(counter_), 3);
    return std::string(buf, p + 12);
  }

 private:
  static void digits(char* out, std::uint64_t value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[i] = static_cast<char>('0' + value % 10);
  }
  std::int64_t last_ = 0;
  int counter_ = 0;
  std::int64_t prefix_secs_ = -1;
  char prefix_[32] = {};
  std::size_t prefix_len_ = 0;
};

}  // namespace

Json Committed::to_json() const { return json::parse(value_json()); }

std::string Committed::value_json() const {
  std::string time_text;
  json::detail::append_double(time_text, time);
  std::string out;
  append_value_json(out, time_text);
  return out;
}

void Committed::append_value_json(std::string& out, std::string_view time_text) const {
  // The members in name order, as json::dump writes an object.
  out.reserve(out.size() + rows.size() + ref.size() + time_text.size() + 64);
  out.append(duplicate ? "{\"duplicate\":true,\"ref\":" : "{\"ref\":");
  json::detail::append_string(out, ref);
  out.append(",\"rows\":");
  out.append(rows.empty() ? std::string_view("null") : std::string_view(rows));
  out.append(",\"seq\":");
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, seq).ptr);
  out.append(",\"time\":");
  out.append(time_text);
  out.push_back('}');
}

// ---------------------------------------------------------------------------

class Tables::Impl {
 public:
  Impl(const collections::Config& config, TablesOptions options) : config_(config), options_(std::move(options)) {}

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_.notify_all();
    if (writer_.joinable()) writer_.join();
    {
      std::lock_guard lock(finished_mu_);
      finishing_ = true;
    }
    finished_cv_.notify_all();
    if (completer_.joinable()) completer_.join();
    if (wal_fd_ >= 0) ::close(wal_fd_);
  }

  void open() {
    namespace fs = std::filesystem;
    fs::path file(options_.path);
    if (file.has_parent_path()) {
      std::error_code ec;
      fs::create_directories(file.parent_path(), ec);
      if (ec) throw RuntimeError("tables database " + options_.path + ": cannot create its directory: " + ec.message());
    }
    db_ = open_connection(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    std::string text;
    if (!sql::query_text(db_.get(), "PRAGMA journal_mode=WAL", text) || text != "wal")
      fail_open("cannot switch to WAL journal mode: " + errmsg(db_.get()));
    // NORMAL: a COMMIT writes the WAL without waiting for the disk; the
    // completion thread then makes it durable with one fdatasync of the WAL
    // for every batch committed since the last one, before any of their
    // REPs (sync_wal()). Checkpoints still sync as with FULL.
    if (!sql::exec(db_.get(), "PRAGMA synchronous=NORMAL")) fail_open(errmsg(db_.get()));
    wal_path_ = options_.path + "-wal";
    if (!sql::query_text(db_.get(), "PRAGMA quick_check", text)) fail_open(errmsg(db_.get()));
    if (text != "ok") fail_open("integrity check failed: " + text.substr(0, 300));
    if (!TxnLog::create(db_.get())) fail_open("cannot create its own tables: " + errmsg(db_.get()));
    applied_ = migrate(db_.get(), config_, options_);
    reader_ = open_connection(SQLITE_OPEN_READONLY);
    prepare_statements();
    for (auto& service : config_.transactions)
      for (auto& set : service.op_sets) check_plans_.emplace(&set, check_plan(set));
    completer_ = std::jthread([this] { run_completer(); });
    writer_ = std::jthread([this] { run_writer(); });
  }

  const std::vector<SchemaChange>& applied() const { return applied_; }
  const std::string& path() const { return options_.path; }

  Stats stats() const { return Stats{commits_.load(), transactions_.load(), failed_.load()}; }

  // ---- requests -------------------------------------------------------------

  struct Job {
    const OpSet* set;
    Json data;
    std::string ref;
    Done done;
    std::exception_ptr error;
    Committed result;
  };

  void submit(const OpSet& set, Json data, std::string ref, Done done) {
    check(set, data);
    std::unique_lock lock(mu_);
    if (stopping_) throw RuntimeError("the tables database is closing; transaction not run");
    queue_.push_back(Job{&set, std::move(data), std::move(ref), std::move(done), nullptr, {}});
    outstanding_.fetch_add(1, std::memory_order_relaxed);
    // Only the arrival the writer waits for wakes it: the first one when it
    // is idle, the one that completes its batch while it collects; none while
    // it works (it looks at the queue when it is done).
    bool wake = queue_.size() == wake_at_;
    lock.unlock();
    if (wake) work_.notify_one();
  }

  std::optional<Committed> lookup(const std::string& ref, const std::string& item) {
    std::lock_guard lock(reader_mu_);
    return txn_log_->lookup(ref, item);
  }

  std::optional<Committed> last(const std::string& item) {
    std::lock_guard lock(reader_mu_);
    return txn_log_->last(item);
  }

  // Polls: the completion thread only counts (no lock, no wake-up on the
  // transactions' path for what only the fuzzer asks).
  void wait_idle() {
    while (outstanding_.load(std::memory_order_acquire) != 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

  void on_commit(Listener listener) {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
  }

  std::vector<Json> select(const std::string& text, const std::vector<Json>& params) {
    std::lock_guard lock(reader_mu_);
    sqlite3* db = reader_.get();
    auto it = selects_.find(text);
    if (it == selects_.end()) {
      Stmt stmt = sql::prepare(db, text.c_str());
      if (!stmt) throw ValueError("cannot prepare \"" + text + "\": " + errmsg(db));
      if (selects_.size() >= 256) selects_.clear();  // custom queries are few; never grow without bound
      it = selects_.emplace(text, std::move(stmt)).first;
    }
    sqlite3_stmt* stmt = it->second.get();
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (std::size_t i = 0; i < params.size(); ++i)
      if (bind_value(stmt, static_cast<int>(i + 1), params[i]) != SQLITE_OK)
        throw ValueError("cannot bind parameter " + std::to_string(i + 1) + " of \"" + text + "\": " + errmsg(db));
    std::vector<Json> rows;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) rows.push_back(row_of(stmt));
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) throw RuntimeError("tables database " + options_.path + ": reading \"" + text + "\": " + errmsg(db));
    return rows;
  }

 private:
  [[noreturn]] void fail_open(const std::string& what) const { persist::fail_open(options_.path, what); }

  Db open_connection(int flags) {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(options_.path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    Db db(raw);
    if (rc != SQLITE_OK) fail_open("cannot open it: " + errmsg(db.get()));
    sqlite3_extended_result_codes(db.get(), 1);
    sqlite3_busy_timeout(db.get(), 5000);
    return db;
  }

  void prepare_statements() {
    sqlite3* db = db_.get();
    begin_ = must_prepare(db, "BEGIN IMMEDIATE", options_.path);
    commit_ = must_prepare(db, "COMMIT", options_.path);
    savepoint_ = must_prepare(db, "SAVEPOINT txn", options_.path);
    release_ = must_prepare(db, "RELEASE txn", options_.path);
    rollback_to_ = must_prepare(db, "ROLLBACK TO txn", options_.path);
    txn_log_ = std::make_unique<TxnLog>(db, reader_.get(), config_, options_.path);
  }

  // ---- checks before queueing ---------------------------------------------

  // The columns an op takes from the client's data.
  static bool takes(const Op& op, const Table& table, const std::string& column) {
    if (!table.column(column)) return false;
    if (std::find(op.fields.begin(), op.fields.end(), column) != op.fields.end()) return true;
    if (op.defaults.contains(column)) return true;  // client data overrides op defaults
    return op.type != OpType::insert && std::find(op.key.begin(), op.key.end(), column) != op.key.end();
  }

  static bool bound(const Op& op, const std::string& column) {
    return std::any_of(op.bind.begin(), op.bind.end(), [&](auto& b) { return b.column == column; });
  }

  // What check() needs of an op set, worked out once at open: the table
  // column each field goes to (the first op that takes it), and the fields
  // that must be given, with the error their absence makes.
  struct FieldCheck {
    const Table* table;
    const Column* column;
  };
  struct Required {
    std::string field;
    bool takeable;  // some op takes it from the data; else it can never be given
    std::string missing;  // the ValueError text
  };
  struct CheckPlan {
    std::unordered_map<std::string, FieldCheck> fields;
    std::vector<Required> required;
  };

  CheckPlan check_plan(const OpSet& set) const {
    CheckPlan plan;
    for (auto& op : set.ops) {
      const Table* table = config_.table(op.table);
      if (!table) continue;
      for (auto& c : table->columns)
        if (takes(op, *table, c.name)) plan.fields.emplace(c.name, FieldCheck{table, &c});  // the first op that takes it wins
    }
    for (std::size_t i = 0; i < set.ops.size(); ++i) {
      const Op& op = set.ops[i];
      const Table* table = config_.table(op.table);
      if (!table) throw RuntimeError("op " + std::to_string(i) + " of " + set.item + " names unknown table " + op.table);
      // Given without the data: an op default or a bind.
      auto supplied = [&](const std::string& column) { return op.defaults.contains(column) || bound(op, column); };
      if (op.type == OpType::insert || op.type == OpType::upsert)
        for (auto& c : table->columns) {
          if (supplied(c.name) || c.autoincrement || c.generated || c.default_sql || !c.not_null) continue;
          plan.required.push_back({c.name, takes(op, *table, c.name),
                                   "missing field '" + c.name + "' for " + set.item + " (" + table->name + "." + c.name +
                                       " is NOT NULL without a default)"});
        }
      if (op.type != OpType::insert)
        for (auto& k : op.key) {
          if (supplied(k)) continue;
          plan.required.push_back({k, takes(op, *table, k),
                                   "missing field '" + k + "' for " + set.item + ": the " +
                                       collections::op_type_name(op.type) + " of " + table->name + " finds its row by " +
                                       joined(op.key)});
        }
    }
    return plan;
  }

  void check(const OpSet& set, Json& data) const {
    if (!data.is_object())
      throw TypeError("a transaction's value is a JSON object of fields (" + set.item + "), got " + shown(data));
    auto found = check_plans_.find(&set);
    if (found == check_plans_.end()) throw RuntimeError(set.item + " is not an op set of these tables");
    const CheckPlan& plan = found->second;
    // Every field must be one some op takes.
    for (auto it = data.begin(); it != data.end(); ++it) {
      auto target = plan.fields.find(it.key());
      if (target == plan.fields.end()) {
        std::vector<std::string> known;
        for (auto& [field, _] : plan.fields) known.push_back(field);
        std::sort(known.begin(), known.end());
        std::string message = "unknown field '" + it.key() + "' for " + set.item + collections::detail::suggestion(it.key(), known);
        message += " (fields: " + (known.empty() ? std::string("none") : joined(known)) + ")";
        throw ValueError(message);
      }
      it.value() = coerce(*target->second.table, *target->second.column, it.value());
    }
    // Required fields and keys.
    for (auto& r : plan.required)
      if (!r.takeable || !data.contains(r.field)) throw ValueError(r.missing);
  }

  // ---- the writer ----------------------------------------------------------

  void run_writer() {
    mktl::detail::name_this_thread("mktl-writer");
    std::vector<Job> batch;
    std::size_t previous = 0;
    bool with_changes = false;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        wake_at_ = 1;
        work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing is left
        with_changes = static_cast<bool>(listener_);
        // Group commit: the batch is what queued while the writer worked. A
        // lone request after a batch that had company waits, at most
        // batch_wait_ms, for a second one, so that concurrent clients do not
        // pay a COMMIT each; waiting for more (as many as the previous batch
        // held) would make the clients and the writer take turns instead of
        // overlapping. A lone client (previous batch of one) is never delayed.
        const std::size_t want = std::min<std::size_t>(previous, 2);
        if (want > 1 && queue_.size() < want && options_.batch_wait_ms > 0 && !stopping_) {
          auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double, std::milli>(options_.batch_wait_ms));
          wake_at_ = want;
          work_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= want; });
        }
        wake_at_ = 0;  // working: arrivals queue without waking the writer
        take(batch);
      }
      previous = batch.size();
      const bool committed = execute(batch, with_changes);
      // The disk sync and the callbacks are the completion thread's: the
      // writer goes on to the next batch at once.
      std::unique_lock lock(finished_mu_);
      finished_room_.wait(lock, [&] { return finished_.size() < kFinishedMax; });
      const bool wake = finished_.empty();
      finished_.push_back(Finished{std::move(batch), committed});
      lock.unlock();
      if (wake) finished_cv_.notify_one();
      batch = std::vector<Job>();
    }
  }

  // The completion thread: takes every executed batch waiting, makes the
  // committed ones durable with one fdatasync of the WAL, then, for each in
  // commit order, runs the commit listener and each transaction's `done`.
  void run_completer() {
    mktl::detail::name_this_thread("mktl-complete");
    std::deque<Finished> ready;
    for (;;) {
      {
        std::unique_lock lock(finished_mu_);
        finished_cv_.wait(lock, [&] { return finishing_ || !finished_.empty(); });
        if (finished_.empty()) return;  // finishing, and nothing is left
        ready.swap(finished_);
      }
      finished_room_.notify_all();
      std::exception_ptr unsynced;
      if (std::any_of(ready.begin(), ready.end(), [](const Finished& f) { return f.committed; })) {
        std::string failure = sync_wal();
        if (!failure.empty()) {
          tables_log().error("tables database {}: committed transactions may not be on disk: {}", options_.path, failure);
          unsynced = std::make_exception_ptr(RuntimeError(
              "tables database " + options_.path + ": the transaction committed, but the disk did not confirm it (" +
              failure + "); a GET with its ref tells whether it is still there"));
        }
      }
      Listener listener;
      {
        std::lock_guard lock(mu_);
        listener = listener_;
      }
      std::size_t answered = 0;
      for (auto& f : ready) {
        complete(f.jobs, listener, f.committed ? unsynced : nullptr);
        answered += f.jobs.size();
      }
      ready.clear();
      outstanding_.fetch_sub(answered, std::memory_order_release);
    }
  }

  // The listener with the batch's committed transactions, then each `done`
  // (with `unsynced` when the sync after the COMMIT failed: such a
  // transaction still reaches the listener, since it is in the database,
  // which the collections follow).
  void complete(std::vector<Job>& batch, const Listener& listener, const std::exception_ptr& unsynced) {
    if (listener) {
      std::vector<Committed*> committed;
      for (auto& job : batch)
        if (!job.error && !job.result.duplicate) committed.push_back(&job.result);
      if (!committed.empty()) {
        try {
          listener(committed);
        } catch (const std::exception& e) {
          tables_log().error("the change listener failed: {}", e.what());
        }
      }
    }
    for (auto& job : batch) {
      try {
        if (!job.error && unsynced) job.error = unsynced;
        job.done(job.error, job.error ? nullptr : &job.result);
      } catch (const std::exception& e) {
        tables_log().error("a transaction's completion failed: {}", e.what());
      }
    }
  }

  // fdatasync of the WAL file (opened here, again whenever SQLite made a
  // new one): every frame written before it is on disk. "" on success, else
  // why not.
  //
  // Whether the open file is still the WAL is asked with statx for the
  // inode number alone. A stat() would also read the file's times, and on
  // kernels with fine-grained timestamps (6.13 on) a file whose times were
  // read gets a new mtime at its next write: SQLite's next COMMIT would then
  // dirty the inode every time, and each sync would write it too (on an
  // ext4 without a journal, two requests to the disk per sync instead of
  // one: 460-535 us per sync instead of 360-450 us in a bare test).
  std::string sync_wal() {
    struct statx by_path {};
    if (::statx(AT_FDCWD, wal_path_.c_str(), 0, STATX_INO, &by_path) != 0)
      return "cannot find " + wal_path_ + ": " + std::strerror(errno);
    if (wal_fd_ < 0 || by_path.stx_ino != wal_id_.stx_ino || by_path.stx_dev_major != wal_id_.stx_dev_major ||
        by_path.stx_dev_minor != wal_id_.stx_dev_minor) {
      if (wal_fd_ >= 0) ::close(wal_fd_);
      wal_fd_ = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd_ < 0) return "cannot open " + wal_path_ + ": " + std::strerror(errno);
      // The open file's identity, asked once: it stays the same while open.
      if (::statx(wal_fd_, "", AT_EMPTY_PATH, STATX_INO, &wal_id_) != 0) {
        ::close(wal_fd_);
        wal_fd_ = -1;
        return "cannot look at " + wal_path_ + ": " + std::strerror(errno);
      }
    }
    if (::fdatasync(wal_fd_) != 0) return std::string("fdatasync of ") + wal_path_ + ": " + std::strerror(errno);
    return {};
  }

  // Caller holds mu_.
  void take(std::vector<Job>& batch) {
    while (!queue_.empty() && static_cast<int>(batch.size()) < options_.batch_max) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }

  bool step_done(sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE;
  }

  [[noreturn]] void throw_db(const std::string& what) { persist::throw_db(db_.get(), what); }

  // Runs a batch; true when it was committed (the WAL then holds it, not
  // yet synced).
  bool execute(std::vector<Job>& batch, bool with_changes) {
    sqlite3* db = db_.get();
    double time = now();
    if (!step_done(begin_.get())) {
      auto error = std::make_exception_ptr(RuntimeError("tables database " + options_.path + ": cannot begin: " + errmsg(db)));
      for (auto& job : batch) job.error = error;
      failed_ += batch.size();
      return false;
    }
    std::exception_ptr fatal;
    for (auto& job : batch) {
      if (fatal) {
        job.error = fatal;
        continue;
      }
      // A one-op transaction needs no SAVEPOINT: a statement that fails
      // leaves nothing behind (SQLite undoes it), and should its log entry
      // fail after it, the whole batch is rolled back (below).
      const bool savepoint = job.set->ops.size() > 1;
      try {
        if (savepoint && !step_done(savepoint_.get())) throw_db("savepoint");
        try {
          run(job, with_changes);
          if (savepoint && !step_done(release_.get())) throw_db("release");
        } catch (...) {
          if (savepoint && !sqlite3_get_autocommit(db)) {
            step_done(rollback_to_.get());
            step_done(release_.get());
          }
          throw;
        }
        if (!job.result.duplicate) {
          job.result.time = time;
          job.result.seq = txn_log_->add(job.result.ref, job.set->item, job.result.rows, time, !job.ref.empty());
        }
      } catch (...) {
        job.error = std::current_exception();
        // Some errors (disk full, I/O) end the whole transaction.
        if (sqlite3_get_autocommit(db)) fatal = job.error;
      }
    }
    if (!fatal) {
      try {
        txn_log_->write();
      } catch (...) {
        fatal = std::current_exception();
      }
    }
    if (fatal) {
      if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
      txn_log_->rolled_back();
      for (auto& job : batch) job.error = fatal;
      failed_ += batch.size();
      return false;
    }
    txn_log_->prune_when_due();
    if (!step_done(commit_.get())) {
      auto error = std::make_exception_ptr(
          RuntimeError("tables database " + options_.path + ": commit failed, transaction not applied: " + errmsg(db)));
      if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
      txn_log_->rolled_back();
      for (auto& job : batch) job.error = error;
      failed_ += batch.size();
      tables_log().error("commit of {} transaction(s) failed: {}", batch.size(), errmsg(db));
      return false;
    }
    txn_log_->committed();
    commits_.fetch_add(1);
    for (auto& job : batch) (job.error ? failed_ : transactions_).fetch_add(1);
    return true;
  }

  // ---- running one transaction ----------------------------------------------

  // An op's statements for one set of written columns, prepared once.
  // An insert, upsert or update reads its rows back after the write with a
  // SELECT: a RETURNING clause would cost SQLite a temporary table per
  // statement, about 2.5 times the instructions of the write and the read
  // together. An insert's row is found by its new rowid; an update's rows by
  // the op's key, which it never changes; an upsert's by its key, or by the
  // new rowid when a key value is null (a null conflicts with nothing: the
  // row was inserted). A delete's rows are gone afterwards: it keeps RETURNING.
  struct Prepared {
    Stmt stmt;
    std::vector<int> params;  // the table column bound to ?1, ?2, ...
    Stmt by_rowid;            // insert, upsert
    Stmt by_key;              // update, upsert: the op's key columns bound to ?1, ?2, ...
    std::vector<std::pair<std::string, int>> returned;  // the rows' columns in name order, with their index
  };

  // How an op writes its table, worked out once per op: which column takes
  // the client's value, an op default (coerced) or an earlier op's field.
  struct OpPlan {
    const Table* table = nullptr;
    std::vector<char> takes;                    // per table column: taken from the client's data
    std::vector<std::optional<Json>> defaults;  // per table column: the op default
    std::vector<int> bind;                      // per table column: index into op.bind, else -1
    std::vector<int> key;                       // op.key as table columns
    bool bound_to = false;                      // a later op binds to its returned row
    std::unordered_map<std::string, Prepared> statements;  // by written columns ('1' per written one)
  };

  std::vector<OpPlan>& plan_of(const OpSet& set) {
    auto it = plans_.find(&set);
    if (it != plans_.end()) return it->second;
    std::vector<OpPlan> plans(set.ops.size());
    for (std::size_t i = 0; i < set.ops.size(); ++i) {
      const Op& op = set.ops[i];
      OpPlan& plan = plans[i];
      plan.table = config_.table(op.table);
      if (!plan.table) throw RuntimeError("op " + std::to_string(i) + " of " + set.item + " names unknown table " + op.table);
      const auto& columns = plan.table->columns;
      auto index = [&](const std::string& name) {
        for (std::size_t j = 0; j < columns.size(); ++j)
          if (columns[j].name == name) return static_cast<int>(j);
        throw RuntimeError("op " + std::to_string(i) + " of " + set.item + ": table " + op.table + " has no column " + name);
      };
      plan.takes.assign(columns.size(), 0);
      plan.defaults.assign(columns.size(), std::nullopt);
      plan.bind.assign(columns.size(), -1);
      for (std::size_t j = 0; j < columns.size(); ++j) plan.takes[j] = takes(op, *plan.table, columns[j].name);
      for (auto& [column, value] : op.defaults.items()) {
        int j = index(column);
        plan.defaults[static_cast<std::size_t>(j)] = coerce(*plan.table, columns[static_cast<std::size_t>(j)], value);
      }
      for (std::size_t b = 0; b < op.bind.size(); ++b) {
        plan.bind[static_cast<std::size_t>(index(op.bind[b].column))] = static_cast<int>(b);
        if (op.bind[b].op >= 0 && static_cast<std::size_t>(op.bind[b].op) < i)
          plans[static_cast<std::size_t>(op.bind[b].op)].bound_to = true;
      }
      for (auto& k : op.key) plan.key.push_back(index(k));
    }
    return plans_.emplace(&set, std::move(plans)).first->second;
  }

  // The statement of `op` writing the columns marked in `written`.
  Prepared& prepared(const OpSet& set, const Op& op, OpPlan& plan, const std::string& written) {
    auto it = plan.statements.find(written);
    if (it != plan.statements.end()) return it->second;
    const Table& table = *plan.table;
    auto name = [&](int j) { return quote(table.columns[static_cast<std::size_t>(j)].name); };
    auto is_key = [&](int j) { return std::find(plan.key.begin(), plan.key.end(), j) != plan.key.end(); };
    Prepared p;
    std::string text;
    std::string key_match;  // empty for an insert, which has no key
    for (int k : plan.key) key_match += (key_match.empty() ? "" : " AND ") + name(k) + " IS ?";
    const std::string where = " WHERE " + key_match;
    switch (op.type) {
      case OpType::insert:
      case OpType::upsert: {
        std::string columns, marks, updates;
        for (std::size_t j = 0; j < written.size(); ++j) {
          if (written[j] != '1') continue;
          int c = static_cast<int>(j);
          columns += (columns.empty() ? "" : ", ") + name(c);
          marks += marks.empty() ? "?" : ", ?";
          p.params.push_back(c);
          if (op.type == OpType::upsert && !is_key(c)) updates += (updates.empty() ? "" : ", ") + name(c) + " = excluded." + name(c);
        }
        if (p.params.empty()) {
          text = "INSERT INTO " + quote(table.name) + " DEFAULT VALUES";
          break;
        }
        text = "INSERT INTO " + quote(table.name) + " (" + columns + ") VALUES (" + marks + ")";
        if (op.type == OpType::upsert) {
          std::vector<std::string> keys;
          for (auto& k : op.key) keys.push_back(quote(k));
          if (updates.empty()) updates = quote(op.key.front()) + " = excluded." + quote(op.key.front());
          text += " ON CONFLICT (" + joined(keys) + ") DO UPDATE SET " + updates;
        }
        break;
      }
      case OpType::update: {
        std::string sets;
        for (std::size_t j = 0; j < written.size(); ++j) {
          int c = static_cast<int>(j);
          if (written[j] != '1' || is_key(c)) continue;
          sets += (sets.empty() ? "" : ", ") + name(c) + " = ?";
          p.params.push_back(c);
        }
        if (sets.empty())
          throw ValueError(set.item + ": the update of " + table.name + " has no field to change (it takes " +
                           (op.fields.empty() ? std::string("any column") : joined(op.fields)) + ")");
        p.params.insert(p.params.end(), plan.key.begin(), plan.key.end());
        text = "UPDATE " + quote(table.name) + " SET " + sets + where;
        break;
      }
      case OpType::delete_: {
        p.params = plan.key;
        text = "DELETE FROM " + quote(table.name) + where + " RETURNING *";
        break;
      }
    }
    p.stmt = sql::prepare(db_.get(), text.c_str());
    if (!p.stmt) throw_db("cannot prepare \"" + text + "\"");
    auto select = [&](const std::string& match) {
      std::string read = "SELECT * FROM " + quote(table.name) + " WHERE " + match;
      Stmt stmt = sql::prepare(db_.get(), read.c_str());
      if (!stmt) throw_db("cannot prepare \"" + read + "\"");
      return stmt;
    };
    if (op.type == OpType::insert || op.type == OpType::upsert) p.by_rowid = select("rowid = ?");
    if (op.type == OpType::update || op.type == OpType::upsert) p.by_key = select(key_match);
    sqlite3_stmt* rows = p.by_rowid ? p.by_rowid.get() : p.by_key ? p.by_key.get() : p.stmt.get();
    int n = sqlite3_column_count(rows);
    for (int i = 0; i < n; ++i) p.returned.emplace_back(sqlite3_column_name(rows, i), i);
    std::sort(p.returned.begin(), p.returned.end());  // a JSON object's members in name order, as json::dump writes them
    return plan.statements.emplace(written, std::move(p)).first->second;
  }

  // Runs the ops of one transaction (or finds the result of its ref, which
  // committed before); its result rows go to job.result.rows as JSON text.
  void run(Job& job, bool with_changes) {
    const OpSet& set = *job.set;
    Committed& result = job.result;
    if (!job.ref.empty() && txn_log_->find(job.ref, set.item, result)) return;
    result.ref = job.ref.empty() ? refs_.next() : job.ref;
    std::string& text = result.rows;
    text.assign("[");
    auto& plans = plan_of(set);
    first_rows_.assign(set.ops.size(), Json());
    for (std::size_t i = 0; i < set.ops.size(); ++i) {
      if (i) text.push_back(',');
      run_op(set, i, plans, job.data, result, text, with_changes);
    }
    text.push_back(']');
  }

  // Runs the write of `p` (its values bound) and returns the statement that
  // reads its rows back, bound; nullptr for an update that matched nothing.
  sqlite3_stmt* write_then_select(const OpSet& set, const Op& op, const OpPlan& plan, Prepared& p) {
    sqlite3* db = db_.get();
    const int rc = sqlite3_step(p.stmt.get());
    sqlite3_reset(p.stmt.get());
    if (rc != SQLITE_DONE) throw_db(set.item + ": " + collections::op_type_name(op.type) + " of " + plan.table->name);
    if (op.type == OpType::update && sqlite3_changes(db) == 0) return nullptr;
    const bool null_key = std::any_of(plan.key.begin(), plan.key.end(),
                                      [&](int k) { return values_[static_cast<std::size_t>(k)]->is_null(); });
    if (op.type == OpType::insert || (op.type == OpType::upsert && null_key)) {
      sqlite3_bind_int64(p.by_rowid.get(), 1, sqlite3_last_insert_rowid(db));
      return p.by_rowid.get();
    }
    sqlite3_stmt* stmt = p.by_key.get();
    for (std::size_t i = 0; i < plan.key.size(); ++i)
      if (bind_value(stmt, static_cast<int>(i + 1), *values_[static_cast<std::size_t>(plan.key[i])]) != SQLITE_OK) {
        sqlite3_reset(stmt);
        throw_db("binding " + plan.table->name);
      }
    return stmt;
  }

  // Runs op `index` of `set`, appending the row(s) it returns to `text` as
  // JSON; keeps its first row as JSON when a later op binds to it, and each
  // row as a Change when `with_changes`.
  void run_op(const OpSet& set, std::size_t index, std::vector<OpPlan>& plans, const Json& data, Committed& result,
              std::string& text, bool with_changes) {
    const Op& op = set.ops[index];
    OpPlan& plan = plans[index];
    const Table& table = *plan.table;
    const std::size_t n = table.columns.size();
    // Values: a bind, else the client's, else the op default.
    values_.assign(n, nullptr);
    for (std::size_t j = 0; j < n; ++j) {
      if (int b = plan.bind[j]; b >= 0) {
        const collections::Bind& bind = op.bind[static_cast<std::size_t>(b)];
        const Json& row = first_rows_.at(static_cast<std::size_t>(bind.op));
        if (!row.is_object())
          throw ValueError(set.item + ": op " + std::to_string(index) + " binds " + bind.column + " to $" +
                           std::to_string(bind.op) + "." + bind.field + ", but op " + std::to_string(bind.op) +
                           " returned no row");
        auto f = row.find(bind.field);
        if (f == row.end())
          throw ValueError(set.item + ": op " + std::to_string(index) + " binds " + bind.column + " to $" +
                           std::to_string(bind.op) + "." + bind.field + ", but that row has no field " + bind.field);
        values_[j] = &*f;
        continue;
      }
      if (plan.takes[j]) {
        auto f = data.find(table.columns[j].name);
        if (f != data.end()) {
          values_[j] = &*f;
          continue;
        }
      }
      if (plan.defaults[j]) values_[j] = &*plan.defaults[j];
    }
    for (int k : plan.key)
      if (op.type != OpType::insert && !values_[static_cast<std::size_t>(k)])
        throw ValueError("missing field '" + table.columns[static_cast<std::size_t>(k)].name + "' for " + set.item);
    written_.assign(n, '0');
    if (op.type != OpType::delete_)
      for (std::size_t j = 0; j < n; ++j)
        if (values_[j]) written_[j] = '1';
    Prepared& p = prepared(set, op, plan, written_);
    sqlite3_stmt* stmt = p.stmt.get();
    for (std::size_t i = 0; i < p.params.size(); ++i)
      if (bind_value(stmt, static_cast<int>(i + 1), *values_[static_cast<std::size_t>(p.params[i])]) != SQLITE_OK) {
        sqlite3_reset(stmt);
        throw_db("binding " + table.name);
      }
    if (op.type != OpType::delete_) stmt = write_then_select(set, op, plan, p);
    const bool keep_json = with_changes || plan.bound_to;
    const std::size_t start = text.size();
    std::size_t rows = 0;
    int rc = SQLITE_DONE;
    while (stmt && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (rows++) text.push_back(',');
      text.push_back('{');
      bool first = true;
      for (auto& [column, i] : p.returned) {
        if (!first) text.push_back(',');
        first = false;
        json::detail::append_string(text, column);
        text.push_back(':');
        append_column(text, stmt, i);
      }
      text.push_back('}');
      if (keep_json) {
        Json row = row_of(stmt);
        if (rows == 1) first_rows_[index] = row;
        if (with_changes) result.changes.push_back(Change{table.name, op.type, std::move(row)});
      }
    }
    if (stmt) sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) throw_db(set.item + ": " + collections::op_type_name(op.type) + " of " + table.name);
    if (rows == 0 && op.type != OpType::insert) {
      std::string match;
      for (int k : plan.key)
        match += (match.empty() ? "" : " and ") + table.columns[static_cast<std::size_t>(k)].name + " = " +
                 shown(*values_[static_cast<std::size_t>(k)]);
      throw ValueError(set.item + ": the " + collections::op_type_name(op.type) + " of " + table.name +
                       " matched no row (" + match + ")");
    }
    if (rows == 0) {
      text.append("null");
    } else if (rows > 1) {
      text.insert(start, 1, '[');
      text.push_back(']');
    }
  }

  const collections::Config& config_;
  TablesOptions options_;
  Db db_;      // the writer's connection: open() and then the writer thread only
  Db reader_;  // lookups, under reader_mu_
  std::mutex reader_mu_;
  Stmt begin_, commit_, savepoint_, release_, rollback_to_;
  std::unique_ptr<TxnLog> txn_log_;  // its writer half on the writer thread; lookups under reader_mu_
  // The writer's: op plans by op set, and scratch space reused by every transaction.
  std::unordered_map<const OpSet*, std::vector<OpPlan>> plans_;
  std::vector<const Json*> values_;
  std::string written_;
  std::vector<Json> first_rows_;  // per op of the running transaction, when a later op binds to it
  std::unordered_map<const OpSet*, CheckPlan> check_plans_;  // made at open, read-only after
  std::unordered_map<std::string, Stmt> selects_;     // select(), by text, on reader_ under reader_mu_
  std::vector<SchemaChange> applied_;
  RefClock refs_;

  std::mutex mu_;
  std::condition_variable work_;
  std::deque<Job> queue_;
  std::size_t wake_at_ = 0;  // the queue size whose arrival notifies the writer (0: none)
  bool stopping_ = false;
  std::atomic<std::size_t> outstanding_{0};  // submitted and not answered yet (wait_idle)
  Listener listener_;  // under mu_
  std::atomic<std::uint64_t> commits_{0}, transactions_{0}, failed_{0};

  // Executed batches waiting for their callbacks (at most kFinishedMax: the
  // writer waits beyond that).
  static constexpr std::size_t kFinishedMax = 64;
  std::mutex finished_mu_;
  std::condition_variable finished_cv_, finished_room_;
  struct Finished {
    std::vector<Job> jobs;
    bool committed = false;  // in the WAL, to be synced before its REPs
  };
  std::deque<Finished> finished_;
  std::string wal_path_;
  int wal_fd_ = -1;        // the completion thread's
  struct statx wal_id_ {};  // wal_fd_'s inode and device
  bool finishing_ = false;
  std::jthread completer_;  // started before the writer, stopped after it
  std::jthread writer_;
};

std::unique_ptr<Tables> Tables::open(const collections::Config& config, TablesOptions options) {
  auto impl = std::make_unique<Impl>(config, std::move(options));
  impl->open();
  return std::unique_ptr<Tables>(new Tables(std::move(impl)));
}

Tables::Tables(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tables::~Tables() = default;
const std::vector<SchemaChange>& Tables::applied() const { return impl_->applied(); }
void Tables::submit(const OpSet& set, Json data, std::string ref, Done done) {
  impl_->submit(set, std::move(data), std::move(ref), std::move(done));
}
std::optional<Committed> Tables::lookup(const std::string& ref, const std::string& item) {
  return impl_->lookup(ref, item);
}
std::optional<Committed> Tables::last(const std::string& item) { return impl_->last(item); }
void Tables::on_commit(Listener listener) { impl_->on_commit(std::move(listener)); }
void Tables::wait_idle() { impl_->wait_idle(); }
std::vector<Json> Tables::select(const std::string& sql, const std::vector<Json>& params) {
  return impl_->select(sql, params);
}
Tables::Stats Tables::stats() const { return impl_->stats(); }
const std::string& Tables::path() const { return impl_->path(); }

}  // namespace mktl::persist
