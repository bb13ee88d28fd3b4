// mktl_bench: runs every benchmark against a raw ZeroMQ baseline measured in
// the same run, and prints medians, min-max, ratios and PASS/MISS per target.
//
//   mktl_bench [--reps N] [--duration S] [--quick] [--only GROUP,...]
//              [--markdown FILE] [--mk PATH] [--markd PATH] [--txn-idle]
//
// Layout: this process is the client; it forks/execs the servers it measures
// (mktl_bench_raw_server: cppzmq alone; mktl_bench_daemon: mktl::Daemon) on
// loopback. Baseline and mktl runs are interleaved, rep by rep, so that noise
// from other processes hits both; ratios are taken pairwise per rep and the
// median ratio is compared with the target.
//
// Groups: rt (sequential round trips), inflight (64 in flight, fire and
// forget), bcast (broadcasts), bulk (8 MiB), mk (`mk get` as a process),
// startup (10,000-item daemon), txn (committed transactions through `markd
// --mkio` against a raw SQLite loop, bench/txn_group.cpp), live (live
// collections against plain item broadcasts of the same markd,
// bench/live_group.cpp), reference (with $MKTL_REFERENCE: the Python
// reference's daemon and client on the same workloads,
// bench/reference_group.cpp). The table and the targets: bench/report.cpp.
#include "bench_util.hpp"
#include "live_group.hpp"
#include "reference_group.hpp"
#include "report.hpp"
#include "results.hpp"
#include "series.hpp"
#include "servers.hpp"
#include "txn_group.hpp"

#include <mktl/mktl.hpp>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using bench::Clock;
using bench::executable;
using bench::seconds_since;

namespace {

// ---- options and results ------------------------------------------------------

struct Options {
  int reps = 7;
  double duration = 0.4;  // seconds per timed run
  bool quick = false;     // a few iterations each: proves the benches work
  bool txn_idle = false;  // txn: no WakeCpus
  std::set<std::string> only;
  std::string markdown;
  std::string mk;
  std::string markd;
  std::string bindir;
  bool wants(const std::string& group) const { return only.empty() || only.count(group); }
};

using bench::Results;
using bench::Series;
using bench::Unit;
using bench::start_server;
using bench::write_fill_catalog;

// ---- the raw ZeroMQ client (cppzmq alone) ---------------------------------------

class RawClient {
 public:
  // pub_port 0: requests only.
  RawClient(int rep_port, int pub_port) : dealer_(ctx_, zmq::socket_type::dealer), sub_(ctx_, zmq::socket_type::sub) {
    // Same socket options as mktl's client engine.
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.set(zmq::sockopt::sndhwm, 100000);
    dealer_.set(zmq::sockopt::rcvhwm, 100000);
    dealer_.set(zmq::sockopt::rcvtimeo, 5000);
    dealer_.connect("tcp://127.0.0.1:" + std::to_string(rep_port));
    sub_.set(zmq::sockopt::linger, 0);
    sub_.set(zmq::sockopt::rcvhwm, 100000);
    if (pub_port == 0) return;
    sub_.connect("tcp://127.0.0.1:" + std::to_string(pub_port));
    sub_.set(zmq::sockopt::subscribe, "bench.");
  }

  void send(std::string_view target, std::string_view payload, std::string_view type = "GET") {
    char id[16];
    std::snprintf(id, sizeof id, "%08x", next_id_++);
    dealer_.send(zmq::buffer(std::string_view("a")), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(std::string_view(id, 8)), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(type), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(target), zmq::send_flags::sndmore);
    dealer_.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(payload), zmq::send_flags::none);
  }

  // Receives messages until a REP; returns its frames (payload at [5]).
  std::vector<zmq::message_t>& receive_rep() {
    while (true) {
      frames_.clear();
      bool more = true;
      while (more) {
        zmq::message_t m;
        if (!dealer_.recv(m, zmq::recv_flags::none)) throw std::runtime_error("raw server did not answer in 5 s");
        more = m.more();
        frames_.push_back(std::move(m));
      }
      if (frames_.size() >= 6 && frames_[2].to_string_view() == "REP") return frames_;
    }
  }

