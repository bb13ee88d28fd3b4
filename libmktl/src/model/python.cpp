#include "model/python.hpp"

#include "json/detail.hpp"

#include <mktl/error.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>

namespace mktl::python {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view strip(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Consumes a run of digits with single underscores between digits, appending
// the digits to `out`. Returns false if the run is empty or the underscores
// are misplaced.
bool digit_run(std::string_view& text, std::string& out) {
  if (text.empty() || !is_digit(text.front())) return false;
  while (!text.empty()) {
    if (is_digit(text.front())) {
      out.push_back(text.front());
      text.remove_prefix(1);
    } else if (text.front() == '_' && text.size() > 1 && is_digit(text[1])) {
      text.remove_prefix(1);
    } else {
      break;
    }
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

void append_str(std::string& out, const Json& value, bool top);

void append_repr(std::string& out, const Json& value) { append_str(out, value, false); }

void append_str(std::string& out, const Json& value, bool top) {
  switch (value.type()) {
    case Json::value_t::null: out += "None"; return;
    case Json::value_t::boolean: out += value.get<bool>() ? "True" : "False"; return;
    case Json::value_t::number_integer: out += std::to_string(value.get<std::int64_t>()); return;
    case Json::value_t::number_unsigned: out += std::to_string(value.get<std::uint64_t>()); return;
    case Json::value_t::number_float: {
      const double d = value.get<double>();
      if (std::isnan(d)) out += "nan";
      else if (std::isinf(d)) out += d < 0 ? "-inf" : "inf";
      else json::detail::append_double(out, d);
      return;
    }
    case Json::value_t::string:
      if (top) out += value.get_ref<const std::string&>();
      else out += repr(value.get_ref<const std::string&>());
      return;
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& element : value) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, element);
      }
      out += ']';
      return;
    }
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, element] : value.items()) {
        if (!first) out += ", ";
        first = false;
        out += repr(key);
        out += ": ";
        append_repr(out, element);
      }
      out += '}';
      return;
    }
    case Json::value_t::binary:
      if (json::is_bigint(value)) {
        out += json::bigint_digits(value);
      } else {
        out += "b'";
        for (auto byte : value.get_binary()) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(byte));
          out += buf;
        }
        out += '\'';
      }
      return;
    case Json::value_t::discarded: out += "None"; return;
  }
}

}  // namespace

std::string repr(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back(quote);
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);  // printable ASCII and UTF-8 pass through, as in Python 3
    }
  }
  out.push_back(quote);
  return out;
}

std::string str(const Json& value) {
  std::string out;
  append_str(out, value, true);
  return out;
}

std::string repr_value(const Json& value) {
  std::string out;
  append_str(out, value, false);
  return out;
}

const char* type_name(const Json& value) noexcept {
  switch (value.type()) {
    case Json::value_t::null: return "NoneType";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "str";
    case Json::value_t::array: return "list";
    case Json::value_t::object: return "dict";
    case Json::value_t::binary: return json::is_bigint(value) ? "int" : "bytes";
    case Json::value_t::discarded: break;
  }
  return "NoneType";
}


std::optional<Json> parse_int(std::string_view text) {
  text = strip(text);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  std::string digits;
  if (!digit_run(text, digits) || !text.empty()) return std::nullopt;
  return json::bigint((negative ? "-" : "") + digits);
}

std::optional<double> parse_float(std::string_view text) {
  text = strip(text);
  std::string clean;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    if (text.front() == '-') clean.push_back('-');
    text.remove_prefix(1);
  }
  if (iequals(text, "nan")) return clean.empty() ? std::nan("") : -std::nan("");
  if (iequals(text, "inf") || iequals(text, "infinity"))
    return clean.empty() ? HUGE_VAL : -HUGE_VAL;
  bool mantissa = digit_run(text, clean);
  if (!text.empty() && text.front() == '.') {
    clean.push_back('.');
    text.remove_prefix(1);
    mantissa = digit_run(text, clean) || mantissa;
  }
  if (!mantissa) return std::nullopt;
  if (!text.empty() && (text.front() == 'e' || text.front() == 'E')) {
    clean.push_back('e');
    text.remove_prefix(1);
    if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
      clean.push_back(text.front());
      text.remove_prefix(1);
    }
    if (!digit_run(text, clean)) return std::nullopt;
  }
  if (!text.empty()) return std::nullopt;
  double value = 0;
  auto res = std::from_chars(clean.data(), clean.data() + clean.size(), value);
  // Overflow: Python gives inf for huge literals ("1e999") and 0 for tiny ones.
  if (res.ec == std::errc::result_out_of_range) {
    const auto e = clean.find('e');
    const bool big = e == std::string::npos || clean[e + 1] != '-';
    const bool neg = clean.front() == '-';
    return big ? (neg ? -HUGE_VAL : HUGE_VAL) : (neg ? -0.0 : 0.0);
  }
  if (res.ec != std::errc() || res.ptr != clean.data() + clean.size()) return std::nullopt;
  return value;
}

}  // namespace mktl::python

namespace mktl {

// Python's str(KeyError(message)) is repr(message), and that is the text a
// KeyError travels with, e.g. "\"invalid enumerator: '5'\"".
KeyError KeyError::python(const std::string& message) { return KeyError(python::repr(message)); }

}  // namespace mktl
