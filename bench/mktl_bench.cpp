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
// reference's daemon and client on the same workloads, see run_reference).
#include "bench_util.hpp"
#include "live_group.hpp"
#include "series.hpp"
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
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
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

using bench::Series;
using bench::Unit;

struct Target {
  std::string what;
  std::string shown;   // the measured figure as text
  std::string goal;
  bool pass = false;
  bool skipped = false;
  bool info = false;  // shown for diagnosis, not a target
};

class Results {
 public:
  Series& get(const std::string& name, const std::string& what, Unit unit) {
    auto it = series_.find(name);
    if (it == series_.end()) {
      order_.push_back(name);
      it = series_.emplace(name, Series{name, what, unit, {}, {}}).first;
    }
    return it->second;
  }
  void add(const std::string& name, const std::string& what, Unit unit, double value) {
    get(name, what, unit).values.push_back(value);
  }
  const Series* find(const std::string& name) const {
    auto it = series_.find(name);
    return it == series_.end() || it->second.values.empty() ? nullptr : &it->second;
  }
  const std::vector<std::string>& order() const { return order_; }
  const Series& at(const std::string& name) const { return series_.at(name); }

  // Pairwise ratios a_i / b_i of two interleaved series.
  std::vector<double> ratios(const std::string& a, const std::string& b) const {
    std::vector<double> out;
    auto* sa = find(a);
    auto* sb = find(b);
    if (!sa || !sb) return out;
    for (std::size_t i = 0; i < std::min(sa->values.size(), sb->values.size()); ++i)
      if (sb->values[i] > 0) out.push_back(sa->values[i] / sb->values[i]);
    return out;
  }

 private:
  std::map<std::string, Series> series_;
  std::vector<std::string> order_;
};

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string show(double v, Unit unit) {
  switch (unit) {
    case Unit::rate:
      if (v >= 1e6) return fixed(v / 1e6, 2) + " M/s";
      if (v >= 1e3) return fixed(v / 1e3, 1) + " k/s";
      return fixed(v, 0) + " /s";
    case Unit::bytes_rate: return fixed(v / 1e9, 2) + " GB/s";
    case Unit::ms: return fixed(v, v < 10 ? 2 : 1) + " ms";
    case Unit::us: return fixed(v, v < 10 ? 2 : 1) + " µs";
    case Unit::mb: return fixed(v, 1) + " MB";
    case Unit::count: return fixed(v, 0);
    case Unit::number: return fixed(v, 1);
  }
  return fixed(v, 2);
}

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

bench::Child start_server(const std::vector<std::string>& argv, const std::string& prefix, std::string* line_out) {
  auto child = bench::Child::spawn(argv);
  auto line = child.wait_for(prefix, 60);
  if (!line) throw std::runtime_error(argv[0] + " did not become ready");
  if (line_out) *line_out = *line;
  return child;
}


// The 10,000-item catalog of the start-up benchmarks, as a catalog file.
void write_fill_catalog(const std::string& path) {
  mktl::Json items = mktl::Json::object();
  char key[32];
  for (int k = 0; k < 10000; ++k) {
    std::snprintf(key, sizeof key, "fill%05d", k);
    items[key] = {{"type", "numeric"}, {"description", "filler item for the start-up benchmark"},
                  {"units", "V"}, {"initial", k}};
  }
  std::ofstream(path) << items.dump();
}

// ---- the Python reference (MKTL_REFERENCE) ------------------------------------
//
// With $MKTL_REFERENCE naming a checkout of the Python reference, the same
// workloads run against it in the same process layout: a reference daemon
// (its sbin/mkd with bench/reference_daemon.py) and a reference client
// process (bench/reference_client.py), both Python. The drivers live next to
// this file; bench/reference_run.py keeps the reference's discovery on this
// machine.

constexpr const char* kPython = "/usr/bin/python3";  // with zmq and numpy, as the interop tests need