  // One round trip; with `json`, returns the reply's value.
  double one(std::string_view target, bool json, long i, std::string_view type = "GET") {
    if (!json) {
      send(target, {}, type);
      receive_rep();
      return 0;
    }
    send(target, nlohmann::json{{"value", i}}.dump(), type);
    auto& f = receive_rep();
    auto value = nlohmann::json::parse(f[5].to_string_view()).at("value");
    return value.is_number() ? value.get<double>() : 1.0;
  }

  // `depth` requests in flight for `duration` seconds; returns requests/s.
  double in_flight(int depth, double duration, std::string_view target = "bench.echo") {
    for (int i = 0; i < depth; ++i) send(target, {});
    long n = 0;
    auto start = Clock::now();
    do {
      for (int k = 0; k < 16; ++k) {
        receive_rep();
        ++n;
        send(target, {});
      }
    } while (seconds_since(start) < duration);
    double rate = static_cast<double>(n) / seconds_since(start);
    for (int i = 0; i < depth; ++i) receive_rep();
    return rate;
  }

  // Bulk GETs of 8 MiB for `duration` seconds; returns bytes/s.
  double bulk(double duration) {
    long n = 0;
    std::size_t bytes = 0;
    auto start = Clock::now();
    do {
      send("bench.bulk", {});
      auto& f = receive_rep();
      bytes += f.size() > 6 ? f[6].size() : 0;
      ++n;
    } while (n < 3 || seconds_since(start) < duration);
    return static_cast<double>(bytes) / seconds_since(start);
  }

  // PUB->SUB: the server publishes `count` messages; returns messages/s
  // received (first to last received).
  double pubsub(long count) {
    sync_sub();
    send("bench.pub", std::to_string(count));
    long received = 0;
    Clock::time_point first, last;
    zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
    while (received < count) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(300)) == 0) break;  // quiet: the rest was dropped
      // Drain what is there without polling again (as mktl's client engine does).
      zmq::message_t topic, version, payload;
      while (received < count && sub_.recv(topic, zmq::recv_flags::dontwait)) {
        (void)sub_.recv(version);
        (void)sub_.recv(payload);
        if (topic.to_string_view() != "bench.bcast.") continue;
        last = Clock::now();
        if (received++ == 0) first = last;
      }
    }
    receive_rep();
    if (received < 2) return 0;
    return static_cast<double>(received - 1) / std::chrono::duration<double>(last - first).count();
  }

 private:
  // Beats the slow-joiner problem: the subscription is live once a message
  // published after it arrives.
  void sync_sub() {
    zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
    for (int attempt = 0; attempt < 500; ++attempt) {
      send("bench.hello", {});
      receive_rep();
      bool hello = false;
      while (zmq::poll(&item, 1, std::chrono::milliseconds(hello ? 0 : 20)) > 0) {
        zmq::message_t m;
        bool more = true;
        bool first = true;
        while (more) {
          (void)sub_.recv(m);
          if (first && m.to_string_view() == "bench.hello.") hello = true;
          first = false;
          more = m.more();
        }
      }
      if (hello) return;
    }
    throw std::runtime_error("raw subscription never became live");
  }

  zmq::context_t ctx_;
  zmq::socket_t dealer_;
  zmq::socket_t sub_;
  std::vector<zmq::message_t> frames_;
  std::uint32_t next_id_ = 0;
};

// ---- mktl broadcast counting ---------------------------------------------------

