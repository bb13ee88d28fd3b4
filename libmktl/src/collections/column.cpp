// A small reader of SQLite's column-def grammar: enough to know a column's
// type, key, nullability and default, and to reject a misspelt constraint
// with the config's file and place instead of a CREATE TABLE error later.
#include "collections/column.hpp"
#include "common/text.hpp"

#include <mktl/error.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <vector>

namespace mktl::collections::detail {

namespace {

struct Token {
  enum Kind { word, number, string, quoted, punct, end } kind = end;
  std::string text;   // as written (a word upper-cased in `upper`)
  std::string upper;  // words only
  std::size_t begin = 0, stop = 0;  // byte range in the declaration
};

std::vector<Token> tokenize(const std::string& decl) {
  std::vector<Token> out;
  std::size_t i = 0;
  const std::size_t n = decl.size();
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$'; };
  while (i < n) {
    const char c = decl[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token t;
    t.begin = i;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < n && is_word(decl[i])) ++i;
      t.kind = Token::word;
      t.text = decl.substr(t.begin, i - t.begin);
      t.upper = mktl::detail::ascii_upper(t.text);
    } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < n && std::isdigit(static_cast<unsigned char>(decl[i + 1])))) {
      while (i < n && (std::isalnum(static_cast<unsigned char>(decl[i])) || decl[i] == '.' ||
                       ((decl[i] == '+' || decl[i] == '-') && (decl[i - 1] == 'e' || decl[i - 1] == 'E'))))
        ++i;
      t.kind = Token::number;
      t.text = decl.substr(t.begin, i - t.begin);
    } else if (c == '\'' || c == '"' || c == '`' || c == '[') {
      const char close = c == '[' ? ']' : c;
      ++i;
      while (true) {
        if (i >= n) throw ValueError(std::string("unterminated ") + (c == '\'' ? "string" : "quoted name") + " in the column declaration");
        if (decl[i] == close) {
          if (close != ']' && i + 1 < n && decl[i + 1] == close) {  // doubled quote inside
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
      t.kind = c == '\'' ? Token::string : Token::quoted;
      t.text = decl.substr(t.begin, i - t.begin);
    } else {
      ++i;
      t.kind = Token::punct;
      t.text = std::string(1, c);
    }
    t.stop = i;
    out.push_back(std::move(t));
  }
  Token end;
  end.begin = end.stop = n;
  out.push_back(end);
  return out;
}

// Optimal string alignment distance (a transposition counts one), ignoring case.
std::size_t edit_distance(std::string_view a_in, std::string_view b_in) {
  const std::string a = mktl::detail::ascii_upper(a_in), b = mktl::detail::ascii_upper(b_in);
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

constexpr const char* kConstraints = "PRIMARY KEY, NOT NULL, NULL, UNIQUE, DEFAULT, CHECK, COLLATE, REFERENCES, GENERATED ALWAYS AS or CONSTRAINT";

bool starts_constraint(const std::string& upper) {
  static const char* const words[] = {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT",
                                      "COLLATE", "REFERENCES", "GENERATED", "AS"};
  for (const char* w : words)
    if (upper == w) return true;
  return false;
}

class Reader {
 public:
  Reader(const std::string& name, const std::string& decl) : decl_(decl), tokens_(tokenize(decl)) { column_.name = name; column_.decl = decl; }

  Column run() {
    read_type();
    bool pk_desc = false;
    bool autoincrement_keyword = false;
    while (peek().kind != Token::end) {
      const Token& t = peek();
      if (t.kind != Token::word) unexpected(t);
      const std::string w = t.upper;
      ++pos_;
      if (w == "CONSTRAINT") {
        name_after("CONSTRAINT");
      } else if (w == "PRIMARY") {
        expect_word("KEY", "after PRIMARY");
        if (column_.primary_key) throw ValueError("PRIMARY KEY given twice");
        column_.primary_key = true;
        if (accept("ASC")) {
        } else if (accept("DESC")) {
          pk_desc = true;
        }
        conflict_clause();
        if (accept("AUTOINCREMENT")) autoincrement_keyword = true;
      } else if (w == "NOT") {
        expect_word("NULL", "after NOT");
        column_.not_null = true;
        conflict_clause();
      } else if (w == "NULL") {
        // SQLite accepts a bare NULL constraint; it changes nothing.
      } else if (w == "UNIQUE") {
        column_.unique = true;
        conflict_clause();
      } else if (w == "CHECK") {
        parenthesised("CHECK");
      } else if (w == "DEFAULT") {
        read_default();
      } else if (w == "COLLATE") {
        name_after("COLLATE");
      } else if (w == "REFERENCES") {
        references();
      } else if (w == "GENERATED") {
        expect_word("ALWAYS", "after GENERATED");
        expect_word("AS", "after GENERATED ALWAYS");
        generated();
      } else if (w == "AS") {
        generated();
      } else {
        --pos_;
        unexpected(t);
      }
    }
    if (autoincrement_keyword && !(column_.primary_key && column_.type == "INTEGER"))
      throw ValueError("AUTOINCREMENT is only allowed on an INTEGER PRIMARY KEY column");
    // An INTEGER PRIMARY KEY is SQLite's rowid: filled automatically when not
    // given (except the DESC quirk, which SQLite keeps for compatibility).
    column_.autoincrement = column_.primary_key && column_.type == "INTEGER" && (!pk_desc || autoincrement_keyword);
    if (column_.generated && (column_.primary_key || column_.default_sql))
      throw ValueError("a generated column cannot also be a PRIMARY KEY or have a DEFAULT");
    return column_;
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }

  [[noreturn]] void unexpected(const Token& t) const {
    if (t.kind == Token::end) throw ValueError("the column declaration ends early");
    static const std::vector<std::string> words = {"PRIMARY", "NOT", "NULL", "UNIQUE", "DEFAULT", "CHECK",
                                                   "COLLATE", "REFERENCES", "GENERATED", "CONSTRAINT", "AUTOINCREMENT"};
    std::string hint = suggestion(t.text, words);
    throw ValueError("unexpected '" + t.text + "' in the column declaration \"" + decl_ + "\"" + hint +
                     (hint.empty() ? "; " : " ") + "(expected a constraint: " + kConstraints + ")");
  }

  bool accept(const char* word) {
    if (peek().kind == Token::word && peek().upper == word) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect_word(const char* word, const char* where) {
    if (!accept(word)) {
      const Token& t = peek();
      throw ValueError(std::string("expected ") + word + " " + where + ", got " +
                       (t.kind == Token::end ? std::string("the end") : "'" + t.text + "'") + " in \"" + decl_ + "\"");
    }
  }

  void name_after(const char* what) {
    const Token& t = peek();
    if (t.kind != Token::word && t.kind != Token::quoted && t.kind != Token::string)
      throw ValueError(std::string("expected a name after ") + what + " in \"" + decl_ + "\"");
    ++pos_;
  }

  void conflict_clause() {
    if (peek().kind == Token::word && peek().upper == "ON" && tokens_[pos_ + 1].kind == Token::word &&
        tokens_[pos_ + 1].upper == "CONFLICT") {
      pos_ += 2;
      const Token& t = peek();
      static const char* const actions[] = {"ROLLBACK", "ABORT", "FAIL", "IGNORE", "REPLACE"};
      for (const char* a : actions)
        if (t.kind == Token::word && t.upper == a) {
          ++pos_;
          return;
        }
      throw ValueError("expected ROLLBACK, ABORT, FAIL, IGNORE or REPLACE after ON CONFLICT in \"" + decl_ + "\"");
    }
  }

  // '(' ... ')' with nesting; returns the text including the parentheses.
  std::string parenthesised(const char* what) {
    if (peek().kind != Token::punct || peek().text != "(")
      throw ValueError(std::string("expected '(' after ") + what + " in \"" + decl_ + "\"");
    const std::size_t begin = peek().begin;
    int depth = 0;
    while (true) {
      const Token& t = peek();
      if (t.kind == Token::end) throw ValueError(std::string("unbalanced parentheses after ") + what + " in \"" + decl_ + "\"");
      ++pos_;
      if (t.kind == Token::punct && t.text == "(") ++depth;
      if (t.kind == Token::punct && t.text == ")" && --depth == 0) return decl_.substr(begin, t.stop - begin);
    }
  }

  void read_type() {
    std::string type;
    while (peek().kind == Token::word && !starts_constraint(peek().upper)) {
      if (!type.empty()) type += ' ';
      type += peek().upper;
      ++pos_;
    }
    if (!type.empty() && peek().kind == Token::punct && peek().text == "(") {
      // VARCHAR(20), DECIMAL(10, 2): signed numbers only.
      std::string size = "(";
      ++pos_;
      for (int part = 0;; ++part) {
        if (peek().kind == Token::punct && (peek().text == "+" || peek().text == "-")) size += tokens_[pos_++].text;
        if (peek().kind != Token::number) throw ValueError("expected a number in the type's size, as in VARCHAR(20), in \"" + decl_ + "\"");
        size += tokens_[pos_++].text;
        if (part == 0 && peek().kind == Token::punct && peek().text == ",") {
          size += ',';
          ++pos_;
          continue;
        }
        if (peek().kind != Token::punct || peek().text != ")") throw ValueError("expected ')' after the type's size in \"" + decl_ + "\"");
        ++pos_;
        break;
      }
      type += size + ")";
    }
    column_.type = type;
  }

  void read_default() {
    if (column_.default_sql) throw ValueError("DEFAULT given twice");
    const Token& t = peek();
    if (t.kind == Token::punct && t.text == "(") {
      column_.default_sql = parenthesised("DEFAULT");
      return;
    }
    if (t.kind == Token::punct && (t.text == "+" || t.text == "-")) {
      const Token& number = tokens_[pos_ + 1];
      if (number.kind != Token::number) throw ValueError("expected a number after DEFAULT " + t.text + " in \"" + decl_ + "\"");
      column_.default_sql = decl_.substr(t.begin, number.stop - t.begin);
      pos_ += 2;
      return;
    }
    if (t.kind == Token::number || t.kind == Token::string || t.kind == Token::word) {
      // A word: NULL, TRUE, FALSE, CURRENT_TIMESTAMP, ... (SQLite also takes a
      // bare name as a string, for compatibility).
      if (t.kind == Token::word && starts_constraint(t.upper) && t.upper != "NULL")
        throw ValueError("expected a value after DEFAULT, got '" + t.text + "' in \"" + decl_ + "\"");
      column_.default_sql = t.text;
      ++pos_;
      return;
    }
    throw ValueError("expected a value after DEFAULT (a number, a 'string', NULL, CURRENT_TIMESTAMP or (an expression)) in \"" +
                     decl_ + "\"");
  }

  void references() {
    name_after("REFERENCES");
    if (peek().kind == Token::punct && peek().text == "(") parenthesised("REFERENCES table");
    while (peek().kind == Token::word) {
      const std::string& w = peek().upper;
      if (w == "ON" && tokens_[pos_ + 1].kind == Token::word &&
          (tokens_[pos_ + 1].upper == "DELETE" || tokens_[pos_ + 1].upper == "UPDATE")) {
        pos_ += 2;
        if (accept("SET")) {
          if (!accept("NULL") && !accept("DEFAULT")) throw ValueError("expected NULL or DEFAULT after ON DELETE/UPDATE SET in \"" + decl_ + "\"");
        } else if (accept("NO")) {
          expect_word("ACTION", "after NO");
        } else if (!accept("CASCADE") && !accept("RESTRICT")) {
          throw ValueError("expected SET NULL, SET DEFAULT, CASCADE, RESTRICT or NO ACTION in \"" + decl_ + "\"");
        }
      } else if (w == "MATCH") {
        ++pos_;
        name_after("MATCH");
      } else if (w == "DEFERRABLE" || (w == "NOT" && tokens_[pos_ + 1].kind == Token::word && tokens_[pos_ + 1].upper == "DEFERRABLE")) {
        pos_ += w == "NOT" ? 2 : 1;
        if (accept("INITIALLY") && !accept("DEFERRED") && !accept("IMMEDIATE"))
          throw ValueError("expected DEFERRED or IMMEDIATE after INITIALLY in \"" + decl_ + "\"");
      } else {
        break;
      }
    }
  }

  void generated() {
    parenthesised("AS");
    column_.generated = true;
    if (!accept("STORED")) accept("VIRTUAL");
  }

  const std::string& decl_;
  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  Column column_;
};

}  // namespace

Column parse_column(const std::string& name, const std::string& decl) { return Reader(name, decl).run(); }

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  std::size_t best = std::string::npos;
  std::string choice;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best) {
      best = d;
      choice = c;
    }
  }
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  if (choice.empty() || best > limit || best >= std::max(word.size(), choice.size())) return {};
  return "; did you mean '" + choice + "'?";
}

std::optional<Json> sql_literal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.front() == '\'') {
    if (text.size() < 2 || text.back() != '\'') return std::nullopt;
    std::string out;
    for (std::size_t i = 1; i + 1 < text.size(); ++i) {
      out.push_back(text[i]);
      if (text[i] == '\'') ++i;  // '' inside stands for one quote
    }
    return Json(out);
  }
  const std::string upper = mktl::detail::ascii_upper(text);
  if (upper == "NULL") return Json(nullptr);
  if (upper == "TRUE") return Json(1);  // what SQLite stores
  if (upper == "FALSE") return Json(0);
  std::string_view digits = text;
  bool negative = false;
  if (digits.front() == '+' || digits.front() == '-') {
    negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return std::nullopt;
  std::int64_t integer = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), integer);
  if (ec == std::errc() && end == digits.data() + digits.size()) return Json(negative ? -integer : integer);
  double real = 0;
  auto [end2, ec2] = std::from_chars(digits.data(), digits.data() + digits.size(), real);
  if (ec2 == std::errc() && end2 == digits.data() + digits.size()) return Json(negative ? -real : real);
  return std::nullopt;
}

}  // namespace mktl::collections::detail
