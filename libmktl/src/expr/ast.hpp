// The parsed form of an expression (internal to libmktl): an immutable tree
// that evaluate() walks. Chains of one operator (a + b - c, a AND b AND c)
// are one node with many children, so the tree's depth follows the text's
// nesting (bounded by Expression::kMaxDepth), not its length.
#pragma once

#include <mktl/expr.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mktl {
namespace expr {

enum class Builtin : std::uint8_t { user, upper, lower, round, abs, len, coalesce, if_ };

enum class Op : std::uint8_t {
  literal,      // value
  field,        // name
  negate,       // -children[0]
  not_,         // NOT children[0]
  and_,         // children[0] AND children[1] AND ...
  or_,          // children[0] OR children[1] OR ...
  arith,        // children[0] steps[0] children[1] steps[1] children[2] ...
  eq, ne, lt, le, gt, ge,  // children[0] <op> children[1]
  contains,     // children[0] CONTAINS children[1]
  starts_with,  // children[0] STARTS_WITH children[1]
  in_list,      // children[0] IN (children[1], children[2], ...)
  in_value,     // children[0] IN children[1] (an array)
  is_null,
  is_not_null,
  call,         // function(children...)
};

enum class Arith : std::uint8_t { add, sub, mul, div };

struct Step {
  Arith op;
  std::uint32_t column;  // of the operator, for messages
};

// Spelling of an operator in messages: "==", "CONTAINS", "+", ...
const char* op_text(Op op);
const char* arith_text(Arith op);

// The language's reserved words (upper case), which cannot name a field or
// a function.
bool is_keyword(std::string_view upper_name);

}  // namespace expr

// Shared by the registry and every parsed call of it.
struct ExpressionFunctions::Entry : std::enable_shared_from_this<ExpressionFunctions::Entry> {
  std::string name;  // upper case
  int min_args = 0;
  int max_args = 0;  // < 0: any number
  expr::Builtin builtin = expr::Builtin::user;
  Function function;  // user functions only
};

struct Expression::Node {
  expr::Op op = expr::Op::literal;
  std::uint32_t column = 1;  // where the node's operator or operand starts
  Json value;                // literal
  std::string name;          // field
  std::vector<Node> children;
  std::vector<expr::Step> steps;                              // arith
  std::shared_ptr<const ExpressionFunctions::Entry> function;  // call
};

}  // namespace mktl