struct Counter {
  std::atomic<long> count{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::int64_t> first_ns{0}, last_ns{0};

  void hit(std::size_t size) {
    auto t = Clock::now().time_since_epoch().count();
    if (count.fetch_add(1) == 0) first_ns = t;
    last_ns = t;
    bytes += size;
  }
  void reset() {
    count = 0;
    bytes = 0;
    first_ns = 0;
    last_ns = 0;
  }
  // Waits until `target` arrived, or nothing arrived for `quiet` seconds.
  void wait(long target, double quiet, double limit = 30) {
    auto start = Clock::now();
    long seen = count;
    auto changed = Clock::now();
    while (count < target && seconds_since(start) < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      long now = count;
      if (now != seen) {
        seen = now;
        changed = Clock::now();
      } else if (seconds_since(changed) > quiet) {
        break;
      }
    }
  }
  // Waits until nothing arrives for `quiet` seconds (a backlog has drained).
  void settle(double quiet) { wait(std::numeric_limits<long>::max(), quiet, 30); }
  // Seconds from the first to the last arrival.
  double span() const {
    return std::chrono::duration<double>(Clock::duration(last_ns.load() - first_ns.load())).count();
  }
};

// Makes sure `counter`'s subscription to bench.bcast is live: sets the item
// until a broadcast of it arrives.
void sync_bcast(mktl::Client& client, Counter& counter, const std::string& tag) {
  for (int attempt = 0; attempt < 250; ++attempt) {
    long before = counter.count;
    client.set("bench.bcast", mktl::Reading(mktl::Json(tag + std::to_string(attempt))));
    auto start = Clock::now();
    while (seconds_since(start) < 0.02)
      if (counter.count > before) return;
      else std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  throw std::runtime_error("mktl subscription never became live");
}

// One burst of broadcasts through the daemon; returns received/s. With
// `stats`, also records how fast the daemon published (the burst SET returns
// once every value is published) and the share of broadcasts received.
double mktl_bcast_run(mktl::Client& client, Counter& counter, long count, Results* stats = nullptr) {
  counter.settle(0.05);
  counter.reset();
  auto start = Clock::now();
  client.set("bench.burst", mktl::Reading(mktl::Json(count)));
  double publish_seconds = seconds_since(start);
  counter.wait(count, 0.3);
  long received = counter.count;
  if (stats) {
    stats->add("mktl_publish", "… daemon side: Item::publish() calls", Unit::rate, count / publish_seconds);
    stats->add("mktl_bcast_share", "… share of broadcasts received (%)", Unit::count, 100.0 * received / count);
  }
  if (received < 2) return 0;
  return static_cast<double>(received - 1) / counter.span();
}

// ---- the stalled subscriber process ---------------------------------------------

int run_stall_sub(const std::string& rep_endpoint) {
  mktl::ClientOptions options = mktl::ClientOptions::from_env();
  options.ack_timeout = 5;
  mktl::Client client(options);
  client.connect(rep_endpoint, "bench");
  auto sub = client.subscribe("bench.bcast", [](const std::string&, const mktl::Reading&) {
    std::cout << "stalled" << std::endl;
    // Stall for good: the process is killed when the measurement is over.
    while (true) std::this_thread::sleep_for(std::chrono::hours(1));
  });
  while (true) std::this_thread::sleep_for(std::chrono::hours(1));
}

// ---- helpers for the process-level benches ------------------------------------

struct Ports {
  int rep = 0, pub = 0;
};

Ports ports_of(const std::string& line) {
  Ports p;
  p.rep = std::atoi(bench::field_of(line, "rep").c_str());
  p.pub = std::atoi(bench::field_of(line, "pub").c_str());
  if (p.rep <= 0 || p.pub <= 0) throw std::runtime_error("no ports in '" + line + "'");
  return p;
}

// ---- main ---------------------------------------------------------------------

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--reps") o.reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--duration") o.duration = std::atof(next().c_str());
    else if (a == "--quick") o.quick = true;
    else if (a == "--txn-idle") o.txn_idle = true;
    else if (a == "--markdown") o.markdown = next();
    else if (a == "--mk") o.mk = next();
    else if (a == "--markd") o.markd = next();
    else if (a == "--only") {
      std::stringstream s(next());
      for (std::string g; std::getline(s, g, ',');) o.only.insert(g);
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: mktl_bench [--reps N] [--duration S] [--quick]\n"
                   "                  [--only rt,inflight,bcast,bulk,mk,startup,txn,live,reference]\n"
                   "                  [--markdown FILE] [--mk PATH] [--markd PATH] [--txn-idle]\n"
                   "--txn-idle: no thread wakes the CPUs every 100 us during the transactions\n"
                   "(group txn); on a VM, an fsync that finds its CPU idle then waits for a\n"
                   "timer tick (see docs/performance.md).\n"
                   "With MKTL_REFERENCE naming a checkout of the Python reference, its daemon and\n"
                   "client run the same workloads too (group reference; --quick skips its\n"
                   "10,000-item start-up).\n";
      std::exit(0);
    } else {
      throw std::runtime_error("unknown option " + a);
    }
  }
  if (o.quick) o.duration = std::min(o.duration, 0.02);
  o.bindir = fs::read_symlink("/proc/self/exe").parent_path().string();
  if (o.mk.empty()) o.mk = o.bindir + "/mk";
  if (o.markd.empty()) o.markd = o.bindir + "/markd";
  return o;
}

