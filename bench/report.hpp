// The report of mktl_bench: every row's median and min-max, and the targets
// (ratios to the baselines measured in the same run, absolute goals) with
// PASS/MISS, on stdout and, if asked, as Markdown. See bench/report.cpp.
#pragma once

#include "results.hpp"
#include "series.hpp"

#include <string>
#include <vector>

namespace bench {

struct Target {
  std::string what;
  std::string shown;   // the measured figure as text
  std::string goal;
  bool pass = false;
  bool skipped = false;
  bool info = false;  // shown for diagnosis, not a target
};

// `v` with `digits` digits after the point.
std::string fixed(double v, int digits);
// `v` as text in its unit ("1.2 k/s", "3.40 ms").
std::string show(double v, Unit unit);

// The targets, in the order the report shows them, measured against `r`.
std::vector<Target> evaluate(const Results& r);

// Prints the table of `results` and of `targets`; with a `markdown` file
// name, also writes both there as Markdown, under a line that gives the
// repetitions (`reps`) and the seconds per timed run (`duration`).
void report(const Results& results, const std::vector<Target>& targets, const std::string& markdown, int reps,
            double duration);

}  // namespace bench
