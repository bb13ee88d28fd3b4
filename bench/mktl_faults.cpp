// mktl_faults: the client side of the fault and load runs (docs/reliability.md,
// "Faults and load"). The scripts (scripts/kill9.sh, scripts/stall.sh,
// scripts/load.sh, scripts/restart.sh) and their short passes in tests/cli
// start the daemons; this program talks to them over real sockets.
//
//   mktl_faults writer EP STORE --log FILE --start N KEY...  [--txn KEY]
//       SETs KEY... in turn, values N, N+1, ...; logs "S key v" before each
//       SET and "A key v" once it is answered (and "T ref" for each answered
//       transaction on the record item --txn). Stops at the first failed
//       request, printing its error and how long it took to fail.
//   mktl_faults check EP STORE --log FILE [--txn KEY]
//       Reads a writer's log: each key must serve its last acknowledged value
//       or the one in flight after it; each answered transaction must be
//       committed. Prints "acked=N lost=L inflight=F txns=T txn_lost=X".
//   mktl_faults stall EP --pub PUB_EP --pid PID [--count N] [--runs R] [--stalled 0]
//       Against mktl_bench_daemon: GET latency of bench.value idle, then while
//       bench.burst publishes N broadcasts of bench.bcast with one live
//       subscriber (mktl::Client), which must get all N, and one stalled raw
//       SUB that never reads; the daemon's RSS; the built-in drop counter.
//       R bursts in a row, each with its own idle GETs just before it, and a
//       summary of the GET latency ratios. --stalled 0: the same without the
//       stalled SUB (no drop may be counted then).
//   mktl_faults load EP STORE --pid PID [--clients C] [--requests R]
//       C threads, each with its own mktl::Client, R requests each, SET and
//       GET of the client's own item cNNN in turn (values unique to client and
//       sequence number): every reply checked against its request.
//   mktl_faults flood EP STORE KEY --pid PID [--dealers D] [--seconds S] [--set] [--drain S]
//       D raw DEALERs send GETs (or SETs) of KEY as fast as ZeroMQ takes them
//       and read nothing for S seconds; the daemon's RSS meanwhile; then
//       every socket is read until quiet, and the ACKs, REPs and errors that
//       came back are counted (reading stops after 3 s of quiet, or --drain
//       seconds, default 120).
//   mktl_faults follow STORE KEY [--seconds S]
//       Finds STORE (discovery), subscribes to KEY and GETs it every 100 ms,
//       printing one line per broadcast and per GET result with the time.
//
// Exit status: 0 when every check held, 1 when one failed, 2 usage.
#include <mktl/mktl.hpp>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

long rss_kb(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "mktl_faults: " << why << "\n(see the header of bench/mktl_faults.cpp for the commands)\n";
  std::exit(2);
}

// Arguments: positionals and --name value options.
struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opt;
  std::string get(const std::string& name, const std::string& fallback = {}) const {
    auto it = opt.find(name);
    return it == opt.end() ? fallback : it->second;
  }
  long num(const std::string& name, long fallback) const {
    auto it = opt.find(name);
    return it == opt.end() ? fallback : std::atol(it->second.c_str());
  }
  bool has(const std::string& name) const { return opt.count(name) > 0; }
};

Args parse(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--set") {
      a.opt[s] = "1";
    } else if (s.rfind("--", 0) == 0) {
      if (i + 1 >= argc) usage(s + " needs a value");
      a.opt[s] = argv[++i];
    } else {
      a.pos.push_back(s);
    }
  }
  return a;
}

mktl::ClientOptions quiet_options() {
  auto o = mktl::ClientOptions::from_env();
  o.dns_sd_timeout = 0;
  o.ack_timeout = 5.0;  // a shared, loaded machine: an ACK may take more than the default 0.1 s
  return o;
}

// ---- writer / check ------------------------------------------------------------

