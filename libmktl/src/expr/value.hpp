// Operations on the expression language's values (JSON): equality, order,
// arithmetic, and the built-in functions. Internal to libmktl; pure and
// thread-safe. Errors are mktl::TypeError / ValueError whose text starts
// with WHAT ("'+'", "ROUND()") and its column.
#pragma once

#include "expr/ast.hpp"

#include <mktl/json.hpp>

#include <compare>
#include <cstdint>
#include <string>

namespace mktl::expr {

// Longest string an expression may build (by + or a function), in bytes.
inline constexpr std::size_t kMaxStringBytes = std::size_t{1} << 24;

// "NULL", "boolean", "integer", "float", "string", "array", "object", "big integer".
const char* type_name(const Json& value);

// "'+' at column 7" style prefix for messages.
std::string where(const char* what, std::uint32_t column);

// ==: any two values; numbers by value (1 == 1.0), other types must match.
bool equal(const Json& a, const Json& b);

// <, <=, >, >=: two numbers or two strings, else TypeError. NaN is unordered.
std::partial_ordering order(const Json& a, const Json& b, const char* what, std::uint32_t column);

// + - * /. Integers stay integers for + - * (ValueError on overflow); / is a
// float always (ValueError on division by zero); + also joins two strings.
Json arith(Arith op, const Json& a, const Json& b, std::uint32_t column);
// Appends B to the string A in place (a + b where a is a temporary string).
void append(std::string& a, const std::string& b, std::uint32_t column);
Json negate(const Json& a, std::uint32_t column);

// The built-in functions.
Json round_value(const Json& x, const Json* digits, std::uint32_t column);
Json abs_value(const Json& x, std::uint32_t column);
Json len_value(const Json& x, std::uint32_t column);

}  // namespace mktl::expr
