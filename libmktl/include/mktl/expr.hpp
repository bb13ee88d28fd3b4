// mktl::Expression: the collections' expression language (mkio's), for
// filters (`where`, `filter`), formatters (`publish`) and defaults.
//
//   auto e = mktl::Expression::parse("status == 'filled' AND qty >= 100");
//   bool keep = e.matches(row);               // row: a JSON object
//   mktl::Json v = mktl::Expression::parse("ROUND(qty * price, 2)").evaluate(row);
//
// Operators: == != > < >= <=, AND OR NOT, + - * /, CONTAINS, STARTS_WITH,
// IS [NOT] NULL, IN (list), parentheses; literals 'string' "string" numbers
// TRUE FALSE NULL; functions UPPER LOWER ROUND ABS COALESCE IF(c,a,b) and any
// registered in an ExpressionFunctions. Keywords and function names are
// case-insensitive, field names are not. Nesting is bounded (kMaxDepth).
//
// Errors: a syntax error, an unknown function or a wrong argument count is a
// mktl::ValueError from parse(), naming the position. Evaluation errors (type
// mismatch, missing field, division by zero, a user function that throws) are
// mktl::ValueError / TypeError / KeyError from evaluate() for that row only.
//
// Threading: a parsed Expression is immutable; evaluate() may run on any
// number of threads at once. User functions must be safe to call likewise.
#pragma once

#include <mktl/json.hpp>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mktl {

// Named functions an expression may call: the built-ins, plus user functions.
class ExpressionFunctions {
 public:
  using Function = std::function<Json(std::span<const Json> args)>;

  // The built-in functions only.
  ExpressionFunctions();

  // Registers NAME (case-insensitive) taking min_args..max_args arguments
  // (max_args < 0: any number). Replaces a function of the same name.
  ExpressionFunctions& add(std::string name, int min_args, int max_args, Function function);

  struct Entry;
  const Entry* find(std::string_view name) const;

 private:
  std::shared_ptr<std::vector<std::shared_ptr<Entry>>> entries_;
};

class Expression {
 public:
  static constexpr int kMaxDepth = 64;

  // Parses TEXT once; throws mktl::ValueError on a syntax error.
  static Expression parse(std::string_view text, const ExpressionFunctions& functions = ExpressionFunctions());

  // The value of the expression for ROW (a JSON object of fields).
  Json evaluate(const Json& row) const;
  // evaluate() as a filter: true only for a boolean true result; a
  // non-boolean result is a TypeError.
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
