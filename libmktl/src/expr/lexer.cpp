#include "expr/lexer.hpp"

#include <mktl/error.hpp>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <system_error>

namespace mktl::expr {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// A character as a message shows it: 'x', or its byte value when unprintable.
std::string shown(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7F) return std::string("'") + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "byte 0x%02X", byte);
  return buf;
}

}  // namespace

std::uint32_t column_of(std::string_view text, std::size_t pos) {
  std::uint32_t column = 1;
  for (std::size_t i = 0; i < pos && i < text.size(); ++i)
    if (!is_continuation(text[i])) ++column;
  return column;
}

void syntax_error(std::string_view text, std::size_t pos, const std::string& message) {
  // Quote the text around the error: all of it when short, else a window.
  constexpr std::size_t kContext = 30;
  std::size_t begin = pos > kContext ? pos - kContext : 0;
  std::size_t end = std::min(text.size(), pos + kContext);
  while (begin > 0 && begin < text.size() && is_continuation(text[begin])) --begin;
  while (end < text.size() && is_continuation(text[end])) ++end;
  std::string quoted = (begin > 0 ? "..." : "") + std::string(text.substr(begin, end - begin)) +
                       (end < text.size() ? "..." : "");
  throw ValueError("syntax error at column " + std::to_string(column_of(text, pos)) + " of \"" + quoted +
                   "\": " + message);
}

std::uint32_t Lexer::column_at(std::size_t pos) {
  for (; counted_ < pos && counted_ < text_.size(); ++counted_)
    if (!is_continuation(text_[counted_])) ++column_;
  return column_;
}

Token Lexer::next() {
  while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                                 text_[pos_] == '\r' || text_[pos_] == '\f' || text_[pos_] == '\v'))
    ++pos_;
  Token token;
  token.pos = pos_;
  if (pos_ >= text_.size()) {
    token.kind = Tok::end;
    token.column = column_at(token.pos);
    return token;
  }
  const char c = text_[pos_];
  const char after = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
  auto single = [&](Tok kind, std::size_t len) {
    token.kind = kind;
    token.len = len;
    pos_ += len;
  };
  if (is_digit(c) || (c == '.' && is_digit(after))) {
    token = number(pos_);
  } else if (c == '\'' || c == '"') {
    token = string(pos_);
  } else if (is_ident_start(c)) {
    std::size_t end = pos_ + 1;
    while (end < text_.size() && is_ident_char(text_[end])) ++end;
    token.kind = Tok::ident;
    token.len = end - pos_;
    token.text.assign(text_.substr(pos_, end - pos_));
    pos_ = end;
  } else {
    switch (c) {
      case '(': single(Tok::lparen, 1); break;
      case ')': single(Tok::rparen, 1); break;
      case '[': single(Tok::lbracket, 1); break;
      case ']': single(Tok::rbracket, 1); break;
      case ',': single(Tok::comma, 1); break;
      case '+': single(Tok::plus, 1); break;
      case '-': single(Tok::minus, 1); break;
      case '*': single(Tok::star, 1); break;
      case '/': single(Tok::slash, 1); break;
      case '=':
        if (after != '=') fail(pos_, "'=' is not an operator: compare with '=='");
        single(Tok::eq, 2);
        break;
      case '!':
        if (after != '=') fail(pos_, "'!' is not an operator: use NOT, or '!=' to compare");
        single(Tok::ne, 2);
        break;
      case '<':
        if (after == '>') fail(pos_, "'<>' is not an operator: use '!='");
        if (after == '=') single(Tok::le, 2);
        else single(Tok::lt, 1);
        break;
      case '>':
        if (after == '=') single(Tok::ge, 2);
        else single(Tok::gt, 1);
        break;
      case '&': fail(pos_, "'&' is not an operator: use AND");
      case '|': fail(pos_, "'|' is not an operator: use OR");
      case '.':
        if (previous_ == Tok::ident || previous_ == Tok::rparen || previous_ == Tok::string)
          fail(pos_, "'.' attribute access is not supported");
        fail(pos_, "unexpected '.'");
      default:
        fail(pos_, "unexpected character " + shown(c));
    }
  }
  token.column = column_at(token.pos);
  previous_ = token.kind;
  return token;
}

// digits [. digits] [e [+-] digits], or . digits [...]: an integer when it
// has neither fraction nor exponent.
Token Lexer::number(std::size_t start) {
  std::size_t i = start;
  bool is_float = false;
  while (i < text_.size() && is_digit(text_[i])) ++i;
  if (i < text_.size() && text_[i] == '.') {
    is_float = true;
    ++i;
    while (i < text_.size() && is_digit(text_[i])) ++i;
  }
  if (i < text_.size() && (text_[i] == 'e' || text_[i] == 'E')) {
    std::size_t j = i + 1;
    if (j < text_.size() && (text_[j] == '+' || text_[j] == '-')) ++j;
    if (j < text_.size() && is_digit(text_[j])) {
      is_float = true;
      i = j;
      while (i < text_.size() && is_digit(text_[i])) ++i;
    }
  }
  std::size_t end = i;
  // "12abc", "1.2.3", "1e": not a number followed by something else.
  while (end < text_.size() && (is_ident_char(text_[end]) || text_[end] == '.')) ++end;
  const std::string_view spelled = text_.substr(start, end - start);
  if (end != i) fail(start, "malformed number '" + std::string(spelled) + "'");

  Token token;
  token.kind = Tok::number;
  token.pos = start;
  token.len = end - start;
  const char* first = text_.data() + start;
  const char* last = text_.data() + end;
  if (is_float) {
    double value = 0;
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec == std::errc::result_out_of_range) fail(start, "number '" + std::string(spelled) + "' is out of range");
    if (ec != std::errc() || ptr != last) fail(start, "malformed number '" + std::string(spelled) + "'");
    token.number = value;
  } else {
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec == std::errc() && ptr == last) {
      token.number = value;
    } else {
      std::uint64_t wide = 0;
      auto [wptr, wec] = std::from_chars(first, last, wide);
      if (wec != std::errc() || wptr != last)
        fail(start, "integer '" + std::string(spelled) + "' is out of range (write it as a float, e.g. 1e30)");
      token.number = wide;
    }
  }
  pos_ = end;
  return token;
}

// 'text' or "text"; a backslash escapes the next character (\n \t \r give
// control characters; \\ \' \" the character itself; any other pair is kept
// as written, as Python keeps "\d").
Token Lexer::string(std::size_t start) {
  const char quote = text_[start];
  Token token;
  token.kind = Tok::string;
  token.pos = start;
  std::size_t i = start + 1;
  for (;;) {
    if (i >= text_.size()) fail(start, "unterminated string: no closing " + std::string(1, quote));
    const char c = text_[i];
    if (c == quote) break;
    if (c == '\\' && i + 1 < text_.size()) {
      const char e = text_[i + 1];
      switch (e) {
        case 'n': token.text += '\n'; break;
        case 't': token.text += '\t'; break;
        case 'r': token.text += '\r'; break;
        case '\\': case '\'': case '"': token.text += e; break;
        default: token.text += '\\'; token.text += e; break;
      }
      i += 2;
      continue;
    }
    token.text += c;
    ++i;
  }
  token.len = i + 1 - start;
  pos_ = i + 1;
  return token;
}

}  // namespace mktl::expr
