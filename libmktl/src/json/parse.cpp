// Recursive-descent JSON reader. nlohmann's own parser rejects the NaN and
// Infinity tokens Python peers send and rounds wide integers; this one keeps
// both, and reports the byte offset of any problem.
#include "json/detail.hpp"

#include <mktl/error.hpp>
#include <mktl/json.hpp>

#include <charconv>
#include <cstdlib>
#include <limits>

namespace mktl::json {
namespace {

// Deep enough for any real payload, shallow enough that hostile input cannot
// exhaust the stack.
constexpr int kMaxDepth = 512;

class Parser {
 public:
  explicit Parser(std::string_view text)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  Json run() {
    skip_ws();
    Json value = parse_value(0);
    skip_ws();
    if (p_ != end_) fail("end of input after the value");
    return value;
  }

  // A top-level object, member by member, without building it.
  void run_members(detail::MemberVisitor& visitor) {
    skip_ws();
    if (p_ == end_ || *p_ != '{') fail("'{' to start an object");
    parse_members(1, [&](const std::string& key) {
      if (visitor.wants(key)) visitor.member(key, parse_value(1));
      else check_value(1);
    });
    skip_ws();
    if (p_ != end_) fail("end of input after the value");
  }

 private:
  [[noreturn]] void fail(std::string_view expected) const {
    std::string text = "invalid JSON at byte " + std::to_string(p_ - begin_) + ": expected ";
    text.append(expected);
    if (p_ == end_) {
      text.append(", got end of input");
    } else {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c >= 0x20 && c < 0x7f) {
        text.append(", got '");
        text.push_back(static_cast<char>(c));
        text.push_back('\'');
      } else {
        static constexpr char hex[] = "0123456789abcdef";
        text.append(", got byte 0x");
        text.push_back(hex[c >> 4]);
        text.push_back(hex[c & 0xF]);
      }
    }
    throw ValueError(text);
  }

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool consume_literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  Json parse_value(int depth) {
    if (p_ == end_) fail("a value");
    switch (*p_) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': {
        std::string s;
        parse_string(s);
        return Json(std::move(s));
      }
      case 't':
        if (consume_literal("true")) return Json(true);
        break;
      case 'f':
        if (consume_literal("false")) return Json(false);
        break;
      case 'n':
        if (consume_literal("null")) return Json(nullptr);
        break;
      case 'N':
        if (consume_literal("NaN")) return Json(std::numeric_limits<double>::quiet_NaN());
        break;
      case 'I':
        if (consume_literal("Infinity")) return Json(std::numeric_limits<double>::infinity());
        break;
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return parse_number();
    }
    fail("a value");
  }

  // The object at p_ ('{'): for each member in order, on_member(key) reads
  // its value, which nests at `depth`.
  template <class OnMember>
  void parse_members(int depth, OnMember&& on_member) {
    if (depth > kMaxDepth) fail("nesting no deeper than 512");
    ++p_;  // '{'
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return;
    }
    std::string key;
    for (;;) {
      if (p_ == end_ || *p_ != '"') fail("'\"' to start an object key");
      key.clear();
      parse_string(key);
      skip_ws();
      if (p_ == end_ || *p_ != ':') fail("':' after an object key");
      ++p_;
      skip_ws();
      on_member(key);  // reads the value
      skip_ws();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        skip_ws();
        continue;
      }
      if (p_ < end_ && *p_ == '}') {
        ++p_;
        return;
      }
      fail("',' or '}' in an object");
    }
  }

  Json parse_object(int depth) {
    Json result(Json::value_t::object);
    auto& object = result.get_ref<Json::object_t&>();
    // A repeated key keeps its last value, as Python's json does.
    parse_members(depth, [&](const std::string& key) { object.insert_or_assign(key, parse_value(depth)); });
    return result;
  }

  // The array at p_ ('['): on_element() reads each element in order, which
  // nests at `depth`.
  template <class OnElement>
  void parse_elements(int depth, OnElement&& on_element) {
    if (depth > kMaxDepth) fail("nesting no deeper than 512");
    ++p_;  // '['
    skip_ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return;
    }
    for (;;) {
      on_element();
      skip_ws();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        skip_ws();
        continue;
      }
      if (p_ < end_ && *p_ == ']') {
        ++p_;
        return;
      }
      fail("',' or ']' in an array");
    }
  }

  Json parse_array(int depth) {
    Json result(Json::value_t::array);
    auto& array = result.get_ref<Json::array_t&>();
    parse_elements(depth, [&] { array.push_back(parse_value(depth)); });
    return result;
  }

  // As parse_value, without building anything: the value at p_ is read and
  // checked (the same errors, the same nesting limit), then dropped.
  void check_value(int depth) {
    if (p_ == end_) fail("a value");
    switch (*p_) {
      case '{':
        parse_members(depth + 1, [&](const std::string&) { check_value(depth + 1); });
        return;
      case '[':
        parse_elements(depth + 1, [&] { check_value(depth + 1); });
        return;
      case '"':
        scratch_.clear();
        parse_string(scratch_);
        return;
      case '-':
      case '0': case '1': case '2': case '3': case '4':
      case '5': case '6': case '7': case '8': case '9':
        (void)scan_number();
        return;
      default:
        (void)parse_value(depth);  // a literal: nothing to build
    }
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // Four hex digits at p_ (after "\u").
  std::uint32_t parse_hex4() {
    if (end_ - p_ < 4) fail("four hex digits after \\u");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_;
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else fail("a hex digit in a \\u escape");
      ++p_;
    }
    return v;
  }

  void parse_string(std::string& out) {
    ++p_;  // opening quote
    for (;;) {
      // Copy the longest plain ASCII run at once.
      const char* run = reinterpret_cast<const char*>(detail::plain_run(reinterpret_cast<const unsigned char*>(p_),
                                                                         reinterpret_cast<const unsigned char*>(end_)));
      out.append(p_, run);
      p_ = run;
      if (p_ == end_) fail("'\"' to close a string");
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return;
      }
      if (c < 0x20) fail("an escaped control character in a string");
      if (c >= 0x80) {
        auto* u = reinterpret_cast<const unsigned char*>(p_);
        std::size_t n = detail::utf8_sequence(u, reinterpret_cast<const unsigned char*>(end_));
        if (n == 0) fail("valid UTF-8 in a string");
        out.append(p_, n);
        p_ += n;
        continue;
      }
      // Backslash escape.
      ++p_;
      if (p_ == end_) fail("an escape character after '\\'");
      switch (*p_++) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            const char* save = p_;
            p_ += 2;
            std::uint32_t low = parse_hex4();
            if (low >= 0xDC00 && low <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              p_ = save;  // not a pair: the second escape stands on its own
            }
          }
          // A lone surrogate (Python accepts one) has no UTF-8 form.
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
          append_utf8(out, cp);
          break;
        }
        default:
          --p_;
          fail("one of \" \\ / b f n r t u after '\\'");
      }
    }
  }

  // Where a number's text lies: JSON's grammar, and -Infinity.
  struct NumberText {
    const char* start;
    const char* int_start;
    const char* int_end;
    bool negative = false;
    bool is_float = false;
    bool minus_infinity = false;
  };

  // Moves p_ past the number there (check_value stops here: nothing to build).
  NumberText scan_number() {
    NumberText n{p_, p_, p_};
    n.negative = *p_ == '-';
    if (n.negative) {
      ++p_;
      if (consume_literal("Infinity")) {
        n.minus_infinity = true;
        return n;
      }
    }
    n.int_start = p_;
    if (p_ < end_ && *p_ == '0') {
      ++p_;
    } else if (p_ < end_ && *p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    } else {
      fail("a digit");
    }
    n.int_end = p_;
    if (p_ < end_ && *p_ == '.') {
      n.is_float = true;
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("a digit after '.'");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      n.is_float = true;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("a digit in the exponent");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    return n;
  }

  Json parse_number() {
    const NumberText n = scan_number();
    if (n.minus_infinity) return Json(-std::numeric_limits<double>::infinity());
    if (n.is_float) {
      double d = 0;
      auto res = std::from_chars(n.start, p_, d);
      if (res.ec == std::errc::result_out_of_range) {
        // from_chars leaves d alone; strtod gives +-inf or the underflowed value, as Python does.
        std::string copy(n.start, p_);
        d = std::strtod(copy.c_str(), nullptr);
      }
      return Json(d);
    }
    const std::size_t ndigits = static_cast<std::size_t>(n.int_end - n.int_start);
    if (ndigits <= 20) {
      std::uint64_t u = 0;
      auto res = std::from_chars(n.int_start, n.int_end, u);
      if (res.ec == std::errc()) {
        if (!n.negative) {
          if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return Json(static_cast<std::int64_t>(u));
          return Json(u);
        }
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          return Json(-static_cast<std::int64_t>(u));
        if (u == static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1)
          return Json(std::numeric_limits<std::int64_t>::min());
      }
    }
    // Too wide for any native integer: keep the exact digits (already canonical).
    Json::binary_t::container_type bytes(n.start, p_);
    return Json::binary(std::move(bytes), detail::kBigintSubtype);
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::string scratch_;  // check_value's strings
};

}  // namespace

Json parse(std::string_view text) { return Parser(text).run(); }

void detail::parse_members(std::string_view text, MemberVisitor& visitor) { Parser(text).run_members(visitor); }

}  // namespace mktl::json
