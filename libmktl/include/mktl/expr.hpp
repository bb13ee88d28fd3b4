// mktl::Expression: the collections' expression language (mkio's), for
// filters (`where`, `filter`), formatters (`publish`) and defaults.
//
//   auto e = mktl::Expression::parse("status == 'filled' AND qty >= 100");
//   bool keep = e.matches(row);               // row: a JSON object
//   mktl::Json v = mktl::Expression::parse("ROUND(qty * price, 2)").evaluate(row);
//
// Operators, loosest first: OR; AND; NOT; comparisons (== != < <= > >=,
// CONTAINS, STARTS_WITH, IS [NOT] NULL, IN (list)), which do not chain; + -;
// * /; unary minus. Literals 'string' "string" (backslash escapes), numbers
// (42, 1.5, .5, 1e-3), TRUE FALSE NULL. Functions UPPER LOWER ROUND(x[,n])
// ABS LEN COALESCE(...) IF(c,a,b) and any registered in an
// ExpressionFunctions. Keywords and function names are case-insensitive,
// field names (identifiers: letters, digits, _) are not. docs/expressions.md
// is the full reference.
//
// Values are JSON. As in mkio (Python): == and != compare any two values
// (different types are unequal, 1 == 1.0, NULL == NULL); ordering needs two
// numbers or two strings; int + - * int stays an integer, `/` always gives a
// float. Where mkio relies on Python's looser rules we are stricter: booleans
// are not numbers (TRUE == 1 is false, TRUE + 1 a TypeError), AND OR NOT IF
// take TRUE, FALSE or NULL (NULL counts as false) and short-circuit, an
// integer overflow is a ValueError rather than a big integer, and a string
// cannot be multiplied.
//
// Errors: a syntax error, an unknown function or a wrong argument count is a
// mktl::ValueError from parse() naming the column and what was expected; so
// is nesting deeper than kMaxDepth or a text longer than kMaxLength.
// Evaluation errors are for that row only: TypeError (operand types),
// KeyError (a field the row lacks), ValueError (division by zero, integer
// overflow), and a user function's exception is re-thrown as the same
// mktl::Error type (RuntimeError for any other std::exception) with the
// function's name in front of its text. Nothing else escapes.
//
// Threading: a parsed Expression is immutable; evaluate() may run on any
// number of threads at once. User functions must be safe to call likewise.
// An ExpressionFunctions is a value: copy it freely, but do not call add()
// on one object from two threads.
#pragma once

#include <mktl/json.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mktl {

// Named functions an expression may call: the built-ins, plus user functions.
// An Expression keeps the functions it calls alive; changing the set later
// does not change expressions parsed before.
class ExpressionFunctions {
 public:
  // Called with the evaluated arguments; returns the call's value. Throw a
  // mktl::Error (TypeError, ValueError, ...) to fail the row.
  using Function = std::function<Json(std::span<const Json> args)>;

  // The built-in functions only.
  ExpressionFunctions();

  // Registers NAME (case-insensitive) taking min_args..max_args arguments
  // (max_args < 0: any number). Replaces a function of the same name,
  // built-ins included. ValueError if NAME is not an identifier, is a keyword
  // or IF, or the argument counts make no sense.
  ExpressionFunctions& add(std::string name, int min_args, int max_args, Function function);

  struct Entry;
  // The function called NAME (any case), or nullptr.
  const Entry* find(std::string_view name) const;

 private:
  std::shared_ptr<std::vector<std::shared_ptr<Entry>>> entries_;
};

class Expression {
 public:
  // Deepest nesting of parentheses, function calls, IN lists, NOT and unary
  // minus that parse() accepts.
  static constexpr int kMaxDepth = 64;
  // Longest text parse() accepts, in bytes.
  static constexpr std::size_t kMaxLength = 65536;

  // Parses TEXT once; throws mktl::ValueError on a syntax error.
  static Expression parse(std::string_view text, const ExpressionFunctions& functions = ExpressionFunctions());

  // The value of the expression for ROW (a JSON object of fields). A
  // default-constructed Expression throws ValueError.
  Json evaluate(const Json& row) const;
  // evaluate() as a filter: true for TRUE, false for FALSE or NULL; any
  // other result is a TypeError.
  bool matches(const Json& row) const;

  // Field names the expression reads (sorted, unique): lets a daemon check
  // a filter against `filterable`.
  const std::vector<std::string>& fields() const;
  const std::string& text() const;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  std::shared_ptr<const std::vector<std::string>> fields_;
  std::shared_ptr<const std::string> text_;
};

}  // namespace mktl
