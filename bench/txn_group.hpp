// Group `txn` of mktl_bench: committed transactions through the real `markd
// --mkio` against a raw SQLite loop doing the same inserts with the same
// durability. See bench/txn_group.cpp and docs/performance.md.
#pragma once

#include "series.hpp"

#include <string>
#include <vector>

namespace bench::txn {

struct Settings {
  int reps = 7;
  double duration = 0.4;  // seconds of each workload per repetition
  bool quick = false;     // a few iterations: proves the group works
  std::string markd;      // path of the markd executable
  bool idle = false;      // --txn-idle: no thread wakes the CPUs (WakeCpus)
};

// Runs the group and returns its series in table order; throws
// std::runtime_error when the daemon, the raw loop or a transaction fails.
std::vector<Series> run(const Settings& settings);

}  // namespace bench::txn