// ---- the groups, and run_all ---------------------------------------------------

void say(const std::string& what) { std::cerr << "mktl_bench: " << what << std::endl; }

// The clients of the two servers that groups rt, inflight, bcast and bulk
// measure (mktl_bench_raw_server: cppzmq alone; mktl_bench_daemon:
// mktl::Daemon).
struct Servers {
  RawClient& raw;            // of the raw server
  RawClient& raw_to_daemon;  // a raw client of the daemon
  mktl::Client& client;      // of the daemon
  std::string rep_endpoint;  // the daemon's
};

// Group rt: sequential round trips.
void run_rt(const Options& o, Results& R, Servers& servers) {
  const int reps = o.reps;
  const double D = o.duration;
  const int warmup = o.quick ? 5 : 100;
  auto& raw = servers.raw;
  auto& raw_to_daemon = servers.raw_to_daemon;
  auto& client = servers.client;
  say("sequential round trips");
  // Each rep alternates short slices of every workload (rotating which goes
  // first), so that a burst of load from elsewhere hits them all alike.
  struct Workload {
    std::string name, what;
    std::function<void(long)> one;
    long ops = 0;
    double seconds = 0;
  };
  double v = 100, sink = 0;
  std::vector<Workload> work = {
      {"raw_rt", "raw DEALER→ROUTER round trip", [&](long i) { raw.one("bench.echo", false, i); }},
      {"raw_rt_json", "raw round trip + JSON (nlohmann) each side",
       [&](long i) { sink += raw.one("bench.json", true, i); }},
      {"raw_rt_json_ack", "raw round trip + JSON + ACK (mKTL's 2 replies)",
       [&](long i) { sink += raw.one("bench.json_ack", true, i); }},
      {"raw_to_daemon_get", "raw client → mktl daemon GET (+ JSON decode)",
       [&](long i) { sink += raw_to_daemon.one("bench.value", true, i); }},
      {"mktl_get", "mktl GET sequential", [&](long) { sink += client.get("bench.value").value.get<double>(); }},
      {"raw_to_daemon_set", "raw client → mktl daemon SET (+ JSON)",
       [&](long i) { sink += raw_to_daemon.one("bench.value", true, i, "SET"); }},
      {"mktl_set", "mktl SET sequential (REP awaited)",
       [&](long) { client.set("bench.value", mktl::Reading(mktl::Json(v++))); }},
  };
  for (auto& w : work) {
    R.get(w.name, w.what, Unit::rate);
    for (int i = 0; i < warmup; ++i) w.one(i);
  }
  const int slices = o.quick ? 1 : 8;
  for (int rep = 0; rep < reps; ++rep) {
    for (auto& w : work) w.ops = 0, w.seconds = 0;
    for (int slice = 0; slice < slices; ++slice)
      for (std::size_t k = 0; k < work.size(); ++k) {
        auto& w = work[(k + slice) % work.size()];
        auto start = Clock::now();
        do {
          for (int j = 0; j < 8; ++j) w.one(w.ops++);
        } while (seconds_since(start) < D / slices);
        w.seconds += seconds_since(start);
      }
    for (auto& w : work) R.add(w.name, w.what, Unit::rate, w.ops / w.seconds + (sink < -1 ? 1 : 0));
  }
}

