// One row of mktl_bench's table, as every group of it fills one: a value
// per repetition, or a note saying why there is none. Not part of libmktl.
#pragma once

#include <string>
#include <vector>

namespace bench {

enum class Unit { rate, bytes_rate, ms, us, mb, count, number };

struct Series {
  std::string name;
  std::string what;
  Unit unit = Unit::rate;
  std::vector<double> values;
  std::string note;  // why it was skipped, if it was
};

// The row `name` of a group's rows, added at the end (in table order) the
// first time it is asked for.
inline Series& row_of(std::vector<Series>& rows, const std::string& name, const std::string& what, Unit unit) {
  for (auto& s : rows)
    if (s.name == name) return s;
  rows.push_back(Series{name, what, unit, {}, {}});
  return rows.back();
}

}  // namespace bench
