// mktl_bench_daemon: the daemon side of the mktl benchmarks, built on
// mktl::Daemon like any user daemon.
//
//   mktl_bench_daemon [--fill N]
//
// Store "bench", alias "bench1", bound to 127.0.0.1 on free ports, no
// discovery, no persistence. Items:
//   value      numeric, initial 1       (sequential GET/SET)
//   counter    numeric, initial 0       (fire-and-forget SETs)
//   bcast      string                   (the broadcast being measured)
//   stall      numeric                  (what a stalled subscriber listens to)
//   burst      numeric: a SET of N publishes N new values of bcast
//   image      bulk, 8 MiB of uint16    (bulk GET)
//   bulkburst  numeric: a SET of N publishes image N times
// With --fill N the daemon instead serves N plain numeric items fill00000...
// (each with an initial value), for the start-up measurement.
//
// Prints "bench_daemon ready rep=PORT pub=PORT construct_ms=X start_ms=Y
// rss_kb=Z threads=T" once it answers requests; stops on SIGTERM/SIGINT.
#include <mktl/mktl.hpp>

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

namespace {

long status_field(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  std::size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  return -1;
}

// Publishes N fresh values of another item, as fast as the runtime takes them.
class BurstItem : public mktl::Item {
 public:
  BurstItem(mktl::Daemon& d, std::string key, std::string target) : Item(d, std::move(key)), target_(std::move(target)) {}
  void req_set(const mktl::Reading& value) override {
    long n = value.value.is_number() ? value.value.get<long>() : 0;
    mktl::Item& target = daemon().item(target_);
    char text[80];
    for (long i = 0; i < n; ++i) {
      // A ~60-character string keeps the broadcast at about 100 bytes.
      std::snprintf(text, sizeof text, "%060llu", static_cast<unsigned long long>(seq_++));
      target.publish(mktl::Json(text));
    }
  }

 private:
  std::string target_;
  unsigned long long seq_ = 0;
};

// Re-publishes the bulk item N times (forced: the bytes do not change).
class BulkBurstItem : public mktl::Item {
 public:
  using Item::Item;
  void req_set(const mktl::Reading& value) override {
    long n = value.value.is_number() ? value.value.get<long>() : 0;
    mktl::Item& image = daemon().item("image");
    mktl::Reading current = image.current();
    for (long i = 0; i < n; ++i) image.publish(current, true);
  }
};

class BenchDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
  void setup() override {
    if (!items().contains("burst")) return;  // --fill: plain items only
    add_item<BurstItem>("burst", "bcast");
    add_item<BulkBurstItem>("bulkburst");
  }
};

mktl::Json bench_items(int fill) {
  mktl::Json items = mktl::Json::object();
  if (fill > 0) {
    char key[32];
    for (int i = 0; i < fill; ++i) {
      std::snprintf(key, sizeof key, "fill%05d", i);
      items[key] = {{"type", "numeric"}, {"description", "filler item for the start-up benchmark"},
                    {"units", "V"}, {"initial", i}};
    }
    return items;
  }
  items["value"] = {{"type", "numeric"}, {"initial", 1}};
  items["counter"] = {{"type", "numeric"}, {"initial", 0}};
  items["bcast"] = {{"type", "string"}};
  items["stall"] = {{"type", "numeric"}};
  items["burst"] = {{"type", "numeric"}};
  items["image"] = {{"type", "bulk"}};
  items["bulkburst"] = {{"type", "numeric"}};
  return items;
}

}  // namespace

int main(int argc, char** argv) {
  int fill = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--fill") == 0 && i + 1 < argc) fill = std::atoi(argv[++i]);
  }
  // Every thread the daemon starts inherits this mask; main takes the signal.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    using Clock = std::chrono::steady_clock;
    mktl::DaemonOptions options;
    options.rep_endpoint = "tcp://127.0.0.1:0";
    options.pub_endpoint = "tcp://127.0.0.1:0";
    options.hostname = "127.0.0.1";
    options.persistence = false;
    options.discovery = false;
    auto t0 = Clock::now();
    BenchDaemon daemon("bench", fill > 0 ? "fill" : "bench1", bench_items(fill), options);
    auto t1 = Clock::now();
    daemon.start();
    auto t2 = Clock::now();
    if (fill == 0) {
      std::vector<std::uint16_t> pixels(4u << 20);
      for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint16_t>(i);
      daemon.item("image").publish(mktl::Reading(mktl::Bulk::from_vector(std::move(pixels), {2048, 2048})));
    }
    auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
    std::cout << "bench_daemon ready rep=" << daemon.rep_port() << " pub=" << daemon.pub_port()
              << " construct_ms=" << ms(t1 - t0) << " start_ms=" << ms(t2 - t1) << " rss_kb=" << status_field("VmRSS")
              << " threads=" << status_field("Threads") << std::endl;
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    daemon.stop();
  } catch (const std::exception& e) {
    std::cerr << "mktl_bench_daemon: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
