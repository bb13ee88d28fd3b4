#include "runtime/builtins.hpp"

#include "runtime/runtime.hpp"

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace mktl::detail {

namespace {

Json describe(const char* text, const char* type, bool settable) {
  Json d = Json::object();
  d["description"] = text;
  if (type) d["type"] = type;
  d["settable"] = settable;
  return d;
}

// Seconds since the daemon started; published every second (the heartbeat).
class Uptime : public Item {
 public:
  Uptime(Daemon& d, std::string key) : Item(d, std::move(key)) { poll(1.0); }
  std::optional<Reading> req_refresh() override { return Reading(now() - daemon().runtime().start_time()); }
};

// CPU use of this process in percent of one core, over the last period.
class ProcessorUsage : public Item {
 public:
  ProcessorUsage(Daemon& d, std::string key) : Item(d, std::move(key)) { poll(1.0); }
  std::optional<Reading> req_refresh() override {
    double cpu = cpu_seconds(), t = now();
    double percent = 0.0;
    if (last_time_ > 0 && t > last_time_) percent = 100.0 * (cpu - last_cpu_) / (t - last_time_);
    last_cpu_ = cpu;
    last_time_ = t;
    return Reading(std::round(percent * 100.0) / 100.0, t);
  }

 private:
  static double cpu_seconds() {
    std::ifstream in("/proc/self/stat");
    std::string line;
    std::getline(in, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  double last_cpu_ = 0, last_time_ = 0;
};

// Resident memory of this process in kB, read at each GET.
class MemoryUsage : public Item {
 public:
  using Item::Item;
  std::optional<Reading> req_refresh() override {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmRSS:", 0) == 0) return Reading(std::stoll(line.substr(6)));
    return std::nullopt;
  }
  Reading req_get(const Request&) override {
    req_poll();
    return current();
  }
};

// Broadcasts dropped for stalled subscribers since the daemon started
// (transport::Server::broadcasts_dropped): fresh at each GET, and broadcast
// at most once a second, when it changed.
class BroadcastDrops : public Item {
 public:
  BroadcastDrops(Daemon& d, std::string key) : Item(d, std::move(key)) { poll(1.0); }
  std::optional<Reading> req_refresh() override {
    auto* server = daemon().runtime().server();
    return Reading(static_cast<std::int64_t>(server ? server->broadcasts_dropped() : 0));
  }
  Reading req_get(const Request&) override {
    req_poll();
    return current();
  }
};

}  // namespace

void add_builtin_descriptions(Json& items, const std::string& alias) {
  const std::string p = "_" + alias;
  items[p + "cat"] = describe("JSON description of all items for this daemon.", nullptr, false);
  auto clk = describe("Uptime for this daemon.", "numeric", false);
  clk["units"] = "seconds";
  clk["format"] = "%.3f";
  items[p + "clk"] = clk;
  auto cpu = describe("Processor consumption by this daemon.", "numeric", false);
  cpu["units"] = "percent";
  cpu["format"] = "%.2f";
  items[p + "cpu"] = cpu;
  auto drops = describe(
      "Broadcasts dropped for subscribers since this daemon started, once per subscriber that missed one: "
      "those sent while a subscriber read nothing with its queue full.",
      "numeric", false);
  items[p + "drops"] = drops;
  auto dev = describe("A terse description for the function of this daemon.", "string", true);
  dev["persist"] = true;
  dev["initial"] = "";
  items[p + "dev"] = dev;
  auto host = describe("The hostname where this daemon is running.", "string", false);
  items[p + "host"] = host;
  auto mem = describe("Physical memory consumption by this daemon.", "numeric", false);
  mem["units"] = "kilobytes";
  items[p + "mem"] = mem;
  auto pid = describe("Process identifier (PID) for this daemon.", "numeric", false);
  items[p + "pid"] = pid;
  items[p + "uuid"] = describe("Universally unique identifier (UUID) for this daemon.", "string", false);
}

void add_builtin_items(Daemon& daemon) {
  const std::string p = "_" + daemon.alias();
  daemon.add_item<Uptime>(p + "clk");
  daemon.add_item<ProcessorUsage>(p + "cpu");
  daemon.add_item<MemoryUsage>(p + "mem");
  daemon.add_item<BroadcastDrops>(p + "drops");
  // The pid is published rather than written in the catalog, so that the
  // catalog's hash (and every client's cache) survives a restart.
  daemon.add_item<Item>(p + "pid").publish(static_cast<std::int64_t>(::getpid()));
  auto& uuid = daemon.add_item<Item>(p + "uuid");
  uuid.publish(daemon.uuid());
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  daemon.add_item<Item>(p + "host").publish(std::string(daemon.options().hostname.empty() ? host : daemon.options().hostname.c_str()));
}

void publish_catalog_item(Daemon& daemon) {
  if (auto* cat = daemon.find_item("_" + daemon.alias() + "cat")) cat->publish(daemon.catalog_block());
}

}  // namespace mktl::detail
