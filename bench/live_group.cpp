// Group `live` of mktl_bench: how fast committed changes reach a subscriber
// of a live collection, against plain item broadcasts of the same daemon
// driven the same way (docs/performance.md, "Live collections").
//
// One `markd` serves, from one daemon configuration (items, tables and
// services, kLiveConfig):
//   - live.plain, a plain numeric item: a SET is applied, answered and
//     broadcast (the baseline);
//   - live.log_add, a record item whose transaction inserts one row into the
//     table log, and live.feed, a stream collection over log;
//   - live.pos_set, a record item whose transaction upserts one row of the
//     table pos (100 keys, in turn), and live.positions, a keyed (subpub)
//     collection over pos;
//   - live.log16_add, a record item whose transaction inserts 16 rows into
//     log: the stream then carries 16 changes per transaction, which shows
//     what the collections' path delivers beyond the writer's transaction
//     rate (its latency is to the callback of the transaction's last row).
// One Client, the writer, keeps 64 SETs in flight through set_then handlers
// that each issue the next (as group txn does). A second Client of this
// process, the subscriber, follows what the SETs change: Client::subscribe
// for the plain item and for the stream, a CollectionView
// (Client::watch_collection) for the stream and for the keyed collection.
// Each SET carries its own number v (the plain item's value, the row's
// column v), so the REP the writer receives and the subscriber's callback
// for the same change meet in a table indexed by v (Stamps): the latency is
// the callback's time minus the REP's, both on this process's steady clock
// (negative when the broadcast arrives before the REP). The rate is changes
// received over the time from the first callback to the last.
//
// The workloads take turns in 4 slices per repetition, in a rotating order,
// so that load from elsewhere hits them alike. Each slice subscribes afresh
// and makes the subscription live (a SET whose change reaches the callback)
// before it starts; two subscriptions of one key alive at once would each
// receive the other's changes.
#include "live_group.hpp"

#include "bench_util.hpp"

#include <mktl/mktl.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace bench::live {

namespace {

namespace fs = std::filesystem;

// The daemon's configuration; the database sits next to it.
constexpr const char* kLiveConfig = R"json({
  "db_path": "live.sqlite3",
  "items": {
    "plain": {"type": "numeric", "description": "benchmark: a plain item (SET, REP, broadcast)"}
  },
  "tables": {
    "log": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "t": "REAL NOT NULL", "v": "INTEGER NOT NULL"}},
    "pos": {"columns": {"k": "INTEGER PRIMARY KEY", "t": "REAL NOT NULL", "v": "INTEGER NOT NULL"}}
  },
  "services": {
    "log": {"type": "transaction", "description": "benchmark: one row per transaction",
            "ops": {"add": [{"table": "log", "op_type": "insert", "fields": ["t", "v"]}]}},
    "feed": {"type": "stream", "description": "benchmark: every row of log", "primary_table": "log",
             "buffer_size": 1000},
    "pos": {"type": "transaction", "description": "benchmark: one key's row per transaction",
            "ops": {"set": [{"table": "pos", "op_type": "upsert", "fields": ["k", "t", "v"]}]}},
    "positions": {"type": "subpub", "description": "benchmark: the last row of each key", "primary_table": "pos",
                  "key": "k"}
  }
})json";

constexpr int kDepth = 64;    // SETs in flight
constexpr long kKeys = 100;   // rows of the keyed collection
constexpr int kSlices = 4;    // per repetition (1 with --quick)
constexpr int kRows = 16;     // rows of a log16_add transaction

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// A JSON number as an integer (a numeric item may hand it back as a double).
std::int64_t number_of(const mktl::Json& value) {
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number()) return static_cast<std::int64_t>(std::llround(value.get<double>()));
  return -1;
}

// Column v of a row, or -1.
std::int64_t v_of(const mktl::Json& row) {
  if (!row.is_object()) return -1;
  auto it = row.find("v");
  return it == row.end() ? -1 : number_of(*it);
}

// When each change of one slice was answered (its REP reached the writer)
// and when its callback ran, indexed by v - base. Written by the writer's
// I/O thread (REPs) and by the subscriber's callback thread; read by the
// main thread once the slice has drained.
class Stamps {
 public:
  static constexpr std::size_t kCapacity = std::size_t{1} << 20;

  Stamps()
      : rep_(std::make_unique<std::atomic<std::int64_t>[]>(kCapacity)),
        callback_(std::make_unique<std::atomic<std::int64_t>[]>(kCapacity)) {
    for (std::size_t i = 0; i < kCapacity; ++i) rep_[i] = callback_[i] = 0;
  }

