// Python's spelling of values and Python's number parsing, so that texts we
// send (error messages, formatted values) read exactly as the reference's.
// Internal to libmktl. Pure functions, thread-safe.
#pragma once

#include <mktl/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mktl::python {

// repr() of a str: single quotes unless the text holds ' and no ", escapes as
// Python does (\\, \n, \r, \t, \xNN for other control characters).
std::string repr(std::string_view text);

// str() of a JSON value as Python would hold it: None, True/False, 1, 1.5,
// 1e+20, nan, inf; strings raw at top level and repr() inside containers;
// lists "[1, 'a']", dicts "{'a': 1}". Big integers as their digits.
std::string str(const Json& value);

// repr() of a JSON value (str() except that a top-level string is quoted).
std::string repr_value(const Json& value);

// Python class name of the value: NoneType, bool, int, float, str, list, dict.
const char* type_name(const Json& value) noexcept;

// int(text): surrounding whitespace, a sign, digits with single '_' between
// them. Returns an int64, a uint64 or a big integer; nullopt if not an int.
std::optional<Json> parse_int(std::string_view text);

// float(text): as int() plus a fraction and exponent, and nan/inf/infinity in
// any case. nullopt if Python would raise ValueError.
std::optional<double> parse_float(std::string_view text);

}  // namespace mktl::python