int cmd_writer(const Args& a) {
  if (a.pos.size() < 3 || !a.has("--log")) usage("writer EP STORE --log FILE --start N KEY...");
  const std::string& ep = a.pos[0];
  const std::string& store = a.pos[1];
  std::vector<std::string> keys(a.pos.begin() + 2, a.pos.end());
  std::string txn = a.get("--txn");
  long value = a.num("--start", 1);
  FILE* log = std::fopen(a.get("--log").c_str(), "a");
  if (!log) usage("cannot open the log");
  auto opts = quiet_options();
  opts.timeout = 5.0;  // a REP that never comes fails within 5 s
  mktl::Client client(opts);
  client.connect(ep, store);
  long n = 0;
  for (;;) {
    const std::string& key = keys[static_cast<std::size_t>(n) % keys.size()];
    const std::string full = store + "." + key;
    auto t0 = Clock::now();
    try {
      std::fprintf(log, "S %s %ld\n", key.c_str(), value);
      std::fflush(log);
      client.set(full, mktl::Reading(mktl::Json(value)));
      std::fprintf(log, "A %s %ld\n", key.c_str(), value);
      std::fflush(log);
      if (!txn.empty() && n % 4 == 0) {
        mktl::Json row = {{"trader", "faults"}, {"symbol", "K9"}, {"side", "buy"}, {"qty", value}, {"limit_price", 1.0}};
        auto rep = client.call("SET", store + "." + txn, mktl::Json{{"value", row}});
        std::fprintf(log, "T %s\n", rep.at("value").at("ref").get<std::string>().c_str());
        std::fflush(log);
      }
    } catch (const std::exception& e) {
      std::printf("writer stopped after %ld SETs: %s (failed after %.3f s)\n", n, e.what(), since(t0));
      std::fflush(stdout);
      std::fclose(log);
      return 0;
    }
    ++value;
    ++n;
    if (n == 1) {
      std::printf("writer running\n");
      std::fflush(stdout);
    }
  }
}

int cmd_check(const Args& a) {
  if (a.pos.size() != 2 || !a.has("--log")) usage("check EP STORE --log FILE [--txn KEY]");
  const std::string& ep = a.pos[0];
  const std::string& store = a.pos[1];
  std::ifstream in(a.get("--log"));
  std::map<std::string, long> acked, sent;
  std::vector<std::string> refs;
  long n_acked = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag, key;
    long v = 0;
    ls >> tag >> key;
    if (tag == "T") {
      refs.push_back(line.substr(2));
      continue;
    }
    ls >> v;
    if (tag == "S") sent[key] = v;
    if (tag == "A") {
      acked[key] = v;
      ++n_acked;
    }
  }
  mktl::Client client(quiet_options());
  client.connect(ep, store);
  long lost = 0, inflight = 0;
  for (auto& [key, v] : acked) {
    long served = client.get(store + "." + key).value.get<long>();
    if (served == v) continue;
    if (served == sent[key] && sent[key] > v) {
      ++inflight;  // the SET in flight at the kill was committed before its REP went out
      continue;
    }
    ++lost;
    std::printf("LOST: %s serves %ld, last acknowledged %ld (sent %ld)\n", key.c_str(), served, v, sent[key]);
  }
  long txn_lost = 0;
  std::string txn = a.get("--txn");
  for (auto& ref : refs) {
    auto rep = client.call("GET", store + "." + txn, mktl::Json{{"ref", ref}});
    if (rep.at("value").value("status", "") != "committed") {
      ++txn_lost;
      std::printf("LOST: transaction %s: %s\n", ref.c_str(), rep.dump().c_str());
    }
  }
  std::printf("acked=%ld lost=%ld inflight=%ld txns=%zu txn_lost=%ld\n", n_acked, lost, inflight, refs.size(), txn_lost);
  return lost || txn_lost ? 1 : 0;
}

// ---- stall -------------------------------------------------------------------------