  // Between slices no value has a place: callbacks are only counted (seen()).
  void idle() { base_ = kNone; }
  // Starts a slice whose values are numbered from `base`.
  void begin(std::int64_t base) {
    for (std::size_t i = 0; i < dirty_; ++i) rep_[i] = callback_[i] = 0;
    dirty_ = 0;
    received_ = 0;
    first_ = last_ = 0;
    base_ = base;
  }
  // Values of the slice issued (indices that may hold stamps).
  void issued(std::size_t n) { dirty_ = std::min(n, kCapacity); }

  void answered(std::int64_t v) {
    if (auto i = index(v); i >= 0) rep_[i].store(now_ns(), std::memory_order_relaxed);
  }
  // The subscriber's callback for the change that carried `v`.
  void arrived(std::int64_t v) {
    seen_.fetch_add(1, std::memory_order_relaxed);
    auto i = index(v);
    if (i < 0) return;
    auto t = now_ns();
    callback_[i].store(t, std::memory_order_relaxed);
    if (received_.fetch_add(1) == 0) first_ = t;
    last_ = t;
  }

  long seen() const { return seen_.load(); }
  long received() const { return received_.load(); }
  // Seconds from the first callback of the slice to the last.
  double span() const { return static_cast<double>(last_.load() - first_.load()) * 1e-9; }
  // REP to callback, in ms, of every change of the slice that has both.
  void latencies(std::vector<double>& out) const {
    for (std::size_t i = 0; i < dirty_; ++i) {
      auto r = rep_[i].load(), c = callback_[i].load();
      if (r && c) out.push_back(static_cast<double>(c - r) * 1e-6);
    }
  }

 private:
  static constexpr std::int64_t kNone = std::numeric_limits<std::int64_t>::max();
  std::int64_t index(std::int64_t v) const {
    std::int64_t b = base_.load();
    if (b == kNone || v < b || v - b >= static_cast<std::int64_t>(kCapacity)) return -1;
    return v - b;
  }

  std::unique_ptr<std::atomic<std::int64_t>[]> rep_, callback_;
  std::atomic<std::int64_t> base_{kNone};
  std::size_t dirty_ = 0;
  std::atomic<long> received_{0}, seen_{0};
  std::atomic<std::int64_t> first_{0}, last_{0};
};

// One kind of change and one way of following it.
struct Workload {
  std::string name, what;  // its series
  std::string set_what;    // its rate of answered SETs, if reported
  std::string key;         // the item the writer sets
  int changes_per_set = 1;  // changes each SET makes
  std::function<mktl::Json(std::int64_t v)> value;
  // Subscribes the subscriber to what the SETs change; the subscription
  // lasts as long as the returned object.
  std::function<std::shared_ptr<void>(mktl::Client& subscriber, Stamps& stamps)> follow;
  // Per repetition, summed over its slices.
  long received = 0, answered = 0, in_window = 0, slices = 0;
  double span = 0, window = 0;
  std::vector<double> latency_ms;
};

struct Drive {
  long issued = 0;     // SETs sent, all answered
  long in_window = 0;  // answered within the window
  double seconds = 0;  // the window
};

// Keeps kDepth SETs of the workload's item in flight for `duration` seconds,
// v numbered from `base`; then lets the ones in flight drain.
Drive drive(mktl::Client& writer, const Workload& w, Stamps& stamps, std::int64_t base, double duration) {
  std::mutex m;
  std::condition_variable drained, stopped;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> next{base};
  int outstanding = 0;  // under m
  long in_window = 0;   // under m
  std::exception_ptr error;
  std::function<void()> issue = [&] {
    {
      std::lock_guard lock(m);
      ++outstanding;
    }
    std::int64_t v = next++;
    writer.set_then(w.key, mktl::Reading(w.value(v)), [&, v](std::exception_ptr e) {
      stamps.answered(v);
      {
        std::lock_guard lock(m);
        if (e) {
          if (!error) error = e;
          stop = true;
          stopped.notify_all();
        } else if (!stop.load()) {
          ++in_window;
        }
      }
      if (!stop.load()) issue();
      std::lock_guard lock(m);
      if (--outstanding == 0) drained.notify_all();
    });
  };
  auto start = Clock::now();
  for (int i = 0; i < kDepth; ++i) issue();
  Drive out;
  std::unique_lock lock(m);
  stopped.wait_until(lock, start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration)),
                     [&] { return stop.load(); });
  stop = true;
  out.seconds = seconds_since(start);
  if (!drained.wait_for(lock, std::chrono::seconds(30), [&] { return outstanding == 0; }))
    throw std::runtime_error("live: " + w.key + ": the daemon did not answer every SET within 30 s");
  if (error) std::rethrow_exception(error);
  out.issued = static_cast<long>(next.load() - base);
  out.in_window = in_window;
  if (static_cast<std::size_t>(out.issued) > Stamps::kCapacity)
    throw std::runtime_error("live: a slice made more changes than the bench keeps stamps for; use a shorter --duration");
  return out;
}

