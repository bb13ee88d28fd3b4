// Evaluation: a walk of the immutable tree. Values are passed as Val, which
// refers to a literal or a row's field where it can, so that a comparison
// such as `status == 'filled'` copies nothing.
#include "expr/ast.hpp"
#include "common/text.hpp"
#include "expr/value.hpp"

#include <mktl/error.hpp>

#include <array>
#include <exception>
#include <utility>

namespace mktl {
namespace expr {
namespace {

const Json kNull;
const Json kTrue(true);
const Json kFalse(false);

// A value by reference (to the tree, the row or the constants above) or owned.
class Val {
 public:
  Val(const Json& ref) : ref_(&ref) {}  // NOLINT: implicit on purpose
  Val(Json&& owned) : ref_(nullptr), owned_(std::move(owned)) {}  // NOLINT
  static Val boolean(bool b) { return Val(b ? kTrue : kFalse); }

  const Json& get() const { return ref_ != nullptr ? *ref_ : owned_; }
  bool owned() const { return ref_ == nullptr; }
  Json& owned_value() { return owned_; }  // only when owned()
  Json take() && {
    if (ref_ != nullptr) return *ref_;
    return std::move(owned_);
  }

 private:
  const Json* ref_;
  Json owned_;
};

using Node = Expression::Node;

Val eval(const Node& node, const Json& row);

// AND, OR, NOT, IF and filters: TRUE/FALSE, with NULL as false.
bool truth(const Json& v, const char* what, std::uint32_t column) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_null()) return false;
  throw TypeError(where(what, column) + ": needs TRUE, FALSE or NULL, got " + type_name(v));
}

const Json& field(const Node& node, const Json& row) {
  if (!row.is_object())
    throw TypeError("field '" + node.name + "' at column " + std::to_string(node.column) + ": the row is " +
                    type_name(row) + ", not an object");
  auto it = row.find(node.name);
  if (it != row.end()) return *it;
  std::string have;
  std::size_t listed = 0;
  for (auto f = row.begin(); f != row.end(); ++f) {
    if (listed == 20) {
      have += ", ...";
      break;
    }
    have += (listed++ ? ", " : "") + f.key();
  }
  throw KeyError("unknown field '" + node.name + "' at column " + std::to_string(node.column) +
                 (have.empty() ? "; the row has no fields" : "; the row has: " + have));
}

// CONTAINS and STARTS_WITH: a string searched for a string, an array for an
// element (CONTAINS only); any other container, or NULL, gives FALSE.
bool contains(const Node& node, const Json& haystack, const Json& needle) {
  const bool starts = node.op == Op::starts_with;
  if (haystack.is_string()) {
    if (needle.is_null()) return false;
    if (!needle.is_string())
      throw TypeError(where(op_text(node.op), node.column) + ": cannot look for " + type_name(needle) +
                      " in a string (only a string)");
    const auto& h = haystack.get_ref<const std::string&>();
    const auto& n = needle.get_ref<const std::string&>();
    return starts ? h.compare(0, n.size(), n) == 0 && h.size() >= n.size() : h.find(n) != std::string::npos;
  }
  if (!starts && haystack.is_array()) {
    for (const Json& element : haystack)
      if (equal(element, needle)) return true;
  }
  return false;
}

// A user function: evaluated arguments in, and its exceptions re-thrown as
// the same mktl::Error type with its name in front.
Json call_user(const Node& node, const Json& row) {
  const ExpressionFunctions::Entry& f = *node.function;
  constexpr std::size_t kInline = 6;
  std::array<Json, kInline> inline_args;
  std::vector<Json> heap_args;
  std::span<Json> args;
  if (node.children.size() <= kInline) {
    args = std::span<Json>(inline_args.data(), node.children.size());
  } else {
    heap_args.resize(node.children.size());
    args = std::span<Json>(heap_args);
  }
  for (std::size_t i = 0; i < node.children.size(); ++i) args[i] = eval(node.children[i], row).take();

  const std::string prefix = f.name + "(): ";
  try {
    return f.function(std::span<const Json>(args.data(), args.size()));
  } catch (const TypeError& e) {
    throw TypeError(prefix + e.what());
  } catch (const ValueError& e) {
    throw ValueError(prefix + e.what());
  } catch (const KeyError& e) {
    throw KeyError(prefix + e.what());
  } catch (const TimeoutError& e) {
    throw TimeoutError(prefix + e.what());
  } catch (const RuntimeError& e) {
    throw RuntimeError(prefix + e.what());
  } catch (const Error& e) {
    throw Error(e.type(), prefix + e.what());
  } catch (const std::exception& e) {
    throw RuntimeError(prefix + e.what());
  } catch (...) {
    throw RuntimeError(prefix + "an exception that is not a std::exception");
  }
}

Val call(const Node& node, const Json& row) {
  const auto& kids = node.children;
  switch (node.function->builtin) {
    case Builtin::upper:
    case Builtin::lower: {
      Val v = eval(kids[0], row);
      if (!v.get().is_string()) return v;  // mkio: anything else unchanged
      Json text = std::move(v).take();
      std::string& s = text.get_ref<std::string&>();
      s = node.function->builtin == Builtin::upper ? mktl::detail::ascii_upper(s) : mktl::detail::ascii_lower(s);
      return Val(std::move(text));
    }
    case Builtin::round: {
      Val x = eval(kids[0], row);
      if (kids.size() < 2) return round_value(x.get(), nullptr, node.column);
      Val n = eval(kids[1], row);
      return round_value(x.get(), &n.get(), node.column);
    }
    case Builtin::abs:
      return abs_value(eval(kids[0], row).get(), node.column);
    case Builtin::len:
      return len_value(eval(kids[0], row).get(), node.column);
    case Builtin::coalesce:
      for (const Node& kid : kids) {
        Val v = eval(kid, row);
        if (!v.get().is_null()) return v;
      }
      return Val(kNull);
    case Builtin::if_:
      return eval(truth(eval(kids[0], row).get(), "IF()", node.column) ? kids[1] : kids[2], row);
    case Builtin::user:
      break;
  }
  return call_user(node, row);
}

Val arith_chain(const Node& node, const Json& row) {
  Val acc = eval(node.children[0], row);
  for (std::size_t i = 0; i < node.steps.size(); ++i) {
    const Step& step = node.steps[i];
    Val rhs = eval(node.children[i + 1], row);
    // a + b + c on strings: append to the string already built.
    if (step.op == Arith::add && acc.owned() && acc.get().is_string() && rhs.get().is_string()) {
      append(acc.owned_value().get_ref<std::string&>(), rhs.get().get_ref<const std::string&>(), step.column);
      continue;
    }
    acc = Val(arith(step.op, acc.get(), rhs.get(), step.column));
  }
  return acc;
}

Val eval(const Node& node, const Json& row) {
  const auto& kids = node.children;
  switch (node.op) {
    case Op::literal:
      return Val(node.value);
    case Op::field:
      return Val(field(node, row));
    case Op::negate:
      return negate(eval(kids[0], row).get(), node.column);
    case Op::not_:
      return Val::boolean(!truth(eval(kids[0], row).get(), "NOT", node.column));
    case Op::and_:
      for (const Node& kid : kids)
        if (!truth(eval(kid, row).get(), "AND", node.column)) return Val::boolean(false);
      return Val::boolean(true);
    case Op::or_:
      for (const Node& kid : kids)
        if (truth(eval(kid, row).get(), "OR", node.column)) return Val::boolean(true);
      return Val::boolean(false);
    case Op::arith:
      return arith_chain(node, row);
    case Op::eq:
    case Op::ne: {
      Val a = eval(kids[0], row);
      Val b = eval(kids[1], row);
      return Val::boolean(equal(a.get(), b.get()) == (node.op == Op::eq));
    }
    case Op::lt:
    case Op::le:
    case Op::gt:
    case Op::ge: {
      Val a = eval(kids[0], row);
      Val b = eval(kids[1], row);
      const std::partial_ordering c = order(a.get(), b.get(), op_text(node.op), node.column);
      switch (node.op) {
        case Op::lt: return Val::boolean(c < 0);
        case Op::le: return Val::boolean(c <= 0);
        case Op::gt: return Val::boolean(c > 0);
        default: return Val::boolean(c >= 0);
      }
    }
    case Op::contains:
    case Op::starts_with: {
      Val a = eval(kids[0], row);
      Val b = eval(kids[1], row);
      return Val::boolean(contains(node, a.get(), b.get()));
    }
    case Op::in_list: {
      Val needle = eval(kids[0], row);
      for (std::size_t i = 1; i < kids.size(); ++i)
        if (equal(needle.get(), eval(kids[i], row).get())) return Val::boolean(true);
      return Val::boolean(false);
    }
    case Op::in_value: {
      // mkio: membership when the right side is an array, else FALSE.
      Val needle = eval(kids[0], row);
      Val list = eval(kids[1], row);
      if (list.get().is_array())
        for (const Json& element : list.get())
          if (equal(needle.get(), element)) return Val::boolean(true);
      return Val::boolean(false);
    }
    case Op::is_null:
      return Val::boolean(eval(kids[0], row).get().is_null());
    case Op::is_not_null:
      return Val::boolean(!eval(kids[0], row).get().is_null());
    case Op::call:
      return call(node, row);
  }
  throw RuntimeError("expression: unknown node");
}

// Runs BODY, letting only mktl::Error out.
template <typename Body>
auto guarded(Body&& body) {
  try {
    return body();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RuntimeError(std::string("expression evaluation failed: ") + e.what());
  }
}

}  // namespace
}  // namespace expr

Json Expression::evaluate(const Json& row) const {
  if (!root_) throw ValueError("evaluate() on an expression that was never parsed");
  return expr::guarded([&] { return expr::eval(*root_, row).take(); });
}

bool Expression::matches(const Json& row) const {
  if (!root_) throw ValueError("matches() on an expression that was never parsed");
  return expr::guarded([&] {
    expr::Val v = expr::eval(*root_, row);
    const Json& result = v.get();
    if (result.is_boolean()) return result.get<bool>();
    if (result.is_null()) return false;
    throw TypeError(std::string("a filter must give TRUE, FALSE or NULL, got ") + expr::type_name(result));
  });
}

const std::vector<std::string>& Expression::fields() const {
  static const std::vector<std::string> kNone;
  return fields_ ? *fields_ : kNone;
}

const std::string& Expression::text() const {
  static const std::string kEmpty;
  return text_ ? *text_ : kEmpty;
}

}  // namespace mktl
