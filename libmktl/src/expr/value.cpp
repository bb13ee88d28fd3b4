#include "expr/value.hpp"

#include <mktl/error.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace mktl::expr {
namespace {

using i128 = __int128;

bool is_integral(const Json& v) { return v.is_number_integer(); }  // int64 or uint64

i128 to_i128(const Json& v) {
  return v.is_number_unsigned() ? static_cast<i128>(v.get<std::uint64_t>()) : static_cast<i128>(v.get<std::int64_t>());
}

double to_double(const Json& v) {
  if (v.is_number_float()) return v.get<double>();
  if (v.is_number_unsigned()) return static_cast<double>(v.get<std::uint64_t>());
  return static_cast<double>(v.get<std::int64_t>());
}

// Exact for every int64, uint64 and double (long double has at least a
// 64-bit mantissa on the targets we build for).
long double to_long_double(const Json& v) {
  if (v.is_number_float()) return v.get<double>();
  if (v.is_number_unsigned()) return static_cast<long double>(v.get<std::uint64_t>());
  return static_cast<long double>(v.get<std::int64_t>());
}

// An int64 when it fits, else a uint64, else an overflow.
Json int_result(i128 value, const char* what, std::uint32_t column) {
  if (value >= std::numeric_limits<std::int64_t>::min() && value <= std::numeric_limits<std::int64_t>::max())
    return static_cast<std::int64_t>(value);
  if (value >= 0 && value <= static_cast<i128>(std::numeric_limits<std::uint64_t>::max()))
    return static_cast<std::uint64_t>(value);
  throw ValueError(where(what, column) + ": integer overflow");
}

std::partial_ordering compare_numbers(const Json& a, const Json& b) {
  if (is_integral(a) && is_integral(b)) return to_i128(a) <=> to_i128(b);
  return to_long_double(a) <=> to_long_double(b);
}

}  // namespace

const char* type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "NULL";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "integer";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "string";
    case Json::value_t::array: return "array";
    case Json::value_t::object: return "object";
    case Json::value_t::binary: return json::is_bigint(value) ? "big integer" : "binary";
    default: return "unknown";
  }
}

std::string where(const char* what, std::uint32_t column) {
  return std::string(what) + " at column " + std::to_string(column);
}

bool equal(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.type() != b.type()) return false;
  return a == b;
}

std::partial_ordering order(const Json& a, const Json& b, const char* what, std::uint32_t column) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b);
  if (a.is_string() && b.is_string()) {
    // Byte order of UTF-8 is code point order, as Python compares str.
    const int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? std::partial_ordering::less : c > 0 ? std::partial_ordering::greater : std::partial_ordering::equivalent;
  }
  throw TypeError(where(what, column) + ": cannot order " + type_name(a) + " and " + type_name(b) +
                  " (only two numbers or two strings)");
}

void append(std::string& a, const std::string& b, std::uint32_t column) {
  if (a.size() + b.size() > kMaxStringBytes)
    throw ValueError(where("'+'", column) + ": the string would be longer than " + std::to_string(kMaxStringBytes) +
                     " bytes");
  a += b;
}

Json arith(Arith op, const Json& a, const Json& b, std::uint32_t column) {
  const char* what = arith_text(op);
  if (!a.is_number() || !b.is_number()) {
    if (op == Arith::add && a.is_string() && b.is_string()) {
      std::string joined;
      joined.reserve(a.get_ref<const std::string&>().size() + b.get_ref<const std::string&>().size());
      joined = a.get_ref<const std::string&>();
      append(joined, b.get_ref<const std::string&>(), column);
      return joined;
    }
    throw TypeError(where(what, column) + ": cannot apply it to " + type_name(a) + " and " + type_name(b) +
                    (op == Arith::add ? " (only numbers, or two strings)" : " (only numbers)"));
  }
  if (op == Arith::div) {
    const double divisor = to_double(b);
    if (divisor == 0) throw ValueError(where(what, column) + ": division by zero");
    return to_double(a) / divisor;
  }
  if (is_integral(a) && is_integral(b)) {
    const i128 x = to_i128(a), y = to_i128(b);
    i128 r = 0;
    switch (op) {
      case Arith::add: r = x + y; break;  // |x|, |y| < 2^64: no 128-bit overflow
      case Arith::sub: r = x - y; break;
      case Arith::mul:
        if (__builtin_mul_overflow(x, y, &r)) throw ValueError(where(what, column) + ": integer overflow");
        break;
      case Arith::div: break;
    }
    return int_result(r, what, column);
  }
  const double x = to_double(a), y = to_double(b);
  switch (op) {
    case Arith::add: return x + y;
    case Arith::sub: return x - y;
    case Arith::mul: return x * y;
    case Arith::div: break;
  }
  return x / y;
}

