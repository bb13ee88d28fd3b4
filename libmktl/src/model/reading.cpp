// Reading and Request helpers: the wall clock and value comparison.
#include <mktl/item.hpp>
#include <mktl/reading.hpp>

#include <chrono>
#include <cmath>

namespace mktl {

double now() noexcept {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

namespace {

// nlohmann's == says NaN != NaN, which would make an item stuck at NaN look
// changed on every poll; here NaN equals NaN, everything else as ==.
bool same_json(const Json& a, const Json& b) {
  if (a.is_number_float() && b.is_number_float()) {
    const double x = a.get<double>(), y = b.get<double>();
    return x == y || (std::isnan(x) && std::isnan(y));
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same_json(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
      if (ia.key() != ib.key() || !same_json(ia.value(), ib.value())) return false;
    return true;
  }
  return a == b;
}

}  // namespace

bool Reading::same_value(const Reading& other) const {
  if (bulk.has_value() != other.bulk.has_value()) return false;
  if (bulk && !(*bulk == *other.bulk)) return false;
  return same_json(value, other.value);
}

bool Request::refresh() const {
  if (!payload.is_object()) return false;
  auto it = payload.find("refresh");
  if (it == payload.end()) return false;
  // Python's `refresh == True` also holds for 1 and 1.0.
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number()) return it->get<double>() == 1.0;
  return false;
}

}  // namespace mktl
