// A Reading is one value of an item together with the time it took that value:
// what a GET returns, what a broadcast carries and what a SET asks for.
#pragma once

#include <mktl/bulk.hpp>
#include <mktl/json.hpp>

#include <optional>

namespace mktl {

// Seconds since the UNIX epoch, as a double (the wire's `time` field).
double now() noexcept;

struct Reading {
  Json value;                 // null for bulk values and for items never given a value
  double time = 0.0;          // UNIX epoch seconds
  std::optional<Bulk> bulk;   // present for bulk items only

  Reading() = default;
  Reading(Json v, double t = now()) : value(std::move(v)), time(t) {}
  Reading(Bulk b, double t = now()) : time(t), bulk(std::move(b)) {}

  // Same value (and bulk); the time is not compared.
  bool same_value(const Reading& other) const;
};

}  // namespace mktl
