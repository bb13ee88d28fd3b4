// Group `reference` of mktl_bench: with $MKTL_REFERENCE naming a checkout of
// the Python reference, the same workloads run against it in the same
// process layout: a reference daemon (its sbin/mkd with
// bench/reference_daemon.py) and a reference client process
// (bench/reference_client.py), both Python. The drivers live next to this
// file; bench/reference_run.py keeps the reference's discovery on this
// machine.
#include "reference_group.hpp"

#include "bench_util.hpp"
#include "report.hpp"
#include "servers.hpp"

#include <mktl/mktl.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>

namespace bench::reference {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPython = "/usr/bin/python3";  // with zmq and numpy, as the interop tests need

#ifndef MKTL_BENCH_SOURCE_DIR
#error "MKTL_BENCH_SOURCE_DIR (the bench/ source directory, for its Python drivers) is not defined"
#endif

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

void reference_section(const Settings& o, std::vector<Series>& R) {
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
    for (auto& s : kReferenceSeries) row_of(R, s.name, s.what, s.unit);  // table order
    while (true) {
      auto l = client.read_line(120);
      if (!l) throw std::runtime_error("bench/reference_client.py stopped before it was done");
      if (*l == "reference_client done") break;
      if (l->rfind("result ", 0) != 0) continue;
      std::string name = bench::field_of(*l, "series");
      auto* series = std::find_if(std::begin(kReferenceSeries), std::end(kReferenceSeries),
                                  [&](const ReferenceSeries& s) { return name == s.name; });
      if (series == std::end(kReferenceSeries)) throw std::runtime_error("unknown reference series in '" + *l + "'");
      row_of(R, series->name, series->what, series->unit)
          .values.push_back(std::atof(bench::field_of(*l, "value").c_str()));
    }
    client.wait();
  }

  {
    // `mk get` as a whole process, through reference_run.py (which runs bin/mk in its own interpreter).
    auto& s = row_of(R, "ref_mk_get", "reference `mk get refbench.value` (whole process)", Unit::ms);
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
      row_of(R, "mktl_on_ref_get", "mktl client → reference daemon, GET sequential", Unit::rate)
          .values.push_back(rate(get, D) + (sink < -1 ? 1 : 0));
      row_of(R, "mktl_on_ref_set", "mktl client → reference daemon, SET sequential", Unit::rate)
          .values.push_back(rate(set, D));
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
    row_of(R, "ref_ready10k", "reference 10,000 items: mkd start to setup_final()", Unit::ms)
        .values.push_back(seconds_since(start) * 1e3);
    row_of(R, "ref_rss10k", "reference 10,000 items: RSS when ready", Unit::mb)
        .values.push_back(bench::proc_status(d.pid(), "VmRSS") / 1024.0);
    row_of(R, "ref_threads10k", "reference 10,000 items: threads", Unit::count)
        .values.push_back(bench::proc_status(d.pid(), "Threads"));
    stop_reference_daemon(d);
  }
}

}  // namespace

std::vector<Series> run(const Settings& o) {
  std::vector<Series> R;
  auto log = [](const std::string& what) { std::cerr << "mktl_bench: " << what << std::endl; };
  const char* reference = std::getenv("MKTL_REFERENCE");
  if (!reference || !*reference) {
    log("MKTL_REFERENCE is not set: the comparison with the Python reference is skipped");
    return R;
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
    row_of(R, "reference", "Python reference (MKTL_REFERENCE)", Unit::count).note = problem;
  }
  log("the Python reference took " + fixed(seconds_since(start), 1) + " s");
  return R;
}

}  // namespace bench::reference
