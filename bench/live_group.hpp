// Group `live` of mktl_bench: live collections (a stream and a keyed
// collection of `markd` fed by transactions) against plain item broadcasts
// of the same daemon, driven the same way. See bench/live_group.cpp and
// docs/performance.md, "Live collections".
#pragma once

#include "series.hpp"

#include <string>
#include <vector>

namespace bench::live {

struct Settings {
  int reps = 7;
  double duration = 0.4;  // seconds of each workload per repetition
  bool quick = false;     // a few iterations: proves the group works
  std::string markd;      // path of the markd executable
};

// Runs the group and returns its series in table order; throws
// std::runtime_error when the daemon or a workload fails.
std::vector<Series> run(const Settings& settings);

}  // namespace bench::live
