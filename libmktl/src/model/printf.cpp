#include "model/printf.hpp"

#include "model/python.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace mktl::pyformat {

namespace {

constexpr int kMaxWidth = 512;      // keeps a hostile catalog from asking for gigabytes
constexpr int kMaxPrecision = 100;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Appends literal text, turning "%%" into "%". Returns the offset of the
// first lone '%' (or npos).
std::size_t literal(std::string_view format, std::size_t pos, std::string& out) {
  while (pos < format.size()) {
    if (format[pos] != '%') {
      out.push_back(format[pos++]);
    } else if (pos + 1 < format.size() && format[pos + 1] == '%') {
      out.push_back('%');
      pos += 2;
    } else {
      return pos;
    }
  }
  return std::string_view::npos;
}

int read_number(std::string_view format, std::size_t& pos) {
  int n = 0;
  while (pos < format.size() && is_digit(format[pos])) {
    n = std::min(n * 10 + (format[pos] - '0'), 1 << 20);
    ++pos;
  }
  return n;
}

// Number of bytes of the first `count` UTF-8 code points of `text`.
std::size_t utf8_prefix(std::string_view text, std::size_t count) {
  std::size_t i = 0;
  while (i < text.size() && count > 0) {
    ++i;
    while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
    --count;
  }
  return i;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (char c : text)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

std::string pad(const Spec& spec, std::string body) {
  const auto length = utf8_length(body);
  const auto width = static_cast<std::size_t>(spec.width);
  if (length >= width) return body;
  if (spec.left) return body + std::string(width - length, ' ');
  return std::string(width - length, ' ') + body;
}

// An integer as (sign, magnitude) so that the whole int64/uint64 range works.
struct Integer {
  bool negative = false;
  std::uint64_t magnitude = 0;
};

std::optional<Integer> to_integer(const Json& value) {
  if (value.is_boolean()) return Integer{false, value.get<bool>() ? 1u : 0u};
  if (value.is_number_unsigned()) return Integer{false, value.get<std::uint64_t>()};
  if (value.is_number_integer()) {
    const auto i = value.get<std::int64_t>();
    if (i >= 0) return Integer{false, static_cast<std::uint64_t>(i)};
    return Integer{true, static_cast<std::uint64_t>(-(i + 1)) + 1u};
  }
  if (value.is_number_float()) {
    const double d = std::round(value.get<double>());  // half away from zero
    if (!std::isfinite(d) || std::fabs(d) >= 1.8e19) return std::nullopt;
    if (d >= 0) return Integer{false, static_cast<std::uint64_t>(d)};
    return Integer{true, static_cast<std::uint64_t>(-d)};
  }
  return std::nullopt;
}

std::optional<double> to_double(const Json& value) {
  if (value.is_boolean()) return value.get<bool>() ? 1.0 : 0.0;
  if (value.is_number()) return value.get<double>();
  if (json::is_bigint(value)) return std::stod(json::bigint_digits(value));
  return std::nullopt;
}

std::string format_integer(const Spec& spec, Integer n) {
  int base = 10;
  const char* digit_chars = "0123456789abcdef";
  std::string prefix;
  switch (spec.conversion) {
    case 'o': base = 8; if (spec.alt) prefix = "0o"; break;  // Python's spelling, not C's "0"
    case 'x': base = 16; if (spec.alt) prefix = "0x"; break;
    case 'X': base = 16; digit_chars = "0123456789ABCDEF"; if (spec.alt) prefix = "0X"; break;
    default: break;
  }
  std::string digits;
  std::uint64_t m = n.magnitude;
  do {
    digits.push_back(digit_chars[m % static_cast<unsigned>(base)]);
    m /= static_cast<unsigned>(base);
  } while (m != 0);
  if (spec.precision > 0 && digits.size() < static_cast<std::size_t>(spec.precision))
    digits.append(static_cast<std::size_t>(spec.precision) - digits.size(), '0');
  std::reverse(digits.begin(), digits.end());
  std::string sign = n.negative ? "-" : spec.plus ? "+" : spec.space ? " " : "";
  const std::size_t used = sign.size() + prefix.size() + digits.size();
  const auto width = static_cast<std::size_t>(spec.width);
  if (spec.zero && !spec.left && used < width) digits.insert(0, width - used, '0');
  return pad(spec, sign + prefix + digits);
}

std::string format_double(const Spec& spec, double value) {
  // Only our own specification reaches snprintf, always with a double.
  std::string fmt = "%";
  if (spec.left) fmt += '-';
  if (spec.plus) fmt += '+';
  if (spec.space) fmt += ' ';
  if (spec.alt) fmt += '#';
  if (spec.zero) fmt += '0';
  if (spec.width > 0) fmt += std::to_string(spec.width);
  if (spec.precision >= 0) fmt += "." + std::to_string(spec.precision);
  fmt += spec.conversion;
  const int n = std::snprintf(nullptr, 0, fmt.c_str(), value);
  if (n < 0) return {};
  std::vector<char> buf(static_cast<std::size_t>(n) + 1);
  std::snprintf(buf.data(), buf.size(), fmt.c_str(), value);
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

bool Spec::is_integer() const noexcept {
  switch (conversion) {
    case 'd': case 'i': case 'u': case 'o': case 'x': case 'X': return true;
    default: return false;
  }
}

std::optional<Spec> parse(std::string_view format) {
  Spec spec;
  std::size_t pos = literal(format, 0, spec.prefix);
  if (pos == std::string_view::npos) return std::nullopt;
  ++pos;
  for (; pos < format.size(); ++pos) {
    const char c = format[pos];
    if (c == '-') spec.left = true;
    else if (c == '+') spec.plus = true;
    else if (c == ' ') spec.space = true;
    else if (c == '#') spec.alt = true;
    else if (c == '0') spec.zero = true;
    else break;
  }
  spec.width = std::min(read_number(format, pos), kMaxWidth);
  if (pos < format.size() && format[pos] == '.') {
    ++pos;
    spec.precision = std::min(read_number(format, pos), kMaxPrecision);
  }
  // Python accepts and ignores a length modifier.
  for (int i = 0; i < 2 && pos < format.size() && (format[pos] == 'h' || format[pos] == 'l' || format[pos] == 'L'); ++i) ++pos;
  if (pos >= format.size()) return std::nullopt;
  const char conversion = format[pos++];
  if (std::string_view("diuoxXeEfFgGsr").find(conversion) == std::string_view::npos) return std::nullopt;
  spec.conversion = conversion;
  if (literal(format, pos, spec.suffix) != std::string_view::npos) return std::nullopt;  // a second conversion
  return spec;
}

std::optional<std::string> apply(const Spec& spec, const Json& value) {
  std::string body;
  if (spec.is_integer()) {
    auto n = to_integer(value);
    if (!n) return std::nullopt;
    body = format_integer(spec, *n);
  } else if (spec.conversion == 's' || spec.conversion == 'r') {
    std::string text = spec.conversion == 's' ? python::str(value) : python::repr_value(value);
    if (spec.precision >= 0) text.resize(utf8_prefix(text, static_cast<std::size_t>(spec.precision)));
    body = pad(spec, std::move(text));
  } else {
    auto d = to_double(value);
    if (!d) return std::nullopt;
    body = format_double(spec, *d);
  }
  return spec.prefix + body + spec.suffix;
}

}  // namespace mktl::pyformat