// Group inflight: 64 requests in flight, and fire and forget.
// Keeps 64 requests in flight for `seconds`, each made by `issue` (which
// returns its mktl::Future), waiting on the oldest; returns completions/s.
template <class Issue>
double futures_in_flight(double seconds, Issue issue) {
  std::deque<decltype(issue())> in_flight;
  for (int i = 0; i < 64; ++i) in_flight.push_back(issue());
  long n = 0;
  auto start = Clock::now();
  do {
    for (int k = 0; k < 16; ++k, ++n) {
      in_flight.front().get();
      in_flight.pop_front();
      in_flight.push_back(issue());
    }
  } while (seconds_since(start) < seconds);
  double rate = n / seconds_since(start);
  for (auto& f : in_flight) f.get();
  return rate;
}

void run_inflight(const Options& o, Results& R, Servers& servers) {
  const int reps = o.reps;
  const double D = o.duration;
  auto& raw = servers.raw;
  auto& raw_to_daemon = servers.raw_to_daemon;
  auto& client = servers.client;
  say("requests in flight");
  long counter_value = 0;
  double v = 1e6;
  for (int rep = 0; rep < reps; ++rep) {
    // As the sequential round trips do, every workload runs in 8 short
    // slices per rep, in a rotating order, so that load from elsewhere hits
    // them all alike; a slice starts with 64 requests outstanding and ends
    // with them drained. A workload's rate is the mean of its slices'.
    struct Piped {
      std::string name, what;
      std::function<double(double)> rate;  // runs one slice of the given length
      double sum = 0;
    };
    std::vector<Piped> piped = {
        {"raw_inflight", "raw round trip, 64 in flight", [&](double d) { return raw.in_flight(64, d); }},
        {"raw_inflight_ack", "raw round trip + ACK (mKTL's 2 replies), 64 in flight",
         [&](double d) { return raw.in_flight(64, d, "bench.echo_ack"); }},
        {"raw_to_daemon_inflight", "raw client → mktl daemon GET, 64 in flight",
         [&](double d) { return raw_to_daemon.in_flight(64, d, "bench.value"); }},
        {"mktl_get64_then", "mktl GET, 64 in flight (get_then handlers)",
         [&](double d) {
           // Each handler issues the next GET, from the client's I/O thread,
           // until the time is up; then the ones in flight drain.
           std::atomic<long> completed{0};
           std::atomic<bool> stop{false};
           std::atomic<int> outstanding{0};
           std::mutex m;
           std::condition_variable drained;
           std::function<void()> issue = [&] {
             ++outstanding;
             client.get_then("bench.value", [&](mktl::Reading, std::exception_ptr e) {
               if (!e) ++completed;
               if (!stop.load()) issue();
               if (--outstanding == 0) {
                 std::lock_guard lock(m);
                 drained.notify_all();
               }
             });
           };
           auto start = Clock::now();
           for (int i = 0; i < 64; ++i) issue();
           while (seconds_since(start) < d) std::this_thread::sleep_for(std::chrono::milliseconds(1));
           double rate = completed.load() / seconds_since(start);
           stop = true;
           std::unique_lock lock(m);
           drained.wait_for(lock, std::chrono::seconds(10), [&] { return outstanding.load() == 0; });
           return rate;
         }},
        {"mktl_get64", "mktl GET, 64 in flight (get_async)",
         [&](double d) {
           // 64 GETs in flight on the client's one socket, as the raw baseline does.
           return futures_in_flight(d, [&] { return client.get_async("bench.value"); });
         }},
        {"mktl_set64", "mktl SET, 64 in flight (set_async)",
         [&](double d) {
           return futures_in_flight(d, [&] { return client.set_async("bench.value", mktl::Reading(mktl::Json(v++))); });
         }},
    };
    const int slices = o.quick ? 1 : 8;
    for (int slice = 0; slice < slices; ++slice)
      for (std::size_t k = 0; k < piped.size(); ++k) {
        auto& w = piped[(k + slice) % piped.size()];
        w.sum += w.rate(D / slices);
      }
    for (auto& w : piped) R.add(w.name, w.what, Unit::rate, w.sum / slices);
    {
      long count = o.quick ? 200 : 30000;
      auto start = Clock::now();
      for (long i = 0; i < count; ++i) client.set_nowait("bench.counter", mktl::Reading(mktl::Json(++counter_value)));
      // Done when the daemon has applied the last one (SETs to one item apply in order).
      while (client.get("bench.counter").value.get<long>() != counter_value) {
        if (seconds_since(start) > 60) throw std::runtime_error("set_nowait: the daemon never applied the last SET");
      }
      R.add("mktl_nowait", "mktl SET fire-and-forget (until applied)", Unit::rate, count / seconds_since(start));
    }
  }
}

