// A printf-style `format` from a catalog, parsed and applied the way Python's
// `format % value` does. We parse the conversion ourselves and only ever hand
// snprintf a specification we built, with an argument of the matching type, so
// a catalog's format string can never cause undefined behaviour.
// Internal to libmktl. Pure functions, thread-safe.
#pragma once

#include <mktl/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace mktl::pyformat {

struct Spec {
  std::string prefix;   // literal text before the conversion ("%%" already "%")
  std::string suffix;   // literal text after it
  bool left = false;    // '-'
  bool plus = false;    // '+'
  bool space = false;   // ' '
  bool alt = false;     // '#'
  bool zero = false;    // '0'
  int width = 0;
  int precision = -1;   // -1 = none
  char conversion = 's';  // one of d i u o x X e E f F g G s r

  bool is_integer() const noexcept;  // d i u o x X
};

// Parses a format holding exactly one conversion (plus literal text and "%%").
// nullopt for none, several, '*' widths or an unknown conversion.
std::optional<Spec> parse(std::string_view format);

// Applies the spec to a value. Integer conversions round a float to the
// nearest integer (the reference rounds for %d so that 34.9999 shows as 35);
// float conversions take any number; %s/%r take anything. nullopt when the
// value does not fit the conversion (a string for %f, NaN for %d, ...).
std::optional<std::string> apply(const Spec& spec, const Json& value);

}  // namespace mktl::pyformat