#ifndef MKTL_BENCH_SOURCE_DIR
#error "MKTL_BENCH_SOURCE_DIR (the bench/ source directory, for its Python drivers) is not defined"
#endif

struct ReferenceSeries {
  const char* name;
  const char* what;
  Unit unit;
};

// What bench/reference_client.py reports ("result series=NAME value=X").
const ReferenceSeries kReferenceSeries[] = {
    {"ref_get", "reference GET sequential (protocol.request.send)", Unit::rate},
    {"ref_get_refresh", "reference Item.get(refresh=True) sequential", Unit::rate},
    {"ref_set", "reference SET sequential (Item.set, REP awaited)", Unit::rate},
    {"ref_bcast", "reference broadcasts received (register callback)", Unit::rate},
    {"ref_publish", "… reference daemon side: Item.publish() calls", Unit::rate},
    {"ref_bcast_share", "… share of reference broadcasts received (%)", Unit::count},
};

// Stops a reference daemon and the processes it started: its mkd starts
// mkpersistd, which otherwise outlives it while it works through the catalog.
void stop_reference_daemon(bench::Child& daemon) {
  if (daemon.pid() <= 0) return;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto paren = stat.rfind(')');  // "pid (comm) state ppid ..."; comm may hold spaces
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == daemon.pid()) ::kill(std::stoi(name), SIGTERM);
  }
  daemon.terminate();
}

// Stops a reference daemon however its scope ends (a failed run throws).
struct ReferenceDaemonStop {
  bench::Child& daemon;
  ~ReferenceDaemonStop() { stop_reference_daemon(daemon); }
};