// Group bcast: broadcasts received, `count` per burst, through the subscription
// that `bcast` counts.
void run_bcast(const Options& o, Results& R, Servers& servers, Counter& bcast, long count) {
  const int reps = o.reps;
  auto& raw = servers.raw;
  auto& client = servers.client;
  const std::string& rep_endpoint = servers.rep_endpoint;
  say("broadcasts");
  R.get("raw_pubsub", "raw PUB→SUB, ~100-byte messages", Unit::rate);
  R.get("mktl_bcast", "mktl broadcasts received (subscribe callback)", Unit::rate);
  for (int rep = 0; rep < reps; ++rep) {
    R.add("raw_pubsub", "raw PUB→SUB, ~100-byte messages", Unit::rate, raw.pubsub(count));
    R.add("mktl_bcast", "mktl broadcasts received (subscribe callback)", Unit::rate,
          mktl_bcast_run(client, bcast, count, &R));
    {
      // Another client process whose callback blocks forever.
      auto stalled = bench::Child::spawn({o.bindir + "/mktl_bench", "stall-sub", rep_endpoint});
      bool ok = false;
      for (int attempt = 0; attempt < 200 && !ok; ++attempt) {
        client.set("bench.bcast", mktl::Reading(mktl::Json("stall" + std::to_string(attempt))));
        ok = stalled.read_line(0.05).has_value();
      }
      if (!ok) throw std::runtime_error("the stalled subscriber never subscribed");
      R.add("mktl_bcast_stalled", "… with a stalled subscriber in another process", Unit::rate,
            mktl_bcast_run(client, bcast, count));
      stalled.kill(SIGKILL);
    }
    {
      // A second subscription of the same Client whose callback blocks
      // until the measurement is over.
      std::mutex m;
      std::condition_variable cv;
      bool release = false, entered = false;
      auto stall_sub = client.subscribe("bench.stall", [&](const std::string&, const mktl::Reading&) {
        std::unique_lock lock(m);
        entered = true;
        cv.notify_all();
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
      });
      bool blocked = false;
      for (int attempt = 0; attempt < 200 && !blocked; ++attempt) {
        client.set("bench.stall", mktl::Reading(mktl::Json(rep * 1000 + attempt)));
        std::unique_lock lock(m);
        blocked = cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return entered; });
      }
      double rate = 0;
      if (blocked) {
        bcast.reset();
        client.set("bench.burst", mktl::Reading(mktl::Json(count)));
        bcast.wait(count, 0.3, 5);
        rate = bcast.count < 2 ? 0 : (bcast.count - 1) / bcast.span();
      }
      {
        std::lock_guard lock(m);
        release = true;
      }
      cv.notify_all();
      stall_sub.cancel();
      R.add("mktl_bcast_stalled_same", "… with a stalled callback in the same Client", Unit::rate, rate);
    }
  }
}

// Group bulk: 8 MiB GETs and broadcasts, the latter through the subscription
// that `image` counts.
void run_bulk(const Options& o, Results& R, Servers& servers, Counter& image) {
  const int reps = o.reps;
  const double D = o.duration;
  auto& raw = servers.raw;
  auto& client = servers.client;
  say("bulk");
  const long bursts = o.quick ? 2 : 24;
  for (int rep = 0; rep < reps; ++rep) {
    R.add("raw_bulk_get", "raw GET of 8 MiB (zero-copy)", Unit::bytes_rate, raw.bulk(D));
    {
      long n = 0;
      std::size_t bytes = 0;
      auto start = Clock::now();
      do {
        auto r = client.get("bench.image");
        bytes += r.bulk ? r.bulk->size() : 0;
        ++n;
      } while (n < 3 || seconds_since(start) < D);
      R.add("mktl_bulk_get", "mktl GET of 8 MiB bulk", Unit::bytes_rate, bytes / seconds_since(start));
    }
    {
      image.settle(0.05);
      image.reset();
      auto start = Clock::now();
      client.set("bench.bulkburst", mktl::Reading(mktl::Json(bursts)));
      image.wait(bursts, 1.0);
      double span = std::chrono::duration<double>(
                        Clock::duration(image.last_ns.load() - start.time_since_epoch().count())).count();
      R.add("mktl_bulk_pub", "mktl PUB of 8 MiB bulk (received)", Unit::bytes_rate,
            image.count ? static_cast<double>(image.bytes) / span : 0);
    }
  }
}

