// Tokens of the expression language, produced one at a time on demand (so a
// text the parser rejects early is never scanned to its end).
// Internal to libmktl.
#pragma once

#include <mktl/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mktl::expr {

enum class Tok : std::uint8_t {
  end, number, string, ident,
  lparen, rparen, lbracket, rbracket, comma,
  eq, ne, lt, le, gt, ge,
  plus, minus, star, slash,
};

struct Token {
  Tok kind = Tok::end;
  std::size_t pos = 0;  // byte offset of its first character
  std::size_t len = 0;  // bytes of text it spans
  std::uint32_t column = 1;  // column_of(text, pos)
  std::string text;     // ident: as written; string: the decoded value
  Json number;          // number: an int64, uint64 or double
};

// The 1-based column (in characters, not bytes) of byte POS of TEXT.
std::uint32_t column_of(std::string_view text, std::size_t pos);

// Throws the ValueError of a syntax error at byte POS of TEXT.
[[noreturn]] void syntax_error(std::string_view text, std::size_t pos, const std::string& message);

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}
  Token next();
  std::string_view text() const { return text_; }

 private:
  // column_of(text_, pos), counted on from the previous token's.
  std::uint32_t column_at(std::size_t pos);
  Token number(std::size_t start);
  Token string(std::size_t start);
  [[noreturn]] void fail(std::size_t pos, const std::string& message) const { syntax_error(text_, pos, message); }

  std::string_view text_;
  std::size_t pos_ = 0;
  Tok previous_ = Tok::end;
  std::size_t counted_ = 0;  // bytes counted into column_
  std::uint32_t column_ = 1;
};

}  // namespace mktl::expr
