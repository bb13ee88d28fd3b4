// Internal pieces of the JSON writer shared with the protocol codec, so that
// hand-built payloads spell strings and doubles exactly as mktl::json::dump does.
#pragma once

#include <mktl/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace mktl::json::detail {

// The first byte at or after `p` that a JSON string cannot hold as it is:
// '"', '\\', a control character or a non-ASCII byte (end when there is none).
// The reader and the writer copy everything before it in one go.
inline const unsigned char* plain_run(const unsigned char* p, const unsigned char* end) noexcept {
#ifdef __SSE2__
  // 16 bytes at a time: signed, a byte below 0x20 or from 0x80 up is less than 0x20.
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i stop =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmplt_epi8(v, space));
    if (const int mask = _mm_movemask_epi8(stop)) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') ++p;
  return p;
}

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