// Sets the workload's item until a change reaches the subscriber's callback.
void make_live(mktl::Client& writer, const Workload& w, Stamps& stamps, std::int64_t& next) {
  for (int attempt = 0; attempt < 250; ++attempt) {
    long before = stamps.seen();
    writer.set(w.key, mktl::Reading(w.value(next++)));
    auto start = Clock::now();
    while (seconds_since(start) < 0.05) {
      if (stamps.seen() > before) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  throw std::runtime_error("live: the subscription for " + w.key + " never became live");
}

// Waits until `expected` changes arrived, or none for half a second.
void await_changes(const Stamps& stamps, long expected) {
  auto start = Clock::now(), changed = start;
  long seen = stamps.received();
  while (stamps.received() < expected && seconds_since(start) < 30) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    long now = stamps.received();
    if (now != seen) {
      seen = now;
      changed = Clock::now();
    } else if (seconds_since(changed) > 0.5) {
      break;
    }
  }
}

// One slice of a workload: subscribe, make live, drive, wait for the changes.
void run_slice(mktl::Client& writer, mktl::Client& subscriber, Workload& w, Stamps& stamps, std::int64_t& next,
               double duration) {
  stamps.idle();
  auto subscription = w.follow(subscriber, stamps);
  make_live(writer, w, stamps, next);
  std::int64_t base = next;
  stamps.begin(base);
  Drive d = drive(writer, w, stamps, base, duration);
  next += d.issued;
  stamps.issued(static_cast<std::size_t>(d.issued));
  await_changes(stamps, d.issued * w.changes_per_set);
  subscription.reset();
  stamps.idle();
  w.received += stamps.received();
  w.span += stamps.span();
  ++w.slices;
  w.answered += d.issued;
  w.in_window += d.in_window;
  w.window += d.seconds;
  stamps.latencies(w.latency_ms);
}

std::shared_ptr<void> subscribe_value(mktl::Client& subscriber, Stamps& stamps, const std::string& key, bool row) {
  return std::make_shared<mktl::Subscription>(
      subscriber.subscribe(key, [&stamps, row](const std::string&, const mktl::Reading& r) {
        stamps.arrived(row ? v_of(r.value) : number_of(r.value));
      }));
}

std::shared_ptr<void> watch(mktl::Client& subscriber, Stamps& stamps, const std::string& key) {
  mktl::CollectionCallbacks callbacks;
  callbacks.on_change = [&stamps](const mktl::CollectionChange& c) { stamps.arrived(v_of(c.row)); };
  return std::make_shared<mktl::CollectionView>(subscriber.watch_collection(key, std::move(callbacks)));
}

}  // namespace

