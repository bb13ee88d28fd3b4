// Starting the servers mktl_bench measures, and the 10,000-item catalog of
// its start-up benchmarks; shared by mktl_bench.cpp and
// bench/reference_group.cpp. Not part of libmktl.
#pragma once

#include "bench_util.hpp"

#include <mktl/mktl.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// Starts `argv` and waits for a line starting with `prefix` (returned in
// `line_out`, if given); throws if none comes within 60 s.
inline Child start_server(const std::vector<std::string>& argv, const std::string& prefix, std::string* line_out) {
  auto child = Child::spawn(argv);
  auto line = child.wait_for(prefix, 60);
  if (!line) throw std::runtime_error(argv[0] + " did not become ready");
  if (line_out) *line_out = *line;
  return child;
}

// The 10,000-item catalog of the start-up benchmarks, as a catalog file.
inline void write_fill_catalog(const std::string& path) {
  mktl::Json items = mktl::Json::object();
  char key[32];
  for (int k = 0; k < 10000; ++k) {
    std::snprintf(key, sizeof key, "fill%05d", k);
    items[key] = {{"type", "numeric"}, {"description", "filler item for the start-up benchmark"},
                  {"units", "V"}, {"initial", k}};
  }
  std::ofstream(path) << items.dump();
}

}  // namespace bench
