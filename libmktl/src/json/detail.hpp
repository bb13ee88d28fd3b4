// Internal pieces of the JSON writer shared with the protocol codec, so that
// hand-built payloads spell strings and doubles exactly as mktl::json::dump does.
#pragma once

#include <mktl/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mktl::json::detail {

// Subtype of the nlohmann binary value that holds a big integer's digits ('k').
inline constexpr std::uint8_t kBigintSubtype = 0x6b;

// A JSON string literal with quotes: control characters as \uXXXX (or \n, \t,
// ...), '"' and '\\' escaped, valid UTF-8 passed through raw, invalid bytes
// replaced by U+FFFD.
void append_string(std::string& out, std::string_view text);

// A double as Python's repr() spells it (shortest round trip, "1.0" for an
// integral value, exponent form outside 1e-4..1e16), NaN/Infinity/-Infinity
// for non-finite values.
void append_double(std::string& out, double value);

// Length of the well-formed UTF-8 sequence at p (1..4), or 0 when the bytes
// there are not one (overlong, surrogate, above U+10FFFF, truncated).
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end) noexcept;
bool valid_utf8(std::string_view text) noexcept;

// Reads a JSON object member by member, in order, handing each value over
// instead of building the object (a repeated key is handed over each time).
// Throws ValueError, as parse() does, on malformed input or a non-object.
struct MemberVisitor {
  virtual ~MemberVisitor() = default;
  virtual void member(std::string_view key, Json&& value) = 0;
  // False for a member whose value the visitor does not need: the value is
  // still checked as JSON, but not built, and member() is not called.
  virtual bool wants(std::string_view /*key*/) { return true; }
};
void parse_members(std::string_view text, MemberVisitor& visitor);

}  // namespace mktl::json::detail