void reference_section(const Options& o, Results& R) {
  const std::string here = MKTL_BENCH_SOURCE_DIR;
  const std::string run = here + "/reference_run.py";
  const std::string home = std::getenv("MKTL_HOME");
  // One $MKTL_HOME per role, as if each ran on its own machine; the client's
  // is also `mk`'s, so that `mk get` finds the catalog the client cached.
  const std::string daemon_home = home + "/reference-daemon", client_home = home + "/reference-client",
                    fill_home = home + "/reference-fill";
  for (auto& dir : {daemon_home, client_home, fill_home}) fs::create_directories(dir);
  // Each repetition takes a few seconds in Python: at most 7 of them keep
  // the whole section near half a minute.
  const int reps = std::min(o.reps, 7);
  const double D = o.duration;

  std::string line;
  auto daemon = start_server({kPython, run, daemon_home, "sbin/mkd", "refbench", "refbench1", "-c",
                              here + "/reference_items.json", "-m", "reference_daemon", "-s", "BenchDaemon"},
                             "reference_daemon ready", &line);
  ReferenceDaemonStop stop_daemon{daemon};
  const std::string port = bench::field_of(line, "rep");

  {
    auto client = bench::Child::spawn({kPython, here + "/reference_client.py", client_home, "127.0.0.1", port,
                                       "refbench", "--reps", std::to_string(reps), "--duration", fixed(D, 3),
                                       "--count", o.quick ? "500" : "20000"},
                                      false);
    for (auto& s : kReferenceSeries) R.get(s.name, s.what, s.unit);  // table order
    while (true) {
      auto l = client.read_line(120);
      if (!l) throw std::runtime_error("bench/reference_client.py stopped before it was done");
      if (*l == "reference_client done") break;
      if (l->rfind("result ", 0) != 0) continue;
      std::string name = bench::field_of(*l, "series");
      auto* series = std::find_if(std::begin(kReferenceSeries), std::end(kReferenceSeries),
                                  [&](const ReferenceSeries& s) { return name == s.name; });
      if (series == std::end(kReferenceSeries)) throw std::runtime_error("unknown reference series in '" + *l + "'");
      R.add(series->name, series->what, series->unit, std::atof(bench::field_of(*l, "value").c_str()));
    }
    client.wait();
  }

  {
    // `mk get` as a whole process, through reference_run.py (which runs bin/mk in its own interpreter).
    auto& s = R.get("ref_mk_get", "reference `mk get refbench.value` (whole process)", Unit::ms);
    int runs = o.quick ? 2 : 10;
    for (int i = 0; i < runs + 1; ++i) {
      auto start = Clock::now();
      auto child = bench::Child::spawn({kPython, run, client_home, "bin/mk", "get", "refbench.value"});
      std::string out;
      while (auto l = child.read_line(30)) out += *l;
      int status = child.wait();
      double ms = seconds_since(start) * 1e3;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.find("value") == std::string::npos) {
        s.note = "the reference's mk get failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
        s.values.clear();
        break;
      }
      if (i > 0) s.values.push_back(ms);  // the first run warms the page cache
    }
  }

  {
    // Our client against the reference daemon: how much of the gap is the client.
    mktl::ClientOptions copts = mktl::ClientOptions::from_env();
    copts.ack_timeout = 5;
    mktl::Client client(copts);
    client.connect("tcp://127.0.0.1:" + port, "refbench");
    double v = 1e6, sink = 0;
    auto get = [&] { sink += client.get("refbench.value").value.get<double>(); };
    auto set = [&] { client.set("refbench.value", mktl::Reading(mktl::Json(v++))); };
    for (int i = 0; i < 20; ++i) get(), set();
    auto rate = [&](auto& one, double seconds) {
      long n = 0;
      auto start = Clock::now();
      do {
        for (int j = 0; j < 8; ++j, ++n) one();
      } while (seconds_since(start) < seconds);
      return n / seconds_since(start);
    };
    for (int rep = 0; rep < reps; ++rep) {
      R.add("mktl_on_ref_get", "mktl client → reference daemon, GET sequential", Unit::rate,
            rate(get, D) + (sink < -1 ? 1 : 0));
      R.add("mktl_on_ref_set", "mktl client → reference daemon, SET sequential", Unit::rate, rate(set, D));
    }
  }
  stop_reference_daemon(daemon);

  if (!o.quick) {
    // About ten seconds: once is enough.
    std::string catalog = fill_home + "/fill10k.json";
    write_fill_catalog(catalog);
    auto start = Clock::now();
    auto d = start_server({kPython, run, fill_home, "sbin/mkd", "refill", "fill", "-c", catalog, "-m",
                           "reference_daemon", "-s", "BenchDaemon"},
                          "reference_daemon ready", nullptr);
    ReferenceDaemonStop stop_fill{d};
    R.add("ref_ready10k", "reference 10,000 items: mkd start to setup_final()", Unit::ms,
          seconds_since(start) * 1e3);
    R.add("ref_rss10k", "reference 10,000 items: RSS when ready", Unit::mb,
          bench::proc_status(d.pid(), "VmRSS") / 1024.0);
    R.add("ref_threads10k", "reference 10,000 items: threads", Unit::count, bench::proc_status(d.pid(), "Threads"));
    stop_reference_daemon(d);
  }
}

void run_reference(const Options& o, Results& R) {
  auto log = [](const std::string& what) { std::cerr << "mktl_bench: " << what << std::endl; };
  const char* reference = std::getenv("MKTL_REFERENCE");
  if (!reference || !*reference) {
    log("MKTL_REFERENCE is not set: the comparison with the Python reference is skipped");
    return;
  }
  log(std::string("the Python reference in ") + reference);
  auto start = Clock::now();
  std::string problem;
  if (!executable(kPython)) problem = std::string(kPython) + " not found";
  else if (!fs::exists(fs::path(reference) / "sbin" / "mkd")) problem = std::string(reference) + "/sbin/mkd not found";
  if (problem.empty()) {
    try {
      reference_section(o, R);
    } catch (const std::exception& e) {
      problem = e.what();
    }
  }
  if (!problem.empty()) {
    log("reference comparison failed: " + problem);
    R.get("reference", "Python reference (MKTL_REFERENCE)", Unit::count).note = problem;
  }
  log("the Python reference took " + fixed(seconds_since(start), 1) + " s");
}

