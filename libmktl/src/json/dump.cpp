// Compact JSON writer: one output string, appended to in place; Python's
// spellings for doubles and non-finite values; big integers as bare digits.
#include "json/detail.hpp"

#include <mktl/error.hpp>
#include <mktl/json.hpp>

#include <charconv>
#include <cmath>
#include <cstring>

namespace mktl::json {
namespace detail {

std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;       // no overlongs
    else if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (static_cast<std::size_t>(end - p) < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i)
    if ((p[i] & 0xC0) != 0x80) return 0;
  return len;
}

bool valid_utf8(std::string_view text) noexcept {
  auto* p = reinterpret_cast<const unsigned char*>(text.data());
  auto* end = p + text.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    std::size_t n = utf8_sequence(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

void append_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  auto* p = reinterpret_cast<const unsigned char*>(text.data());
  auto* end = p + text.size();
  while (p < end) {
    // Copy the longest run that needs no escaping in one go.
    auto* run = plain_run(p, end);
    if (run != p) {
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(run - p));
      p = run;
      if (p == end) break;
    }
    const unsigned char c = *p;
    if (c >= 0x80) {
      std::size_t n = utf8_sequence(p, end);
      if (n == 0) {
        out.append("\xEF\xBF\xBD");  // U+FFFD: never emit bytes a peer cannot decode
        ++p;
      } else {
        out.append(reinterpret_cast<const char*>(p), n);
        p += n;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default: {
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.append(esc, 6);
      }
    }
    ++p;
  }
  out.push_back('"');
}

void append_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(value)) {
    out.append(value < 0 ? "-Infinity" : "Infinity");
    return;
  }
  // Shortest round-trip digits in scientific form, then laid out as Python's
  // repr() does: positional for exponents -4..15, else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  const char* p = buf;
  const char* end = res.ptr;
  const char* e_pos = static_cast<const char*>(std::memchr(p, 'e', static_cast<std::size_t>(end - p)));
  int exponent = 0;
  std::from_chars(e_pos + 1 + (e_pos[1] == '+'), end, exponent);
  if (exponent < -4 || exponent >= 16) {
    out.append(p, end);
    return;
  }
  if (*p == '-') {
    out.push_back('-');
    ++p;
  }
  char digits[32];
  std::size_t n = 0;
  for (const char* q = p; q < e_pos; ++q)
    if (*q != '.') digits[n++] = *q;
  if (exponent < 0) {
    out.append("0.");
    out.append(static_cast<std::size_t>(-exponent - 1), '0');
    out.append(digits, n);
    return;
  }
  const std::size_t int_digits = static_cast<std::size_t>(exponent) + 1;
  if (n <= int_digits) {
    out.append(digits, n);
    out.append(int_digits - n, '0');
    out.append(".0");
  } else {
    out.append(digits, int_digits);
    out.push_back('.');
    out.append(digits + int_digits, n - int_digits);
  }
}

}  // namespace detail

namespace {

template <class T>
void append_integer(std::string& out, T value) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

void write(std::string& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: out.append("null"); return;
    case Json::value_t::boolean: out.append(value.get_ref<const Json::boolean_t&>() ? "true" : "false"); return;
    case Json::value_t::number_integer: append_integer(out, value.get_ref<const Json::number_integer_t&>()); return;
    case Json::value_t::number_unsigned: append_integer(out, value.get_ref<const Json::number_unsigned_t&>()); return;
    case Json::value_t::number_float: detail::append_double(out, value.get_ref<const Json::number_float_t&>()); return;
    case Json::value_t::string: detail::append_string(out, value.get_ref<const Json::string_t&>()); return;
    case Json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& element : value.get_ref<const Json::array_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        write(out, element);
      }
      out.push_back(']');
      return;
    }
    case Json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, element] : value.get_ref<const Json::object_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        detail::append_string(out, key);
        out.push_back(':');
        write(out, element);
      }
      out.push_back('}');
      return;
    }
    case Json::value_t::binary: {
      const auto& bin = value.get_binary();
      if (!bin.has_subtype() || bin.subtype() != detail::kBigintSubtype)
        throw TypeError("binary data is not JSON serializable");
      out.append(reinterpret_cast<const char*>(bin.data()), bin.size());
      return;
    }
    case Json::value_t::discarded: break;
  }
  throw TypeError("discarded JSON value is not serializable");
}

}  // namespace

void dump_to(std::string& out, const Json& value) { write(out, value); }

std::string dump(const Json& value) {
  std::string out;
  out.reserve(64);
  write(out, value);
  return out;
}

// ---- big integers --------------------------------------------------------------

namespace {

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

Json bigint(std::string_view decimal_digits) {
  std::string_view magnitude = decimal_digits;
  const bool negative = !magnitude.empty() && magnitude.front() == '-';
  if (negative) magnitude.remove_prefix(1);
  if (!all_digits(magnitude))
    throw ValueError("invalid big integer: '" + std::string(decimal_digits) + "'");
  // Canonical form (no leading zeros, no "-0") so equal numbers compare equal.
  while (magnitude.size() > 1 && magnitude.front() == '0') magnitude.remove_prefix(1);
  const bool zero = magnitude == "0";
  // Values that fit a native integer become one, so that a hash computed here
  // equals the same hash parsed from the wire.
  if (magnitude.size() <= 20) {
    std::uint64_t u = 0;
    auto res = std::from_chars(magnitude.data(), magnitude.data() + magnitude.size(), u);
    if (res.ec == std::errc()) {
      if (!negative) {
        if (u <= static_cast<std::uint64_t>(INT64_MAX)) return Json(static_cast<std::int64_t>(u));
        return Json(u);
      }
      if (u <= static_cast<std::uint64_t>(INT64_MAX)) return Json(-static_cast<std::int64_t>(u));
      if (u == static_cast<std::uint64_t>(INT64_MAX) + 1) return Json(INT64_MIN);
    }
  }
  Json::binary_t::container_type bytes;
  bytes.reserve(magnitude.size() + 1);
  if (negative && !zero) bytes.push_back('-');
  bytes.insert(bytes.end(), magnitude.begin(), magnitude.end());
  return Json::binary(std::move(bytes), detail::kBigintSubtype);
}

Json bigint(unsigned __int128 value) {
  char buf[40];
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + static_cast<int>(value % 10));
    value /= 10;
  } while (value != 0);
  return bigint(std::string_view(p, static_cast<std::size_t>(buf + sizeof buf - p)));
}

bool is_bigint(const Json& value) {
  if (!value.is_binary()) return false;
  const auto& bin = value.get_binary();
  return bin.has_subtype() && bin.subtype() == detail::kBigintSubtype;
}

std::string bigint_digits(const Json& value) {
  if (is_bigint(value)) {
    const auto& bin = value.get_binary();
    return std::string(bin.begin(), bin.end());
  }
  // Any integer has digits; this keeps callers free of the native/big split.
  if (value.is_number_integer() || value.is_number_unsigned()) return dump(value);
  throw TypeError("not an integer: " + std::string(value.type_name()));
}

}  // namespace mktl::json
