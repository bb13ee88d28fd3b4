// Recursive descent, one function per precedence level (loosest first):
//   or       := and (OR and)*
//   and      := not (AND not)*
//   not      := NOT not | comparison
//   compare  := sum [ (== != < <= > >=) sum | CONTAINS sum | STARTS_WITH sum
//                   | IS [NOT] NULL | IN ( list ) | IN [ list ] | IN sum ]
//   sum      := product ((+ | -) product)*
//   product  := unary ((* | /) unary)*
//   unary    := - unary | primary
//   primary  := number | string | TRUE | FALSE | NULL | field
//             | name ( [or (, or)*] ) | ( or )
// Every level that recurses into itself or back to `or` counts against
// Expression::kMaxDepth, so no input can exhaust the stack.
#include "expr/ast.hpp"
#include "expr/lexer.hpp"

#include <mktl/error.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <set>
#include <utility>

namespace mktl {
namespace expr {

bool is_keyword(std::string_view upper_name) {
  static constexpr std::string_view kKeywords[] = {"AND",  "OR",       "NOT",         "IS",   "NULL",
                                                   "IN",   "CONTAINS", "STARTS_WITH", "TRUE", "FALSE"};
  return std::find(std::begin(kKeywords), std::end(kKeywords), upper_name) != std::end(kKeywords);
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

class Parser {
 public:
  Parser(std::string_view text, const ExpressionFunctions& functions, std::set<std::string>& fields)
      : lexer_(text), functions_(functions), fields_(fields) {
    token_ = lexer_.next();
  }

  Expression::Node parse() {
    if (token_.kind == Tok::end) fail("expected an expression, found nothing");
    Expression::Node root = parse_or();
    if (token_.kind != Tok::end) {
      if (token_.kind == Tok::rparen) fail("')' has no matching '('");
      fail("expected an operator or the end of the expression, found " + describe(token_));
    }
    return root;
  }

 private:
  // Counts one level of nesting for its lifetime.
  class Nest {
   public:
    explicit Nest(Parser& parser) : parser_(parser) {
      if (++parser_.depth_ > Expression::kMaxDepth)
        parser_.fail("expression nested more than " + std::to_string(Expression::kMaxDepth) + " levels deep");
    }
    ~Nest() { --parser_.depth_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Parser& parser_;
  };

  [[noreturn]] void fail(const std::string& message) const { syntax_error(lexer_.text(), token_.pos, message); }
  [[noreturn]] void fail_at(std::size_t pos, const std::string& message) const {
    syntax_error(lexer_.text(), pos, message);
  }

  std::string describe(const Token& token) const {
    if (token.kind == Tok::end) return "the end of the expression";
    std::string_view spelled = lexer_.text().substr(token.pos, token.len);
    if (spelled.size() > 40) return "'" + std::string(spelled.substr(0, 37)) + "...'";
    return "'" + std::string(spelled) + "'";
  }

  std::uint32_t column() const { return token_.column; }

  void advance() {
    if (ahead_) {
      token_ = std::move(*ahead_);
      ahead_.reset();
    } else {
      token_ = lexer_.next();
    }
  }
  const Token& peek() {
    if (!ahead_) ahead_ = lexer_.next();
    return *ahead_;
  }

  bool keyword(std::string_view word) const { return token_.kind == Tok::ident && iequals(token_.text, word); }

  void expect(Tok kind, const std::string& what) {
    if (token_.kind != kind) fail("expected " + what + ", found " + describe(token_));
    advance();
  }

  static Expression::Node make(Op op, std::uint32_t column) {
    Expression::Node node;
    node.op = op;
    node.column = column;
    return node;
  }

  // OR and AND: one node for the whole chain.
  Expression::Node parse_or() {
    Expression::Node first = parse_and();
    if (!keyword("OR")) return first;
    Expression::Node chain = make(Op::or_, column());
    chain.children.push_back(std::move(first));
    while (keyword("OR")) {
      advance();
      chain.children.push_back(parse_and());
    }
    return chain;
  }

  Expression::Node parse_and() {
    Expression::Node first = parse_not();
    if (!keyword("AND")) return first;
    Expression::Node chain = make(Op::and_, column());
    chain.children.push_back(std::move(first));
    while (keyword("AND")) {
      advance();
      chain.children.push_back(parse_not());
    }
    return chain;
  }

  Expression::Node parse_not() {
    if (!keyword("NOT")) return parse_comparison();
    Nest nest(*this);
    Expression::Node node = make(Op::not_, column());
    advance();
    node.children.push_back(parse_not());
    return node;
  }

  bool at_comparison() const {
    switch (token_.kind) {
      case Tok::eq: case Tok::ne: case Tok::lt: case Tok::le: case Tok::gt: case Tok::ge:
        return true;
      default:
        return keyword("IS") || keyword("IN") || keyword("CONTAINS") || keyword("STARTS_WITH");
    }
  }

  Expression::Node parse_comparison() {
    Expression::Node left = parse_sum();
    const std::uint32_t at = column();
    const std::size_t op_pos = token_.pos;
    Expression::Node node;
    auto binary = [&](Op op) {
      advance();
      node = make(op, at);
      node.children.push_back(std::move(left));
      node.children.push_back(parse_sum());
    };
    switch (token_.kind) {
      case Tok::eq: binary(Op::eq); break;
      case Tok::ne: binary(Op::ne); break;
      case Tok::lt: binary(Op::lt); break;
      case Tok::le: binary(Op::le); break;
      case Tok::gt: binary(Op::gt); break;
      case Tok::ge: binary(Op::ge); break;
      default:
        if (keyword("CONTAINS")) {
          binary(Op::contains);
        } else if (keyword("STARTS_WITH")) {
          binary(Op::starts_with);
        } else if (keyword("IS")) {
          advance();
          bool negated = false;
          if (keyword("NOT")) {
            negated = true;
            advance();
          }
          if (!keyword("NULL")) fail(std::string("expected NULL after ") + (negated ? "IS NOT" : "IS") + ", found " +
                                     describe(token_));
          advance();
          node = make(negated ? Op::is_not_null : Op::is_null, at);
          node.children.push_back(std::move(left));
        } else if (keyword("IN")) {
          advance();
          node = parse_in(std::move(left), at);
        } else if (keyword("NOT") && peek().kind == Tok::ident && iequals(peek().text, "IN")) {
          fail("NOT IN is not supported: write NOT (x IN (...))");
        } else {
          return left;
        }
    }
    if (at_comparison()) {
      fail_at(token_.pos, "comparisons do not chain (the one at column " +
                              std::to_string(column_of(lexer_.text(), op_pos)) + " is complete): join them with AND");
    }
    return node;
  }

  // After IN: a parenthesised or bracketed list of values, or one value
  // (expected to be an array).
  Expression::Node parse_in(Expression::Node left, std::uint32_t at) {
    if (token_.kind == Tok::lparen || token_.kind == Tok::lbracket) {
      const Tok close = token_.kind == Tok::lparen ? Tok::rparen : Tok::rbracket;
      const std::string close_text = close == Tok::rparen ? "')'" : "']'";
      Nest nest(*this);
      Expression::Node node = make(Op::in_list, at);
      node.children.push_back(std::move(left));
      advance();
      if (token_.kind != close) {
        for (;;) {
          node.children.push_back(parse_or());
          if (token_.kind != Tok::comma) break;
          advance();
        }
      }
      expect(close, "',' or " + close_text + " in the IN list");
      return node;
    }
    Expression::Node node = make(Op::in_value, at);
    node.children.push_back(std::move(left));
    node.children.push_back(parse_sum());
    return node;
  }

  Expression::Node parse_sum() {
    Expression::Node first = parse_product();
    if (token_.kind != Tok::plus && token_.kind != Tok::minus) return first;
    Expression::Node chain = make(Op::arith, first.column);
    chain.children.push_back(std::move(first));
    while (token_.kind == Tok::plus || token_.kind == Tok::minus) {
      chain.steps.push_back({token_.kind == Tok::plus ? Arith::add : Arith::sub, column()});
      advance();
      chain.children.push_back(parse_product());
    }
    return chain;
  }

  Expression::Node parse_product() {
    Expression::Node first = parse_unary();
    if (token_.kind != Tok::star && token_.kind != Tok::slash) return first;
    Expression::Node chain = make(Op::arith, first.column);
    chain.children.push_back(std::move(first));
    while (token_.kind == Tok::star || token_.kind == Tok::slash) {
      chain.steps.push_back({token_.kind == Tok::star ? Arith::mul : Arith::div, column()});
      advance();
      chain.children.push_back(parse_unary());
    }
    return chain;
  }

  Expression::Node parse_unary() {
    if (token_.kind == Tok::plus) fail("unary '+' is not supported: write the value alone");
    if (token_.kind != Tok::minus) return parse_primary();
    Nest nest(*this);
    const std::uint32_t at = column();
    const std::size_t minus_pos = token_.pos;
    advance();
    Expression::Node operand = parse_unary();
    // -5 is the literal -5 (so -9223372036854775808 fits an int64).
    if (operand.op == Op::literal && operand.value.is_number()) {
      const Json& v = operand.value;
      if (v.is_number_float()) {
        operand.value = -v.get<double>();
      } else {
        const __int128 n = v.is_number_unsigned() ? static_cast<__int128>(v.get<std::uint64_t>())
                                                  : static_cast<__int128>(v.get<std::int64_t>());
        const __int128 negated = -n;
        if (negated < std::numeric_limits<std::int64_t>::min() || negated > std::numeric_limits<std::int64_t>::max())
          fail_at(minus_pos, "integer literal out of range");
        operand.value = static_cast<std::int64_t>(negated);
      }
      operand.column = at;
      return operand;
    }
    Expression::Node node = make(Op::negate, at);
    node.children.push_back(std::move(operand));
    return node;
  }

  Expression::Node parse_primary() {
    const std::uint32_t at = column();
    switch (token_.kind) {
      case Tok::number: {
        Expression::Node node = make(Op::literal, at);
        node.value = std::move(token_.number);
        advance();
        return node;
      }
      case Tok::string: {
        Expression::Node node = make(Op::literal, at);
        node.value = std::move(token_.text);
        advance();
        return node;
      }
      case Tok::lparen: {
        Nest nest(*this);
        const std::size_t open = token_.pos;
        advance();
        if (token_.kind == Tok::rparen) fail("expected an expression inside '()', found ')'");
        Expression::Node inner = parse_or();
        if (token_.kind != Tok::rparen)
          fail("expected ')' to close the '(' at column " + std::to_string(column_of(lexer_.text(), open)) +
               ", found " + describe(token_));
        advance();
        return inner;
      }
      case Tok::ident:
        break;
      default:
        fail("expected a value (a field, literal, function call or '('), found " + describe(token_));
    }
    const std::string name = upper(token_.text);
    if (name == "TRUE" || name == "FALSE" || name == "NULL") {
      Expression::Node node = make(Op::literal, at);
      if (name != "NULL") node.value = name == "TRUE";
      advance();
      return node;
    }
    if (is_keyword(name)) fail("expected a value, found the keyword " + name);
    if (peek().kind == Tok::lparen) return parse_call(name, at);
    Expression::Node node = make(Op::field, at);
    node.name = std::move(token_.text);
    fields_.insert(node.name);
    advance();
    return node;
  }

  Expression::Node parse_call(const std::string& name, std::uint32_t at) {
    const std::size_t name_pos = token_.pos;
    const ExpressionFunctions::Entry* found = functions_.find(name);
    if (found == nullptr) fail("unknown function " + name);
    Nest nest(*this);
    Expression::Node node = make(Op::call, at);
    advance();  // the name
    advance();  // '('
    if (token_.kind != Tok::rparen) {
      for (;;) {
        node.children.push_back(parse_or());
        if (token_.kind != Tok::comma) break;
        advance();
      }
    }
    expect(Tok::rparen, "',' or ')' after the arguments of " + name);
    const int count = static_cast<int>(node.children.size());
    if (count < found->min_args || (found->max_args >= 0 && count > found->max_args)) {
      std::string wanted;
      if (found->max_args < 0) wanted = "at least " + std::to_string(found->min_args);
      else if (found->min_args == found->max_args) wanted = std::to_string(found->min_args);
      else wanted = std::to_string(found->min_args) + " to " + std::to_string(found->max_args);
      const int last = found->max_args < 0 ? found->min_args : found->max_args;
      fail_at(name_pos, name + " takes " + wanted + " argument" + (last == 1 ? "" : "s") + ", got " +
                            std::to_string(count));
    }
    // The node shares the registry's entry: later changes to the registry
    // do not reach an expression already parsed.
    node.function = found->shared_from_this();
    return node;
  }

  Lexer lexer_;
  const ExpressionFunctions& functions_;
  std::set<std::string>& fields_;
  Token token_;
  std::optional<Token> ahead_;
  int depth_ = 0;
};

}  // namespace
}  // namespace expr

Expression Expression::parse(std::string_view text, const ExpressionFunctions& functions) {
  if (text.size() > kMaxLength)
    throw ValueError("expression is " + std::to_string(text.size()) + " bytes long, the limit is " +
                     std::to_string(kMaxLength));
  std::set<std::string> fields;
  expr::Parser parser(text, functions, fields);
  Expression expression;
  expression.root_ = std::make_shared<const Node>(parser.parse());
  expression.fields_ = std::make_shared<const std::vector<std::string>>(fields.begin(), fields.end());
  expression.text_ = std::make_shared<const std::string>(text);
  return expression;
}

}  // namespace mktl