// GET round trips in ms; a failed GET counts in `failed`.
std::vector<double> get_latencies(mktl::Client& client, const std::string& key, const std::atomic<bool>* until_false,
                                  int at_most, long& failed) {
  std::vector<double> ms;
  for (int i = 0; i < at_most; ++i) {
    if (until_false && !until_false->load()) break;
    auto t0 = Clock::now();
    try {
      client.get(key);
      ms.push_back(since(t0) * 1e3);
    } catch (const std::exception& e) {
      if (failed++ == 0) std::printf("GET failed: %s\n", e.what());
    }
  }
  return ms;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = NAN;
  in >> load;
  return load;
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

int cmd_stall(const Args& a) {
  if (a.pos.size() != 1 || !a.has("--pid") || !a.has("--pub")) usage("stall EP --pub PUB_EP --pid PID [--count N] [--runs R]");
  const std::string& ep = a.pos[0];
  long pid = a.num("--pid", 0);
  long count = a.num("--count", 100000);
  const long runs = std::max(1L, a.num("--runs", 1));
  mktl::Client getter(quiet_options());
  getter.connect(ep, "bench");
  mktl::Client live(quiet_options());
  live.connect(ep, "bench");
  const std::string pub = a.get("--pub");

  // The stalled subscriber: a SUB that subscribes and never reads. Small
  // buffers so that its queue fills rather than the kernel's.
  zmq::context_t ctx;
  zmq::socket_t stalled(ctx, zmq::socket_type::sub);
  stalled.set(zmq::sockopt::rcvhwm, 1000);
  stalled.set(zmq::sockopt::rcvbuf, 65536);
  stalled.set(zmq::sockopt::subscribe, "bench.bcast.");
  const bool with_stalled = a.get("--stalled", "1") != "0";  // 0: the same run without it, for comparison
  if (with_stalled) stalled.connect(pub);

  std::atomic<long> received{0};
  auto sub = live.subscribe("bench.bcast", [&](const std::string&, const mktl::Reading&) { ++received; });
  // Both subscriptions are in place once a broadcast reaches the live one.
  long before = 0;
  for (int i = 0; i < 200 && received.load() == before; ++i) {
    live.set("bench.burst", mktl::Reading(mktl::Json(1)));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (received.load() == 0) {
    std::printf("FAIL: the live subscriber got nothing\n");
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the stalled SUB's subscription lands too
  const std::string drops_key = "bench._bench1drops";
  int rc = 0;
  long complete = 0;
  std::vector<double> ratios50, ratios99;
  for (long run = 1; run <= runs; ++run) {
    long drops0 = getter.get(drops_key).value.get<long>();
    long get_failed = 0;
    const double load = load_average();
    auto idle = get_latencies(getter, "bench.value", nullptr, 2000, get_failed);
    long rss0 = rss_kb(pid);
    before = received.load();

    std::atomic<bool> bursting{true}, publishing{true};
    long rss_max = rss0;
    std::vector<double> busy;
    auto t0 = Clock::now();
    double publish_s = 0;
    // The burst item's SET returns once it has published all N.
    std::thread burst([&] {
      live.set("bench.burst", mktl::Reading(mktl::Json(count)), 600.0);
      publish_s = since(t0);
      publishing = false;
    });
    std::thread sampler([&] {
      while (bursting.load()) {
        rss_max = std::max(rss_max, rss_kb(pid));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    busy = get_latencies(getter, "bench.value", &publishing, 1000000000, get_failed);
    burst.join();
    // The live subscriber gets every broadcast: wait (bounded) for the rest.
    // At most 60 s, and no more than 2 s without a new one.
    auto deadline = Clock::now() + std::chrono::seconds(60);
    auto last_progress = Clock::now();
    for (long seen = received.load(); received.load() - before < count && Clock::now() < deadline &&
                                      since(last_progress) < 2.0;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (received.load() != seen) {
        seen = received.load();
        last_progress = Clock::now();
      }
    }
    const double receive_s = since(t0);
    bursting = false;
    sampler.join();
    long got = received.load() - before;
    long drops = getter.get(drops_key).value.get<long>() - drops0;
    long rss1 = rss_kb(pid);
    double idle50 = percentile(idle, 0.5), idle99 = percentile(idle, 0.99);
    double busy50 = percentile(busy, 0.5), busy99 = percentile(busy, 0.99);
    if (!busy.empty()) {
      ratios50.push_back(busy50 / idle50);
      ratios99.push_back(busy99 / idle99);
    }
    std::printf(
        "run=%ld/%ld load=%.1f stalled_subscriber=%s broadcasts=%ld live_received=%ld client_dropped=%llu "
        "publish_s=%.2f received_s=%.2f drops_counted=%ld\n"
        "get_idle_ms p50=%.3f p99=%.3f n=%zu\nget_burst_ms p50=%.3f p99=%.3f n=%zu ratio_p50=%.2f ratio_p99=%.2f\n"
        "rss_kb before=%ld max=%ld after=%ld get_failed=%ld\n",
        run, runs, load, with_stalled ? "yes" : "no", count, got, static_cast<unsigned long long>(live.dropped_broadcasts()),
        publish_s, receive_s, drops, idle50, idle99, idle.size(), busy50, busy99, busy.size(), busy50 / idle50,
        busy99 / idle99, rss0, rss_max, rss1, get_failed);
    std::fflush(stdout);
    // Exit 1 for what must not happen: the live subscriber missing a
    // broadcast, no drop counted for the stalled subscriber, failed GETs.
    if (got == count) ++complete;
    if (got != count) {
      std::printf("FAIL: the live subscriber got %ld of %ld broadcasts (%ld missed)\n", got, count, count - got);
      rc = 1;
    }
    if (with_stalled && drops <= 0) {
      std::printf("FAIL: no drop counted for the stalled subscriber\n");
      rc = 1;
    }
    if (!with_stalled && drops != 0) {
      std::printf("FAIL: %ld drops counted without a stalled subscriber\n", drops);
      rc = 1;
    }
    if (get_failed) {
      std::printf("FAIL: %ld GETs failed\n", get_failed);
      rc = 1;
    }
  }
  if (runs > 1)
    std::printf("summary stalled_subscriber=%s runs=%ld live_got_all=%ld/%ld get_ratio_p50 median=%.2f max=%.2f "
                "get_ratio_p99 median=%.2f max=%.2f\n",
                with_stalled ? "yes" : "no", runs, complete, runs, median(ratios50),
                ratios50.empty() ? NAN : *std::max_element(ratios50.begin(), ratios50.end()), median(ratios99),
                ratios99.empty() ? NAN : *std::max_element(ratios99.begin(), ratios99.end()));
  return rc;
}

// ---- load ---------------------------------------------------------------------------

int cmd_load(const Args& a) {
  if (a.pos.size() != 2 || !a.has("--pid")) usage("load EP STORE --pid PID [--clients C] [--requests R]");
  const std::string& ep = a.pos[0];
  const std::string& store = a.pos[1];
  long pid = a.num("--pid", 0);
  int clients = static_cast<int>(a.num("--clients", 200));
  int requests = static_cast<int>(a.num("--requests", 1000));
  std::atomic<long> answered{0}, wrong{0}, failed{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::mutex report_mutex;
  std::vector<std::string> reports;
  std::vector<double> all_ms;
  long rss0 = rss_kb(pid);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> ms;
      ms.reserve(static_cast<std::size_t>(requests));
      auto note = [&](const std::string& what) {
        std::lock_guard lock(report_mutex);
        if (reports.size() < 20) reports.push_back(what);
      };
      try {
        auto opts = quiet_options();
        opts.timeout = 60;
        opts.ack_timeout = 5;  // 200 clients on 2 CPUs: an ACK may take a while
        mktl::Client client(opts);
        client.connect(ep, store);
        char key[32];
        std::snprintf(key, sizeof key, "%s.c%03d", store.c_str(), c);
        long last = -1;
        ++ready;
        while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (int i = 0; i < requests; ++i) {
          auto t0 = Clock::now();
          try {
            if (i % 2 == 0) {
              long v = static_cast<long>(c) * 1000000 + i;  // unique to client and sequence number
              client.set(key, mktl::Reading(mktl::Json(v)));
              last = v;
            } else {
              auto got = client.get(key).value;
              if (!got.is_number_integer() || got.get<long>() != last) {
                ++wrong;
                note(std::string(key) + ": GET gave " + got.dump() + ", last acknowledged " + std::to_string(last));
              }
            }
            ++answered;
          } catch (const std::exception& e) {
            ++failed;
            note(std::string(key) + ": " + e.what());
          }
          ms.push_back(since(t0) * 1e3);
        }
      } catch (const std::exception& e) {
        ++ready;
        failed += requests;
        note(std::string("client ") + std::to_string(c) + ": " + e.what());
      }
      std::lock_guard lock(report_mutex);
      all_ms.insert(all_ms.end(), ms.begin(), ms.end());
    });
  }
  while (ready.load() < clients) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  long rss_ready = rss_kb(pid);
  auto t0 = Clock::now();
  go = true;
  long rss_max = rss_ready;
  std::atomic<bool> running{true};
  std::thread sampler([&] {
    while (running.load()) {
      rss_max = std::max(rss_max, rss_kb(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  for (auto& t : threads) t.join();
  double secs = since(t0);
  running = false;
  sampler.join();
  long rss1 = rss_kb(pid);
  long total = static_cast<long>(clients) * requests;
  std::printf(
      "clients=%d requests=%ld answered=%ld wrong=%ld failed=%ld seconds=%.2f rate=%.0f/s latency_ms p50=%.2f "
      "p99=%.2f\nrss_kb before=%ld connected=%ld max=%ld after=%ld\n",
      clients, total, answered.load(), wrong.load(), failed.load(), secs, static_cast<double>(answered.load()) / secs,
      percentile(all_ms, 0.5), percentile(all_ms, 0.99), rss0, rss_ready, rss_max, rss1);
  for (auto& r : reports) std::printf("FAIL: %s\n", r.c_str());
  return answered.load() == total && wrong.load() == 0 ? 0 : 1;
}

// ---- flood --------------------------------------------------------------------------

int cmd_flood(const Args& a) {
  if (a.pos.size() != 3 || !a.has("--pid")) usage("flood EP STORE KEY --pid PID [--dealers D] [--seconds S] [--set]");
  const std::string& ep = a.pos[0];
  const std::string target = a.pos[1] + "." + a.pos[2];
  long pid = a.num("--pid", 0);
  int dealers = static_cast<int>(a.num("--dealers", 20));
  double seconds = static_cast<double>(a.num("--seconds", 10));
  bool set = a.has("--set");
  zmq::context_t ctx;
  std::vector<zmq::socket_t> socks;
  for (int i = 0; i < dealers; ++i) {
    socks.emplace_back(ctx, zmq::socket_type::dealer);
    socks.back().set(zmq::sockopt::linger, 0);
    socks.back().connect(ep);
  }
  long rss0 = rss_kb(pid), rss_max = rss0;
  std::vector<long> sent(static_cast<std::size_t>(dealers), 0);
  long blocked = 0;  // sends ZeroMQ refused (EAGAIN: a full send queue, the high-water mark)
  auto t0 = Clock::now();
  auto next_sample = Clock::now();
  std::vector<std::pair<double, long>> samples;
  while (since(t0) < seconds) {
    for (int d = 0; d < dealers; ++d) {
      for (int burst = 0; burst < 100; ++burst) {
        char id[16];
        std::snprintf(id, sizeof id, "%08lx", sent[static_cast<std::size_t>(d)]);
        std::string payload = set ? nlohmann::json{{"value", sent[static_cast<std::size_t>(d)]}}.dump() : "{}";
        auto& s = socks[static_cast<std::size_t>(d)];
        auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
        if (!s.send(zmq::buffer(std::string("a")), more)) {
          ++blocked;
          break;
        }
        // Once the first frame is queued the rest of the message goes too.
        s.send(zmq::buffer(std::string(id)), zmq::send_flags::sndmore);
        s.send(zmq::buffer(std::string(set ? "SET" : "GET")), zmq::send_flags::sndmore);
        s.send(zmq::buffer(target), zmq::send_flags::sndmore);
        s.send(zmq::buffer(std::string()), zmq::send_flags::sndmore);
        s.send(zmq::buffer(payload), zmq::send_flags::none);
        ++sent[static_cast<std::size_t>(d)];
      }
    }
    if (Clock::now() >= next_sample) {
      long r = rss_kb(pid);
      rss_max = std::max(rss_max, r);
      samples.emplace_back(since(t0), r);
      next_sample += std::chrono::milliseconds(500);
    }
  }
  long rss_flood = rss_kb(pid);
  long total_sent = 0;
  for (long s : sent) total_sent += s;
  // Now read everything that came back, until 3 s pass with nothing.
  long acks = 0, reps = 0, errors = 0;
  std::map<std::string, long> error_types;
  std::vector<zmq::pollitem_t> items;
  for (auto& s : socks) items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
  auto quiet_since = Clock::now();
  const auto drain_start = Clock::now();
  const double drain_max = static_cast<double>(a.num("--drain", 120));
  while (since(quiet_since) < 3.0 && since(drain_start) < drain_max) {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(200));
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> frames;
      while (zmq::recv_multipart(socks[i], std::back_inserter(frames), zmq::recv_flags::dontwait)) {
        if (frames.size() >= 6) {
          std::string type = frames[2].to_string();
          if (type == "ACK") ++acks;
          if (type == "REP") {
            ++reps;
            auto j = nlohmann::json::parse(frames[5].to_string(), nullptr, false);
            if (j.is_object() && j.contains("error") && !j["error"].is_null()) {
              ++errors;
              ++error_types[j["error"].value("type", "?") + ": " + j["error"].value("text", "")];
            }
          }
        }
        frames.clear();
        quiet_since = Clock::now();
      }
    }
    rss_max = std::max(rss_max, rss_kb(pid));
  }
  long rss1 = rss_kb(pid);
  std::printf(
      "dealers=%d seconds=%.0f type=%s sent=%ld send_refused_eagain=%ld acks=%ld reps=%ld error_reps=%ld "
      "unanswered=%ld drain_s=%.1f\nrss_kb before=%ld end_of_flood=%ld max=%ld after_drain=%ld\nrss_samples",
      dealers, seconds, set ? "SET" : "GET", total_sent, blocked, acks, reps, errors, total_sent - reps, since(drain_start), rss0,
      rss_flood, rss_max, rss1);
  for (auto& [t, r] : samples) std::printf(" %.1fs:%ld", t, r);
  std::printf("\n");
  for (auto& [text, n] : error_types) std::printf("error %ld x %s\n", n, text.c_str());
  return 0;
}

// ---- follow -------------------------------------------------------------------------

int cmd_follow(const Args& a) {
  if (a.pos.size() != 2) usage("follow STORE KEY [--seconds S]");
  const std::string& store = a.pos[0];
  const std::string key = store + "." + a.pos[1];
  double seconds = static_cast<double>(a.num("--seconds", 3600));
  auto opts = quiet_options();
  opts.timeout = 2.0;
  opts.ack_timeout = 0.5;  // a daemon that is down: the GET fails within 0.5 s
  mktl::Client client(opts);
  client.find_store(store);
  std::mutex out;
  auto stamp = [] { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); };
  auto sub = client.subscribe(key, [&](const std::string&, const mktl::Reading& r) {
    std::lock_guard lock(out);
    std::printf("%.3f bcast %s\n", stamp(), r.value.dump().c_str());
    std::fflush(stdout);
  });
  {
    std::lock_guard lock(out);
    std::printf("%.3f follow ready\n", stamp());
    std::fflush(stdout);
  }
  auto t0 = Clock::now();
  while (since(t0) < seconds) {
    auto g0 = Clock::now();
    std::string line;
    try {
      line = "get ok " + client.get(key).value.dump();
    } catch (const std::exception& e) {
      line = "get error " + std::string(e.what());
    }
    {
      std::lock_guard lock(out);
      std::printf("%.3f %s (%.3f s)\n", stamp(), line.c_str(), since(g0));
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("no command");
  std::string cmd = argv[1];
  Args a = parse(argc, argv, 2);
  try {
    if (cmd == "writer") return cmd_writer(a);
    if (cmd == "check") return cmd_check(a);
    if (cmd == "stall") return cmd_stall(a);
    if (cmd == "load") return cmd_load(a);
    if (cmd == "flood") return cmd_flood(a);
    if (cmd == "follow") return cmd_follow(a);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  usage("unknown command " + cmd);
}