// Groups bcast and bulk, which share the subscriptions to the daemon's items.
void run_bcast_bulk(const Options& o, Results& R, Servers& servers) {
  auto& client = servers.client;
  Counter bcast, image;
  // Image first: both share one SUB connection, so once bcast is live, so is image.
  auto image_sub = client.subscribe("bench.image", [&](const std::string&, const mktl::Reading& r) {
    image.hit(r.bulk ? r.bulk->size() : 0);
  });
  auto bcast_sub = client.subscribe("bench.bcast", [&](const std::string&, const mktl::Reading& r) {
    bcast.hit(r.value.is_string() ? r.value.get_ref<const std::string&>().size() : 0);
  });
  sync_bcast(client, bcast, "sync");
  const long count = o.quick ? 500 : 100000;

  if (o.wants("bcast")) run_bcast(o, R, servers, bcast, count);
  if (o.wants("bulk")) run_bulk(o, R, servers, image);
}

// Group mk: `mk get` as a process.
void run_mk(const Options& o, Results& R) {
  const int reps = o.reps;
  say("mk get");
  auto& s = R.get("mk_get", "`mk get bench.value` (whole process)", Unit::ms);
  if (!executable(o.mk)) {
    s.note = o.mk + " not built";
  } else {
    int runs = o.quick ? 2 : std::max(20, reps * 4);
    for (int i = 0; i < runs + 1; ++i) {
      auto start = Clock::now();
      auto child = bench::Child::spawn({o.mk, "get", "bench.value"});
      std::string out;
      while (auto l = child.read_line(30)) out += *l;
      int status = child.wait();
      double ms = seconds_since(start) * 1e3;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) {
        s.note = "mk get failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
        s.values.clear();
        break;
      }
      if (i > 0) s.values.push_back(ms);  // the first run warms the page cache
    }
  }
}

// Group startup: the 10,000-item daemon, and the same catalog through markd.
void run_startup(const Options& o, Results& R) {
  const int reps = o.reps;
  say("10,000-item daemon");
  int n = o.quick ? 1 : std::max(3, reps / 2 + 1);
  for (int i = 0; i < n; ++i) {
    {
      auto start = Clock::now();
      std::string ready;
      auto d = start_server({o.bindir + "/mktl_bench_daemon", "--fill", "10000"}, "bench_daemon ready", &ready);
      double ms = seconds_since(start) * 1e3;
      R.add("ready10k", "10,000 items: process start to ready", Unit::ms, ms);
      R.add("ready10k_inproc", "10,000 items: Daemon construction + start()", Unit::ms,
            std::atof(bench::field_of(ready, "construct_ms").c_str()) + std::atof(bench::field_of(ready, "start_ms").c_str()));
      R.add("rss10k", "10,000 items: RSS when ready", Unit::mb, bench::proc_status(d.pid(), "VmRSS") / 1024.0);
      R.add("threads10k", "10,000 items: threads", Unit::count, bench::proc_status(d.pid(), "Threads"));
      d.terminate();
    }
    {
      std::string ready;
      auto d = start_server({o.bindir + "/mktl_bench_daemon", "--fill", "7"}, "bench_daemon ready", &ready);
      R.add("threads_small", "7 items: threads", Unit::count, bench::proc_status(d.pid(), "Threads"));
      d.terminate();
    }
  }
  // The same catalog through markd, if it is built: what an operator sees.
  auto& s = R.get("markd10k", "10,000 items: `markd` start to its ready line", Unit::ms);
  if (!executable(o.markd)) {
    s.note = o.markd + " not built";
  } else {
    std::string catalog = std::string(std::getenv("MKTL_HOME")) + "/fill10k.json";
    write_fill_catalog(catalog);
    for (int i = 0; i < n; ++i) {
      auto start = Clock::now();
      auto d = bench::Child::spawn({o.markd, "--catalog", catalog, "--no-discovery", "--bind", "127.0.0.1",
                                    "--hostname", "127.0.0.1", "fillstore", "fill"});
      auto ready = d.wait_for("markd: fillstore fill ready", 60);
      if (!ready) {
        s.note = "markd did not print its ready line";
        s.values.clear();
        break;
      }
      s.values.push_back(seconds_since(start) * 1e3);
      R.add("markd10k_rss", "10,000 items: `markd` RSS when ready", Unit::mb, bench::proc_status(d.pid(), "VmRSS") / 1024.0);
      d.terminate();
    }
  }
}