std::vector<Series> run(const Settings& o) {
  double t0 = 1.8e9;
  auto row = [t0](std::int64_t v) { return mktl::Json{{"t", t0 + static_cast<double>(v) * 1e-3}, {"v", v}}; };
  std::vector<Workload> work(5);
  work[0].name = "live_plain";
  work[0].what = "live: plain item broadcasts received (64 SETs in flight, subscribe)";
  work[0].set_what = "… plain SETs answered";
  work[0].key = "live.plain";
  work[0].value = [](std::int64_t v) { return mktl::Json(v); };
  work[0].follow = [](mktl::Client& c, Stamps& s) { return subscribe_value(c, s, "live.plain", false); };
  work[1].name = "live_stream";
  work[1].what = "live: stream changes received (64 transactions in flight, subscribe)";
  work[1].set_what = "… transactions answered";
  work[1].key = "live.log_add";
  work[1].value = row;
  work[1].follow = [](mktl::Client& c, Stamps& s) { return subscribe_value(c, s, "live.feed", true); };
  work[2].name = "live_view";
  work[2].what = "live: stream changes received (CollectionView)";
  work[2].key = "live.log_add";
  work[2].value = row;
  work[2].follow = [](mktl::Client& c, Stamps& s) { return watch(c, s, "live.feed"); };
  work[3].name = "live_keyed";
  work[3].what = "live: keyed changes received (CollectionView, upserts of 100 keys)";
  work[3].key = "live.pos_set";
  work[3].value = [row](std::int64_t v) {
    mktl::Json j = row(v);
    j["k"] = v % kKeys;
    return j;
  };
  work[3].follow = [](mktl::Client& c, Stamps& s) { return watch(c, s, "live.positions"); };
  // What the collections' path carries beyond the writer's transaction rate.
  work[4].name = "live_stream16";
  work[4].what = "live: stream changes received, 16 rows per transaction (subscribe)";
  work[4].set_what = "… transactions answered";
  work[4].key = "live.log16_add";
  work[4].changes_per_set = kRows;
  work[4].value = row;
  work[4].follow = [](mktl::Client& c, Stamps& s) { return subscribe_value(c, s, "live.feed", true); };

  std::vector<Series> out;
  for (auto& w : work) {  // table order
    row_of(out, w.name, w.what, Unit::rate);
    if (!w.set_what.empty()) row_of(out, w.name + "_set", w.set_what, Unit::rate);
    if (w.name == "live_stream")
      row_of(out, w.name + "_share", "… changes received / transactions answered (%)", Unit::count);
    row_of(out, w.name + "_p50", "… REP → callback latency, median", Unit::ms);
    row_of(out, w.name + "_p99", "… REP → callback latency, p99", Unit::ms);
  }
  if (!executable(o.markd)) {
    for (auto& s : out) s.note = o.markd + " not built";
    return out;
  }

  const fs::path dir = fs::path(std::getenv("MKTL_HOME")) / "live";
  fs::create_directories(dir);
  const std::string config = (dir / "live.json").string();
  {
    // log16_add: kRows inserts of the same values into log in one transaction.
    mktl::Json daemon_config = mktl::Json::parse(kLiveConfig);
    mktl::Json ops = mktl::Json::array();
    for (int i = 0; i < kRows; ++i) ops.push_back({{"table", "log"}, {"op_type", "insert"}, {"fields", {"t", "v"}}});
    daemon_config["services"]["log16"] = {{"type", "transaction"},
                                          {"description", "benchmark: 16 rows per transaction"},
                                          {"ops", {{"add", ops}}}};
    std::ofstream(config) << daemon_config.dump(2);
  }
  auto daemon = Child::spawn({o.markd, "--catalog", config, "--no-discovery", "--bind", "127.0.0.1", "--hostname",
                              "127.0.0.1", "live", "live1"});
  auto ready = daemon.wait_for("markd: live live1 ready", 60);
  if (!ready) throw std::runtime_error("markd with the live collections did not print its ready line");
  const std::string endpoint = "tcp://127.0.0.1:" + field_of(*ready, "rep");
  Stamps stamps;  // before the clients: their callbacks write it
  mktl::ClientOptions copts = mktl::ClientOptions::from_env();
  copts.ack_timeout = 5;  // a loaded 2-CPU machine can delay an ACK; that is not what is measured
  mktl::Client writer(copts), subscriber(copts);
  writer.connect(endpoint, "live");
  subscriber.connect(endpoint, "live");

  std::int64_t next = 1;
  const int slices = o.quick ? 1 : kSlices;
  const double slice = o.duration / slices;
  // Warm-up: statements prepared, pages cached, connections made.
  for (auto& w : work) {
    run_slice(writer, subscriber, w, stamps, next, o.quick ? 0.01 : 0.1);
    w.received = w.answered = w.in_window = w.slices = 0;
    w.span = w.window = 0;
    w.latency_ms.clear();
  }
  for (int rep = 0; rep < o.reps; ++rep) {
    for (int s = 0; s < slices; ++s)
      for (std::size_t k = 0; k < work.size(); ++k)
        run_slice(writer, subscriber, work[(k + static_cast<std::size_t>(s + rep)) % work.size()], stamps, next,
                  slice);
    for (auto& w : work) {
      row_of(out, w.name, "", Unit::rate).values.push_back(w.span > 0 ? (w.received - w.slices) / w.span : 0);
      if (!w.set_what.empty()) row_of(out, w.name + "_set", "", Unit::rate).values.push_back(w.in_window / w.window);
      if (w.name == "live_stream")
        row_of(out, w.name + "_share", "", Unit::count).values.push_back(100.0 * w.received / std::max(w.answered, 1L));
      row_of(out, w.name + "_p50", "", Unit::ms).values.push_back(percentile(w.latency_ms, 0.5));
      row_of(out, w.name + "_p99", "", Unit::ms).values.push_back(percentile(w.latency_ms, 0.99));
      w.received = w.answered = w.in_window = w.slices = 0;
      w.span = w.window = 0;
      w.latency_ms.clear();
    }
  }
  daemon.terminate();
  return out;
}

}  // namespace bench::live
