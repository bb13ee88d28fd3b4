// The rows mktl_bench measured, by name and in table order, that every group
// of it fills and the report reads (bench/report.hpp). Not part of libmktl.
#pragma once

#include "series.hpp"

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace bench {

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

}  // namespace bench
