// The function registry: built-ins shared by every default registry, user
// functions added to a copy (so a registry is a value, and an expression
// parsed earlier keeps the entries it was parsed with).
#include "expr/ast.hpp"

#include <mktl/error.hpp>

namespace mktl {
namespace {

using Entries = std::vector<std::shared_ptr<ExpressionFunctions::Entry>>;

std::shared_ptr<ExpressionFunctions::Entry> builtin(const char* name, int min_args, int max_args, expr::Builtin kind) {
  auto entry = std::make_shared<ExpressionFunctions::Entry>();
  entry->name = name;
  entry->min_args = min_args;
  entry->max_args = max_args;
  entry->builtin = kind;
  return entry;
}

const std::shared_ptr<Entries>& builtins() {
  static const std::shared_ptr<Entries> entries = std::make_shared<Entries>(Entries{
      builtin("UPPER", 1, 1, expr::Builtin::upper),
      builtin("LOWER", 1, 1, expr::Builtin::lower),
      builtin("ROUND", 1, 2, expr::Builtin::round),
      builtin("ABS", 1, 1, expr::Builtin::abs),
      builtin("LEN", 1, 1, expr::Builtin::len),
      builtin("COALESCE", 1, -1, expr::Builtin::coalesce),
      builtin("IF", 3, 3, expr::Builtin::if_),
  });
  return entries;
}

bool same_name(std::string_view upper_name, std::string_view name) {
  if (upper_name.size() != name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != upper_name[i]) return false;
  }
  return true;
}

}  // namespace

ExpressionFunctions::ExpressionFunctions() : entries_(builtins()) {}

ExpressionFunctions& ExpressionFunctions::add(std::string name, int min_args, int max_args, Function function) {
  bool identifier = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
  for (char& c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) identifier = false;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  if (!identifier)
    throw ValueError("expression function name '" + name + "' is not an identifier (letters, digits, '_')");
  if (expr::is_keyword(name) || name == "IF")
    throw ValueError("expression function name '" + name + "' is reserved by the language");
  if (min_args < 0 || (max_args >= 0 && max_args < min_args))
    throw ValueError("expression function " + name + ": bad argument counts " + std::to_string(min_args) + ".." +
                     std::to_string(max_args));
  if (!function) throw ValueError("expression function " + name + ": no function given");

  auto entry = std::make_shared<Entry>();
  entry->name = name;
  entry->min_args = min_args;
  entry->max_args = max_args;
  entry->function = std::move(function);
  // Copy, never modify in place: the vector may be shared with other
  // registries (the built-ins are shared by all).
  auto copy = std::make_shared<Entries>(entries_ ? *entries_ : *builtins());
  bool replaced = false;
  for (auto& existing : *copy) {
    if (existing->name == entry->name) {
      existing = entry;
      replaced = true;
    }
  }
  if (!replaced) copy->push_back(std::move(entry));
  entries_ = std::move(copy);
  return *this;
}

const ExpressionFunctions::Entry* ExpressionFunctions::find(std::string_view name) const {
  // A moved-from registry holds no vector: it has the built-ins again.
  for (const auto& entry : entries_ ? *entries_ : *builtins())
    if (same_name(entry->name, name)) return entry.get();
  return nullptr;
}

}  // namespace mktl