// The rows of a group that lives in files of its own (bench::live,
// bench::reference, bench::txn), in its order.
void add_rows(Results& R, const std::vector<Series>& rows) {
  for (auto& s : rows) {
    auto& series = R.get(s.name, s.what, s.unit);
    series.values = s.values;
    series.note = s.note;
  }
}

void run_all(const Options& o, Results& R) {
  std::string line;
  auto raw_server = start_server({o.bindir + "/mktl_bench_raw_server"}, "raw_server ready", &line);
  Ports raw_ports = ports_of(line);
  auto daemon = start_server({o.bindir + "/mktl_bench_daemon"}, "bench_daemon ready", &line);
  Ports d_ports = ports_of(line);
  const std::string rep_endpoint = "tcp://127.0.0.1:" + std::to_string(d_ports.rep);

  RawClient raw(raw_ports.rep, raw_ports.pub);
  // The raw client against the mktl daemon splits the GET gap into its
  // daemon part and its client part.
  RawClient raw_to_daemon(d_ports.rep, 0);
  mktl::ClientOptions copts = mktl::ClientOptions::from_env();
  // A loaded 2-core machine can delay an ACK past 100 ms; that is not what we measure.
  copts.ack_timeout = 5;
  mktl::Client client(copts);
  client.connect(rep_endpoint, "bench");
  Servers servers{raw, raw_to_daemon, client, rep_endpoint};

  if (o.wants("rt")) run_rt(o, R, servers);
  if (o.wants("inflight")) run_inflight(o, R, servers);
  if (o.wants("bcast") || o.wants("bulk")) run_bcast_bulk(o, R, servers);
  if (o.wants("mk")) run_mk(o, R);
  if (o.wants("startup")) run_startup(o, R);

  raw_server.terminate();
  daemon.terminate();

  if (o.wants("txn")) {
    say("transactions");
    add_rows(R, bench::txn::run({o.reps, o.duration, o.quick, o.markd, o.txn_idle}));
  }
  if (o.wants("live")) {
    say("live collections");
    add_rows(R, bench::live::run({o.reps, o.duration, o.quick, o.markd}));
  }
  if (o.wants("reference")) add_rows(R, bench::reference::run({o.reps, o.duration, o.quick}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "stall-sub") == 0) return run_stall_sub(argv[2]);
  try {
    Options options = parse(argc, argv);
    // A private $MKTL_HOME (catalog cache, uuids) for us and every child.
    char home_template[] = "/tmp/mktl-bench-XXXXXX";
    if (!mkdtemp(home_template)) throw std::runtime_error("mkdtemp failed");
    std::string home = home_template;
    setenv("MKTL_HOME", home.c_str(), 1);
    setenv("MKTL_BROADCAST", "127.255.255.255", 1);  // nothing leaves this machine
    Results results;
    int status = 0;
    try {
      run_all(options, results);
    } catch (const std::exception& e) {
      std::cerr << "mktl_bench: " << e.what() << std::endl;
      status = 1;
    }
    std::error_code ec;
    fs::remove_all(home, ec);
    bench::report(results, bench::evaluate(results), options.markdown, options.reps, options.duration);
    return status;
  } catch (const std::exception& e) {
    std::cerr << "mktl_bench: " << e.what() << std::endl;
    return 2;
  }
}