// ---- report --------------------------------------------------------------------

// Columns `text` takes on a terminal: UTF-8 characters, not bytes.
std::size_t columns(const std::string& text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// `text` padded to `width` columns, with at least two spaces after it.
std::string pad(const std::string& text, std::size_t width) {
  std::size_t n = columns(text);
  return text + std::string(n + 2 > width ? 2 : width - n, ' ');
}

void report(const Results& results, const std::vector<Target>& targets, const Options& options) {
  std::ostringstream md;
  std::size_t name_width = 0, target_width = 0;
  for (auto& name : results.order()) name_width = std::max(name_width, columns(results.at(name).what) + 2);
  for (auto& t : targets) target_width = std::max(target_width, columns(t.what) + 2);
  std::cout << "\n" << pad("benchmark", name_width) << pad("median", 14) << "min - max\n";
  md << "| benchmark | median | min – max | runs |\n|---|---:|---:|---:|\n";
  for (auto& name : results.order()) {
    auto& s = results.at(name);
    if (s.values.empty()) {
      std::cout << pad(s.what, name_width) << "skipped: " << s.note << "\n";
      md << "| " << s.what << " | skipped | " << s.note << " | 0 |\n";
      continue;
    }
    std::string med = show(bench::median(s.values), s.unit);
    std::string range = show(bench::min_of(s.values), s.unit) + " - " + show(bench::max_of(s.values), s.unit);
    std::cout << pad(s.what, name_width) << pad(med, 14) << range << "\n";
    md << "| " << s.what << " | " << med << " | " << show(bench::min_of(s.values), s.unit) << " – "
       << show(bench::max_of(s.values), s.unit) << " | " << s.values.size() << " |\n";
  }
  std::cout << "\n" << pad("target", target_width) << pad("measured", 28) << pad("goal", 12) << "\n";
  md << "\n| target | measured (median, min – max) | goal | result |\n|---|---:|---:|---|\n";
  int missed = 0;
  for (auto& t : targets) {
    std::string verdict = t.info ? "info" : t.skipped ? "SKIP" : t.pass ? "PASS" : "MISS";
    if (!t.info && !t.skipped && !t.pass) ++missed;
    std::cout << pad(t.what, target_width) << pad(t.shown, 28) << pad(t.goal, 12) << verdict << "\n";
    md << "| " << t.what << " | " << t.shown << " | " << t.goal << " | " << verdict << " |\n";
  }
  std::cout << "\n" << missed << " target(s) missed\n";
  if (!options.markdown.empty()) {
    std::ofstream out(options.markdown);
    out << "Repetitions per benchmark: " << options.reps << " (" << options.duration
        << " s per timed run, baseline and mktl interleaved).\n\n"
        << md.str();
  }
}

// Ratios to the Python reference, for information only. The two sides are
// not interleaved (the reference runs after every mktl benchmark), so these
// are ratios of medians, not medians of pairwise ratios. Absent without
// MKTL_REFERENCE.
void add_reference_targets(const Results& r, std::vector<Target>& targets) {
  bool any = std::any_of(std::begin(kReferenceSeries), std::end(kReferenceSeries),
                         [&](const ReferenceSeries& s) { return r.find(s.name) != nullptr; });
  if (!any && !r.find("ref_mk_get") && !r.find("ref_ready10k")) return;
  auto ratio = [&](const std::string& what, const std::string& a, const std::string& b) {
    Target t;
    t.what = what;
    t.goal = "—";
    t.info = true;
    auto* sa = r.find(a);
    auto* sb = r.find(b);
    if (!sa || !sb) {
      t.shown = "n/a";
    } else {
      double ma = bench::median(sa->values), mb = bench::median(sb->values);
      double m = mb > 0 ? ma / mb : 0;
      t.shown = fixed(m, m < 10 ? 2 : 1) + "× (" + show(ma, sa->unit) + " vs " + show(mb, sb->unit) + ")";
    }
    targets.push_back(t);
  };
  ratio("(info) mktl GET / reference GET, sequential", "mktl_get", "ref_get");
  ratio("(info) mktl SET / reference SET, sequential", "mktl_set", "ref_set");
  ratio("(info) mktl / reference broadcasts received", "mktl_bcast", "ref_bcast");
  ratio("(info) reference / mktl `mk get` time", "ref_mk_get", "mk_get");
  ratio("(info) reference / mktl 10,000-item start to ready", "ref_ready10k", "ready10k");
  ratio("(info) reference / mktl 10,000-item RSS", "ref_rss10k", "rss10k");
  ratio("(info) reference daemon, mktl / reference client: GET", "mktl_on_ref_get", "ref_get");
  ratio("(info) reference daemon, mktl / reference client: SET", "mktl_on_ref_set", "ref_set");
}

std::vector<Target> evaluate(const Results& r) {
  std::vector<Target> targets;
  auto ratio_target = [&](const std::string& what, const std::string& a, const std::string& b, double goal) {
    Target t;
    t.what = what;
    t.goal = goal > 0 ? "≥ " + fixed(goal, 2) + "×" : "—";
    auto v = r.ratios(a, b);
    if (v.empty()) {
      t.skipped = true;
      t.shown = "n/a";
    } else {
      double m = bench::median(v);
      // A median that rounds to the goal is shown with a third digit, so that
      // "0.60x MISS" cannot appear.
      int digits = goal > 0 && std::abs(m - goal) < 0.005 ? 3 : 2;
      t.shown = fixed(m, digits) + "× (" + fixed(bench::min_of(v), 2) + " – " + fixed(bench::max_of(v), 2) + ")";
      t.pass = m >= goal;
    }
    targets.push_back(t);
  };
  auto abs_target = [&](const std::string& what, const std::string& name, double goal, bool at_least,
                        const std::string& goal_text) {
    Target t;
    t.what = what;
    t.goal = goal_text;
    auto* s = r.find(name);
    if (!s) {
      t.skipped = true;
      t.shown = "n/a";
    } else {
      double m = bench::median(s->values);
      t.shown = show(m, s->unit);
      if (s->values.size() > 1) t.shown += " (" + show(bench::min_of(s->values), s->unit) + " – " + show(bench::max_of(s->values), s->unit) + ")";
      t.pass = at_least ? m >= goal : m < goal;
    }
    targets.push_back(t);
  };
  ratio_target("GET sequential / raw round trip with JSON", "mktl_get", "raw_rt_json", 0.9);
  ratio_target("SET sequential / raw round trip with JSON", "mktl_set", "raw_rt_json", 0.85);
  ratio_target("GET 64 in flight / raw 64 in flight", "mktl_get64", "raw_inflight", 0.6);
  ratio_target("broadcasts received / raw PUB->SUB", "mktl_bcast", "raw_pubsub", 0.5);
  ratio_target("transactions, 64 in flight / raw SQLite loop, same batches", "mktl_txn64", "raw_txn64", 0.5);
  // A ratio shown for diagnosis, with no goal.
  auto info_ratio = [&](const std::string& what, const std::string& a, const std::string& b) {
    ratio_target(what, a, b, 0);
    targets.back().info = true;
  };
  // Diagnosis: where the sequential GET gap lies (daemon side or client side).
  info_ratio("(info) mktl daemon, raw client / raw server, JSON + ACK", "raw_to_daemon_get", "raw_rt_json_ack");
  info_ratio("(info) mktl GET / raw client on the same mktl daemon", "mktl_get", "raw_to_daemon_get");
  info_ratio("(info) mktl daemon SET, raw client / raw server, JSON + ACK", "raw_to_daemon_set", "raw_rt_json_ack");
  info_ratio("(info) mktl SET / raw client on the same mktl daemon", "mktl_set", "raw_to_daemon_set");
  // The protocol's ACK makes three messages of each request where the raw
  // baseline has two: this row shows what that alone costs.
  info_ratio("(info) raw 64 in flight with ACK / without", "raw_inflight_ack", "raw_inflight");
  info_ratio("(info) mktl GET 64 in flight / raw 64 in flight with ACK", "mktl_get64", "raw_inflight_ack");
  info_ratio("(info) mktl daemon, raw client / raw server with ACK, 64 in flight", "raw_to_daemon_inflight",
             "raw_inflight_ack");
  info_ratio("(info) mktl GET / raw client on the same mktl daemon, 64 in flight", "mktl_get64",
             "raw_to_daemon_inflight");
  info_ratio("(info) transactions, 1 in flight / raw SQLite loop, 1 per COMMIT", "mktl_txn1", "raw_txn1");
  // Live collections (bench/live_group.cpp): SETs at 64 in flight on one markd.
  ratio_target("live: stream changes received / plain item broadcasts", "live_stream", "live_plain", 0.5);
  info_ratio("(info) live: stream through CollectionView / plain item broadcasts", "live_view", "live_plain");
  info_ratio("(info) live: keyed through CollectionView / plain item broadcasts", "live_keyed", "live_plain");
  info_ratio("(info) live: stream, 16 rows per transaction / plain item broadcasts", "live_stream16", "live_plain");
  info_ratio("(info) live: stream changes received / transactions answered", "live_stream", "live_stream_set");
  info_ratio("(info) live: transactions / plain SETs answered", "live_stream_set", "live_plain_set");
  if (r.find("live_stream") && r.find("mktl_bcast")) {
    // Not interleaved (group bcast runs first): a ratio of medians.
    double a = bench::median(r.find("live_stream")->values), b = bench::median(r.find("mktl_bcast")->values);
    targets.push_back(Target{"(info) live: stream changes / Item::publish broadcasts (group bcast)",
                             fixed(b > 0 ? a / b : 0, 2) + "× (" + show(a, Unit::rate) + " vs " + show(b, Unit::rate) + ")",
                             "—", false, false, true});
  }
  abs_target("bulk GET of 8 MiB", "mktl_bulk_get", 1e9, true, "≥ 1 GB/s");
  abs_target("bulk PUB of 8 MiB", "mktl_bulk_pub", 1e9, true, "≥ 1 GB/s");
  abs_target("`mk get` of one key, whole process", "mk_get", 10, false, "< 10 ms");
  abs_target("10,000-item daemon: construction to ready", "ready10k_inproc", 500, false, "< 500 ms");
  abs_target("10,000-item daemon: process start to ready", "ready10k", 500, false, "< 500 ms");
  abs_target("10,000-item daemon: RSS", "rss10k", 50, false, "< 50 MB");
  {
    Target t;
    t.what = "10,000-item daemon: threads (same as 7 items, ≤ 16)";
    t.goal = "constant";
    auto* big = r.find("threads10k");
    auto* small = r.find("threads_small");
    if (!big || !small) {
      t.skipped = true;
      t.shown = "n/a";
    } else {
      double b = bench::max_of(big->values), s = bench::max_of(small->values);
      t.shown = fixed(b, 0) + " (vs " + fixed(s, 0) + ")";
      t.pass = b == s && b <= 16;
    }
    targets.push_back(t);
  }
  add_reference_targets(r, targets);
  return targets;
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
// bench::txn), in its order.
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
  if (o.wants("reference")) run_reference(o, R);
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
    report(results, evaluate(results), options);
    return status;
  } catch (const std::exception& e) {
    std::cerr << "mktl_bench: " << e.what() << std::endl;
    return 2;
  }
}