Json negate(const Json& a, std::uint32_t column) {
  if (a.is_number_float()) return -a.get<double>();
  if (is_integral(a)) return int_result(-to_i128(a), "unary '-'", column);
  throw TypeError(where("unary '-'", column) + ": cannot negate " + type_name(a) + " (only numbers)");
}

// Python's round(): half to even; ROUND(x) is an integer, ROUND(x, n) keeps
// x's type. Floats are rounded from their exact binary value, as printf
// does, which is what Python does too (ROUND(2.675, 2) is 2.67).
Json round_value(const Json& x, const Json* digits, std::uint32_t column) {
  if (!x.is_number()) throw TypeError(where("ROUND()", column) + ": cannot round " + type_name(x) + " (only numbers)");
  std::int64_t n = 0;
  if (digits != nullptr) {
    if (is_integral(*digits)) {
      const i128 d = to_i128(*digits);
      n = d > 400 ? 400 : d < -400 ? -400 : static_cast<std::int64_t>(d);
    } else if (digits->is_number_float() && std::isfinite(digits->get<double>())) {
      const double d = std::trunc(digits->get<double>());
      n = d > 400 ? 400 : d < -400 ? -400 : static_cast<std::int64_t>(d);
    } else {
      throw TypeError(where("ROUND()", column) + ": the number of digits must be a finite number, got " +
                      type_name(*digits));
    }
  }
  if (is_integral(x)) {
    if (n >= 0) return x;
    if (n < -19) return std::int64_t{0};  // 10^20 exceeds twice any 64-bit integer
    i128 scale = 1;
    for (std::int64_t i = 0; i < -n; ++i) scale *= 10;
    const i128 v = to_i128(x);
    i128 q = v / scale, r = v % scale;  // truncated toward zero
    const i128 twice = 2 * (r < 0 ? -r : r);
    if (twice > scale || (twice == scale && (q % 2 != 0))) q += v < 0 ? -1 : 1;
    return int_result(q * scale, "ROUND()", column);
  }
  const double v = x.get<double>();
  if (digits == nullptr) {
    if (!std::isfinite(v))
      throw ValueError(where("ROUND()", column) + ": cannot round " + (std::isnan(v) ? "NaN" : "infinity") +
                       " to an integer");
    const double r = std::nearbyint(v);  // the default rounding mode: half to even
    if (r >= -9223372036854775808.0 && r < 9223372036854775808.0) return static_cast<std::int64_t>(r);
    return r;  // too wide for an integer: the (integral) float
  }
  if (!std::isfinite(v) || n > 340) return v;
  if (n < 0) {
    if (n < -308) return std::copysign(0.0, v);
    const double scale = std::pow(10.0, static_cast<double>(-n));
    return std::nearbyint(v / scale) * scale;
  }
  std::array<char, 720> buf{};  // 309 integer digits + '.' + 340 decimals, with room
  const int written = std::snprintf(buf.data(), buf.size(), "%.*f", static_cast<int>(n), v);
  double r = v;
  if (written > 0 && static_cast<std::size_t>(written) < buf.size())
    std::from_chars(buf.data(), buf.data() + written, r);
  return r;
}

Json abs_value(const Json& x, std::uint32_t column) {
  if (x.is_number_float()) return std::fabs(x.get<double>());
  if (is_integral(x)) {
    const i128 v = to_i128(x);
    return int_result(v < 0 ? -v : v, "ABS()", column);
  }
  throw TypeError(where("ABS()", column) + ": cannot take the absolute value of " + type_name(x) + " (only numbers)");
}

// Characters (code points) of a string, as Python's len(); elements of an
// array or object.
Json len_value(const Json& x, std::uint32_t column) {
  if (x.is_string()) {
    std::int64_t count = 0;
    for (char c : x.get_ref<const std::string&>())
      if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
    return count;
  }
  if (x.is_array() || x.is_object()) return static_cast<std::int64_t>(x.size());
  throw TypeError(where("LEN()", column) + ": " + type_name(x) + " has no length (only strings, arrays, objects)");
}

const char* op_text(Op op) {
  switch (op) {
    case Op::eq: return "'=='";
    case Op::ne: return "'!='";
    case Op::lt: return "'<'";
    case Op::le: return "'<='";
    case Op::gt: return "'>'";
    case Op::ge: return "'>='";
    case Op::and_: return "AND";
    case Op::or_: return "OR";
    case Op::not_: return "NOT";
    case Op::contains: return "CONTAINS";
    case Op::starts_with: return "STARTS_WITH";
    case Op::in_list:
    case Op::in_value: return "IN";
    case Op::negate: return "unary '-'";
    default: return "expression";
  }
}

const char* arith_text(Arith op) {
  switch (op) {
    case Arith::add: return "'+'";
    case Arith::sub: return "'-'";
    case Arith::mul: return "'*'";
    case Arith::div: return "'/'";
  }
  return "?";
}

}  // namespace mktl::expr
