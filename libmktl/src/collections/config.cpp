// The collections configuration: mkio's `tables` and `services` checked key
// by key, so that a typo stops markd at start-up with the file, the place
// and the fix, instead of failing a transaction hours later. mkio keys with
// no meaning here are accepted and listed (Config::ignored), so an mkio file
// loads unchanged; anything else unknown is an error with a suggestion.
#include "collections/config.hpp"
#include "common/text.hpp"

#include "collections/column.hpp"
#include "collections/toml.hpp"

#include <mktl/catalog.hpp>
#include <mktl/error.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

namespace mktl::collections {

const Column* Table::column(const std::string& name) const {
  for (const Column& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

const Table* Config::table(const std::string& name) const {
  for (const Table& t : tables)
    if (t.name == name) return &t;
  return nullptr;
}

const char* op_type_name(OpType type) {
  switch (type) {
    case OpType::insert: return "insert";
    case OpType::update: return "update";
    case OpType::delete_: return "delete";
    case OpType::upsert: return "upsert";
  }
  return "?";
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::keyed: return "keyed";
    case Kind::stream: return "stream";
    case Kind::table: return "table";
  }
  return "?";
}

namespace {
using mktl::detail::ascii_lower;
using mktl::detail::shown;

using detail::pointer_token;
using detail::suggestion;

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none)" : out;
}

// A short JSON rendering of an offending value.
std::string type_of(const Json& value) {
  if (value.is_number_integer()) return "an integer";
  if (value.is_number_float()) return "a number with a fraction";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

const std::vector<std::string> kTopLevelKeys = {
    "tables", "services", "db_path", "batch_max_size", "batch_max_wait_ms", "change_log_size", "auto_migrate",
    "change_bus_size",
    // mkio's, with no meaning here (mktl serves mKTL, not HTTP; backups and
    // checkpoints are the daemon's business):
    "host", "port", "wal_checkpoint_interval_s", "backup_on_startup", "backup_dir", "static", "config",
    "shutdown_timeout", "name", "version"};
const std::set<std::string> kIgnoredTopLevel = {"host", "port", "wal_checkpoint_interval_s", "backup_on_startup",
                                                "backup_dir", "static", "config", "shutdown_timeout", "name", "version"};

const std::vector<std::string> kServiceTypes = {"transaction", "subpub", "stream", "query", "reqrep"};

// Accepted keys per service type: mkio's, plus `type` (our spelling of
// `protocol`), subpub's `key` (mkio's `topic`) and `filterable` on subpub.
const std::map<std::string, std::vector<std::string>> kServiceKeys = {
    {"transaction",
     {"type", "protocol", "ops", "table", "op_type", "key", "fields", "defaults", "change_log_size", "description",
      "descriptions"}},
    {"subpub",
     {"type", "protocol", "primary_table", "watch_tables", "topic", "key", "sql", "where", "publish", "defaults",
      "filterable", "change_log_size", "description"}},
    {"stream", {"type", "protocol", "primary_table", "watch_tables", "sql", "publish", "filterable", "buffer_size", "description"}},
    {"query",
     {"type", "protocol", "primary_table", "watch_tables", "sql", "publish", "filterable", "where", "change_log_size",
      "description"}},
};

const std::vector<std::string> kOpKeys = {"table", "op_type", "key", "fields", "defaults", "bind"};
const std::vector<std::string> kOpTypes = {"insert", "update", "delete", "upsert"};

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

void add_unique(std::vector<std::string>& list, const std::string& value) {
  if (!contains(list, value)) list.push_back(value);
}

std::vector<std::string> column_names(const Table& table) {
  std::vector<std::string> out;
  for (const Column& c : table.columns) out.push_back(c.name);
  return out;
}

bool is_identifier(const std::string& name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

constexpr const char* kExpressionHelp = "fix the expression (docs/expressions.md describes the language)";

class Parser {
 public:
  Parser(const Json& document, const std::string& source, const ExpressionFunctions& functions, const detail::LineMap* lines)
      : document_(document), source_(source), functions_(functions), lines_(lines) {}

  Config run() {
    config_.source = source_;
    if (!document_.is_object())
      fail("", "expected a JSON object {\"tables\": {...}, \"services\": {...}}, got " + type_of(document_));
    for (const auto& [key, value] : document_.items()) {
      const std::string pointer = "/" + pointer_token(key);
      if (key == "tables" || key == "services") continue;  // below, tables first
      if (key == "db_path") {
        config_.db_path = string_value(value, pointer, "the SQLite database file");
        if (config_.db_path.empty()) fail(pointer, "expected a file name; leave db_path out for the daemon's default");
      } else if (key == "batch_max_size") {
        config_.batch_max_size = positive_int(value, pointer, "the most transactions one COMMIT takes");
      } else if (key == "batch_max_wait_ms") {
        if (!value.is_number() || !(value.get<double>() >= 0 && value.get<double>() <= 60000))  // NaN too
          fail(pointer, "expected milliseconds from 0 to 60000 (how long a COMMIT waits for more transactions), got " + shown(value));
        config_.batch_max_wait_ms = value.get<double>();
      } else if (key == "change_log_size") {
        default_change_log_ = positive_int(value, pointer, "how many changes a service keeps for catch-up");
      } else if (key == "change_bus_size") {
        config_.change_bus_size = positive_int(value, pointer, "how many changes may wait for the collections thread");
      } else if (key == "auto_migrate") {
        if (!value.is_boolean()) fail(pointer, "expected true or false, got " + shown(value));
        config_.auto_migrate = value.get<bool>();
      } else if (kIgnoredTopLevel.count(key) || (!key.empty() && key.front() == '_')) {
        config_.ignored.push_back(pointer);
      } else {
        fail(pointer, "unknown key '" + key + "'" + suggestion(key, kTopLevelKeys) + " (accepted: " + joined(kTopLevelKeys) + ")");
      }
    }
    if (document_.contains("tables")) parse_tables(document_["tables"], "/tables");
    if (document_.contains("services")) parse_services(document_["services"], "/services");
    resolve_db_path();
    std::sort(config_.ignored.begin(), config_.ignored.end());
    return std::move(config_);
  }

 private:
  // ---- errors -------------------------------------------------------------

  [[noreturn]] void fail(const std::string& pointer, const std::string& problem) const {
    throw ConfigError(source_, place(pointer), problem);
  }

  std::string place(const std::string& pointer) const {
    const detail::LineMap* lines = lines_ ? lines_ : lazy_lines();
    if (lines) {
      std::string p = pointer;
      while (true) {
        auto found = lines->find(p);
        if (found != lines->end()) return "line " + std::to_string(found->second) + ", " + (pointer.empty() ? "/" : pointer);
        if (p.empty()) break;
        p.erase(p.rfind('/'));
      }
    }
    return pointer;
  }

  // A document handed over already converted (the daemon's options) loses
  // its lines; for a TOML source, read it again to find them, but only when
  // it still holds this document.
  const detail::LineMap* lazy_lines() const {
    if (!lazy_tried_) {
      lazy_tried_ = true;
      if (detail::is_toml_path(source_)) {
        try {
          detail::LineMap lines;
          Json again = detail::toml_to_json(detail::read_text_file(source_), source_, &lines);
          if (again.is_object()) again.erase("items");  // a daemon config's items are not ours
          if (again == document_) lazy_lines_ = std::move(lines);
        } catch (const std::exception&) {
          // No lines then: the pointer alone still names the place.
        }
      }
    }
    return lazy_lines_ ? &*lazy_lines_ : nullptr;
  }

  // ---- typed values -------------------------------------------------------

  const std::string& string_value(const Json& value, const std::string& pointer, const char* what) const {
    if (!value.is_string()) fail(pointer, std::string("expected a string (") + what + "), got " + shown(value));
    return value.get_ref<const std::string&>();
  }

  int positive_int(const Json& value, const std::string& pointer, const char* what) const {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > 100000000)
      fail(pointer, std::string("expected a positive integer (") + what + "), got " + shown(value));
    return static_cast<int>(value.get<std::int64_t>());
  }

  const Json& object_value(const Json& value, const std::string& pointer, const char* what) const {
    if (!value.is_object()) fail(pointer, std::string("expected an object (") + what + "), got " + type_of(value));
    return value;
  }

  std::vector<std::string> string_list(const Json& value, const std::string& pointer, const char* what) const {
    if (!value.is_array()) fail(pointer, std::string("expected an array of strings (") + what + "), got " + shown(value));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
      const std::string at = pointer + "/" + std::to_string(i);
      const std::string& s = string_value(value[i], at, what);
      if (contains(out, s)) fail(at, "'" + s + "' is listed twice");
      out.push_back(s);
    }
    return out;
  }

  // ---- names --------------------------------------------------------------

  // An item key (a service name, or SERVICE_OPSET).
  void check_item_name(const std::string& name, const std::string& pointer, const char* what) const {
    if (name.empty()) fail(pointer, std::string("the ") + what + " name is empty; give it a name");
    if (name.front() == '_') fail(pointer, std::string("the ") + what + " name '" + name + "' starts with '_', which mKTL keeps for its own items; rename it");
    for (char c : name) {
      if (c == '.') fail(pointer, std::string("the ") + what + " name '" + name + "' holds a '.', which separates store and key in mKTL; rename it (for example with '_')");
      if (std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x20)
        fail(pointer, std::string("the ") + what + " name '" + name + "' holds whitespace or a control character; rename it");
    }
  }

  void claim_item(const std::string& item, const std::string& pointer, const std::string& what) {
    auto [it, inserted] = items_.emplace(item, what);
    if (!inserted)
      fail(pointer, "item key '" + item + "' of " + what + " collides with that of " + it->second +
                        " (item keys are case-insensitive); rename one of them");
  }

  void check_sql_name(const std::string& name, const std::string& pointer, const char* what) const {
    if (!is_identifier(name))
      fail(pointer, std::string("the ") + what + " name '" + name + "' is not a plain SQL name; use letters, digits and '_', not starting with a digit");
    if (ascii_lower(name).rfind("sqlite_", 0) == 0) fail(pointer, std::string("the ") + what + " name '" + name + "' starts with 'sqlite_', which SQLite reserves; rename it");
  }

  // ---- unknown keys -------------------------------------------------------

  void unknown_key(const std::string& key, const std::string& pointer, const std::vector<std::string>& accepted,
                   const std::string& context) const {
    fail(pointer, "unknown key '" + key + "' in " + context + suggestion(key, accepted) + " (accepted: " + joined(accepted) + ")");
  }

  // ---- tables -------------------------------------------------------------

  void parse_tables(const Json& value, const std::string& pointer) {
    object_value(value, pointer, "{table name: {columns = {...}, primary_key = [...]}}");
    std::map<std::string, std::string> seen;  // lower-case name -> name
    for (const auto& [name, spec] : value.items()) {
      const std::string at = pointer + "/" + pointer_token(name);
      check_sql_name(name, at, "table");
      if (auto [it, inserted] = seen.emplace(ascii_lower(name), name); !inserted)
        fail(at, "table '" + name + "' and table '" + it->second + "' differ only in case, which SQLite does not tell apart; rename one");
      config_.tables.push_back(parse_table(name, spec, at));
    }
  }

  Table parse_table(const std::string& name, const Json& spec, const std::string& pointer) const {
    object_value(spec, pointer, "the table: {columns = {name = \"SQL type and constraints\"}, primary_key = [...]}");
    static const std::vector<std::string> accepted = {"columns", "primary_key"};
    for (const auto& [key, value] : spec.items())
      if (!contains(accepted, key)) unknown_key(key, pointer + "/" + pointer_token(key), accepted, "table '" + name + "'");
    if (!spec.contains("columns")) fail(pointer, "table '" + name + "' has no 'columns'; add columns = {name = \"SQL type and constraints\", ...}");
    const std::string columns_at = pointer + "/columns";
    const Json& columns = object_value(spec["columns"], columns_at, "{column name: \"SQL type and constraints\"}");
    if (columns.empty()) fail(columns_at, "table '" + name + "' has no columns; add at least one");

    Table t;
    t.name = name;
    std::map<std::string, std::string> seen;
    for (const auto& [column, decl] : columns.items()) {
      const std::string at = columns_at + "/" + pointer_token(column);
      check_sql_name(column, at, "column");
      if (auto [it, inserted] = seen.emplace(ascii_lower(column), column); !inserted)
        fail(at, "column '" + column + "' and column '" + it->second + "' differ only in case, which SQLite does not tell apart; rename one");
      const std::string& text = string_value(decl, at, "the SQL type and constraints, e.g. \"TEXT NOT NULL\"");
      try {
        t.columns.push_back(detail::parse_column(column, text));
      } catch (const Error& e) {
        fail(at, std::string(e.what()));
      }
      if (t.columns.back().primary_key) t.primary_key.push_back(column);
    }
    if (t.primary_key.size() > 1)
      fail(columns_at, "columns " + joined(t.primary_key) + " each declare PRIMARY KEY; a table has one primary key: declare a composite one with primary_key = [...] instead");
    if (spec.contains("primary_key")) {
      const std::string at = pointer + "/primary_key";
      if (!t.primary_key.empty())
        fail(at, "column '" + t.primary_key.front() + "' already declares PRIMARY KEY; keep either that or primary_key, not both");
      t.primary_key = string_list(spec["primary_key"], at, "the primary key's column names");
      if (t.primary_key.empty()) fail(at, "expected at least one column name; leave primary_key out for a table without one");
      for (std::size_t i = 0; i < t.primary_key.size(); ++i) {
        const std::string& c = t.primary_key[i];
        auto it = std::find_if(t.columns.begin(), t.columns.end(), [&](const Column& col) { return col.name == c; });
        if (it == t.columns.end())
          fail(at + "/" + std::to_string(i), "table '" + name + "' has no column '" + c + "'" + suggestion(c, column_names(t)) +
                                                  " (columns: " + joined(column_names(t)) + ")");
        if (it->generated) fail(at + "/" + std::to_string(i), "column '" + c + "' is generated and cannot be part of the primary key");
        it->primary_key = true;
        // PRIMARY KEY(id) on an INTEGER column is SQLite's rowid, as the column constraint is.
        if (t.primary_key.size() == 1 && it->type == "INTEGER") it->autoincrement = true;
      }
    }
    return t;
  }

  const Table& known_table(const Json& value, const std::string& pointer, const char* what) const {
    const std::string& name = string_value(value, pointer, what);
    if (const Table* t = config_.table(name)) return *t;
    std::vector<std::string> names;
    for (const Table& t : config_.tables) names.push_back(t.name);
    fail(pointer, "no table '" + name + "' in tables" + suggestion(name, names) + " (tables: " + joined(names) +
                      "); declare it under tables or fix the name");
  }

  const Column& known_column(const Table& table, const std::string& name, const std::string& pointer, const char* role) const {
    if (const Column* c = table.column(name)) return *c;
    fail(pointer, std::string(role) + " '" + name + "' is not a column of table '" + table.name + "'" +
                      suggestion(name, column_names(table)) + " (columns: " + joined(column_names(table)) + ")");
  }

  // ---- services -----------------------------------------------------------

  void parse_services(const Json& value, const std::string& pointer) {
    object_value(value, pointer, "{service name: {type = \"transaction\" | \"subpub\" | \"stream\" | \"query\", ...}}");
    std::map<std::string, std::string> names;  // lower-case -> as configured
    for (const auto& [name, spec] : value.items()) {
      const std::string at = pointer + "/" + pointer_token(name);
      object_value(spec, at, "the service's options");
      const std::string type = service_type(spec, at);
      if (type == "reqrep" || type.find('.') != std::string::npos) {
        // Request-reply and Python service classes have no mKTL counterpart here.
        config_.ignored.push_back(at + " (" + (type == "reqrep" ? std::string("reqrep service") : "Python service class " + type) + ")");
        continue;
      }
      check_item_name(name, at, "service");
      if (auto [it, inserted] = names.emplace(ascii_lower(name), name); !inserted)
        fail(at, "service '" + name + "' and service '" + it->second + "' differ only in case; item keys are case-insensitive: rename one");
      check_service_keys(name, type, spec, at);
      if (type == "transaction") parse_transaction(name, spec, at);
      else parse_collection(name, type, spec, at);
    }
  }

  std::string service_type(const Json& spec, const std::string& pointer) const {
    std::string type, protocol;
    if (spec.contains("type")) type = string_value(spec["type"], pointer + "/type", "the service type");
    if (spec.contains("protocol")) protocol = string_value(spec["protocol"], pointer + "/protocol", "the service type, mkio's spelling of 'type'");
    if (spec.contains("type") && spec.contains("protocol") && type != protocol)
      fail(pointer + "/type", "type '" + type + "' and protocol '" + protocol + "' disagree; 'protocol' is mkio's name for 'type': keep one");
    if (type.empty()) type = protocol;
    if (type.empty())
      fail(pointer, "the service has no 'type' (mkio: 'protocol'); add type = \"transaction\", \"subpub\", \"stream\" or \"query\"");
    if (!contains(kServiceTypes, type) && type.find('.') == std::string::npos)
      fail(pointer + (spec.contains("type") ? "/type" : "/protocol"),
           "unknown service type '" + type + "'" + suggestion(type, kServiceTypes) + " (types: transaction, subpub, stream, query; reqrep is accepted and ignored)");
    return type;
  }

  void check_service_keys(const std::string& name, const std::string& type, const Json& spec, const std::string& pointer) const {
    const std::vector<std::string>& accepted = kServiceKeys.at(type);
    for (const auto& [key, value] : spec.items()) {
      if (contains(accepted, key) || (!key.empty() && key.front() == '_')) continue;
      const std::string at = pointer + "/" + pointer_token(key);
      std::vector<std::string> elsewhere;
      for (const auto& [other, keys] : kServiceKeys)
        if (other != type && contains(keys, key)) elsewhere.push_back(other);
      if (!elsewhere.empty())
        fail(at, "'" + key + "' has no meaning for a " + type + " service (it is an option of " + joined(elsewhere) +
                     "); remove it or change the service's type");
      unknown_key(key, at, accepted, type + " service '" + name + "'");
    }
  }

  void ignore_underscored(const Json& spec, const std::string& pointer) {
    for (const auto& [key, value] : spec.items())
      if (!key.empty() && key.front() == '_') config_.ignored.push_back(pointer + "/" + pointer_token(key));
  }

  // ---- transactions -------------------------------------------------------

  void parse_transaction(const std::string& name, const Json& spec, const std::string& pointer) {
    ignore_underscored(spec, pointer);
    Transaction t;
    t.name = ascii_lower(name);
    t.change_log_size = default_change_log_;
    if (spec.contains("description")) t.description = string_value(spec["description"], pointer + "/description", "what the service does");
    if (spec.contains("change_log_size"))
      t.change_log_size = positive_int(spec["change_log_size"], pointer + "/change_log_size", "how many transaction results are kept for GET by ref");
    Json descriptions = Json::object();
    if (spec.contains("descriptions")) {
      descriptions = object_value(spec["descriptions"], pointer + "/descriptions", "{op set name: description}");
      for (const auto& [set, text] : descriptions.items())
        string_value(text, pointer + "/descriptions/" + pointer_token(set), "what the op set does");
    }

    static const std::vector<std::string> shorthand = {"table", "op_type", "key", "fields"};
    const bool has_shorthand = std::any_of(shorthand.begin(), shorthand.end(), [&](const std::string& k) { return spec.contains(k); });
    if (spec.contains("ops") && has_shorthand) {
      std::string given;
      for (const std::string& k : shorthand)
        if (given.empty() && spec.contains(k)) given = k;
      fail(pointer + "/" + given, "'" + given + "' belongs to the one-op shorthand, but the service also has 'ops'; move it into the ops or drop 'ops'");
    }
    if (!spec.contains("ops") && !has_shorthand)
      fail(pointer, "the transaction service has no ops; add ops = [...] (or named op sets ops.NAME = [...]), or the shorthand table = \"...\" with op_type = \"insert\"");

    if (!spec.contains("ops")) {
      // The one-op shorthand: the op's keys sit on the service itself.
      OpSet set;
      set.item = t.name;
      set.description = t.description;
      Json op = Json::object();
      for (const char* k : {"table", "op_type", "key", "fields", "defaults"})
        if (spec.contains(k)) op[k] = spec[k];
      std::vector<Op> none;
      set.ops.push_back(parse_op(op, pointer, 0, none, /*check_keys=*/false));
      check_descriptions(descriptions, pointer, {"default"});
      if (descriptions.contains("default")) set.description = descriptions["default"].get<std::string>();
      claim_item(set.item, pointer, "service '" + name + "'");
      t.op_sets.push_back(std::move(set));
    } else {
      if (spec.contains("defaults")) config_.ignored.push_back(pointer + "/defaults (set op defaults in each op)");
      const Json& ops = spec["ops"];
      const std::string at = pointer + "/ops";
      if (ops.is_array()) {
        OpSet set;
        set.item = t.name;
        set.description = t.description;
        set.ops = op_list(ops, at);
        check_descriptions(descriptions, pointer, {"default"});
        if (descriptions.contains("default")) set.description = descriptions["default"].get<std::string>();
        claim_item(set.item, pointer, "service '" + name + "'");
        t.op_sets.push_back(std::move(set));
      } else if (ops.is_object()) {
        if (ops.empty()) fail(at, "no op sets; add at least one, e.g. ops.new = [{table = \"...\", op_type = \"insert\", fields = [...]}]");
        std::vector<std::string> set_names;
        for (const auto& [set_name, list] : ops.items()) {
          const std::string set_at = at + "/" + pointer_token(set_name);
          check_item_name(set_name, set_at, "op set");
          OpSet set;
          set.name = set_name;
          set.item = t.name + "_" + ascii_lower(set_name);
          set.description = descriptions.contains(set_name) ? descriptions[set_name].get<std::string>() : t.description;
          if (!list.is_array())
            fail(set_at, "expected an array of ops [{table, op_type, ...}, ...] for op set '" + set_name + "', got " + type_of(list));
          set.ops = op_list(list, set_at);
          claim_item(set.item, set_at, "op set '" + set_name + "' of service '" + name + "'");
          set_names.push_back(set_name);
          t.op_sets.push_back(std::move(set));
        }
        check_descriptions(descriptions, pointer, set_names);
      } else {
        fail(at, "expected an array of ops, or an object of named op sets {name: [ops]}, got " + type_of(ops));
      }
    }
    config_.transactions.push_back(std::move(t));
  }

  void check_descriptions(const Json& descriptions, const std::string& pointer, const std::vector<std::string>& sets) const {
    for (const auto& [set, text] : descriptions.items())
      if (!contains(sets, set))
        fail(pointer + "/descriptions/" + pointer_token(set),
             "no op set '" + set + "' to describe" + suggestion(set, sets) + " (op sets: " + joined(sets) + ")");
  }

  std::vector<Op> op_list(const Json& list, const std::string& pointer) {
    if (list.empty()) fail(pointer, "no ops; add at least one {table = \"...\", op_type = \"insert\", fields = [...]}");
    std::vector<Op> ops;
    for (std::size_t i = 0; i < list.size(); ++i) ops.push_back(parse_op(list[i], pointer + "/" + std::to_string(i), static_cast<int>(i), ops, true));
    return ops;
  }

  Op parse_op(const Json& spec, const std::string& pointer, int index, const std::vector<Op>& earlier, bool check_keys) {
    object_value(spec, pointer, "one op: {table, op_type, key, fields, defaults, bind}");
    if (check_keys)
      for (const auto& [key, value] : spec.items())
        if (!contains(kOpKeys, key)) unknown_key(key, pointer + "/" + pointer_token(key), kOpKeys, "an op");
    if (!spec.contains("table")) fail(pointer, "the op has no 'table'; add table = \"...\" (the table it writes)");
    if (!spec.contains("op_type")) fail(pointer, "the op has no 'op_type'; add op_type = \"insert\", \"update\", \"delete\" or \"upsert\"");
    Op op;
    const Table& table = known_table(spec["table"], pointer + "/table", "the table the op writes");
    op.table = table.name;
    const std::string& type = string_value(spec["op_type"], pointer + "/op_type", "insert, update, delete or upsert");
    if (type == "insert") op.type = OpType::insert;
    else if (type == "update") op.type = OpType::update;
    else if (type == "delete") op.type = OpType::delete_;
    else if (type == "upsert") op.type = OpType::upsert;
    else fail(pointer + "/op_type", "unknown op_type '" + type + "'" + suggestion(type, kOpTypes) + " (op types: insert, update, delete, upsert)");

    auto writable = [&](const std::string& column, const std::string& at, const char* role) {
      const Column& c = known_column(table, column, at, role);
      if (c.generated) fail(at, std::string(role) + " '" + column + "' is a generated column of table '" + table.name + "'; SQLite computes it, so it cannot be written");
    };

    if (spec.contains("key")) {
      op.key = string_list(spec["key"], pointer + "/key", "the columns that pick the row");
      for (std::size_t i = 0; i < op.key.size(); ++i) known_column(table, op.key[i], pointer + "/key/" + std::to_string(i), "key");
    }
    if (spec.contains("fields")) {
      op.fields = string_list(spec["fields"], pointer + "/fields", "the columns the client supplies");
      for (std::size_t i = 0; i < op.fields.size(); ++i) writable(op.fields[i], pointer + "/fields/" + std::to_string(i), "field");
    }
    if (spec.contains("defaults")) {
      const std::string at = pointer + "/defaults";
      object_value(spec["defaults"], at, "{column: value used when the client does not give it}");
      for (const auto& [column, value] : spec["defaults"].items()) {
        const std::string col_at = at + "/" + pointer_token(column);
        writable(column, col_at, "defaults column");
        if (value.is_array() || value.is_object())
          fail(col_at, "expected a string, number, boolean or null (the column's value), got " + type_of(value));
      }
      op.defaults = spec["defaults"];
    }
    if (spec.contains("bind")) {
      const std::string at = pointer + "/bind";
      object_value(spec["bind"], at, "{column: \"$N.field\"} taking a field of an earlier op's RETURNING row");
      for (const auto& [column, ref] : spec["bind"].items()) {
        const std::string col_at = at + "/" + pointer_token(column);
        writable(column, col_at, "bind column");
        op.bind.push_back(parse_bind(column, ref, col_at, index, earlier));
      }
    }

    if (op.type == OpType::insert) {
      if (!op.key.empty()) config_.ignored.push_back(pointer + "/key (an insert matches no row)");
      op.key.clear();
    } else if (op.key.empty()) {
      if (table.primary_key.empty())
        fail(pointer, "op_type '" + type + "' needs 'key' (the columns that pick the row) and table '" + table.name +
                          "' has no primary key to default to; add key = [\"...\"]");
      op.key = table.primary_key;
    }
    if (op.type == OpType::delete_) {
      if (!op.fields.empty()) config_.ignored.push_back(pointer + "/fields (a delete writes no column)");
      if (!op.defaults.empty()) config_.ignored.push_back(pointer + "/defaults (a delete writes no column)");
      op.fields.clear();
      op.defaults = Json::object();
    }
    if (op.type == OpType::upsert) {
      std::vector<std::string> key = op.key, primary = table.primary_key;
      std::sort(key.begin(), key.end());
      std::sort(primary.begin(), primary.end());
      const bool unique_column = key.size() == 1 && table.column(key.front())->unique;
      if (key != primary && !unique_column)
        fail(pointer + (spec.contains("key") ? "/key" : ""),
             "an upsert's key must be the table's primary key (" + joined(table.primary_key) +
                 ") or one UNIQUE column, so that SQLite can find the conflicting row; got " + joined(op.key));
    }

    if (op.type != OpType::delete_) {
      if (op.type == OpType::upsert) op.columns = op.key;  // its INSERT needs the key
      for (const std::string& f : op.fields) add_unique(op.columns, f);
      for (const Bind& b : op.bind) add_unique(op.columns, b.column);
      for (const auto& [column, value] : op.defaults.items()) add_unique(op.columns, column);
    }
    if (op.type == OpType::insert || op.type == OpType::upsert) {
      // A NOT NULL column nobody fills makes every transaction fail: say so now.
      for (const Column& c : table.columns)
        if (c.not_null && !c.default_sql && !c.autoincrement && !c.generated && !contains(op.columns, c.name) &&
            !contains(op.key, c.name))
          fail(pointer, "the " + type + " into '" + table.name + "' never sets column '" + c.name +
                            "', which is NOT NULL without a DEFAULT; add it to fields, defaults or bind");
    }
    return op;
  }

  Bind parse_bind(const std::string& column, const Json& ref, const std::string& pointer, int index, const std::vector<Op>& earlier) const {
    if (!ref.is_string()) fail(pointer, "expected a reference \"$N.field\" (field of op N's RETURNING row), got " + shown(ref));
    const std::string& text = ref.get_ref<const std::string&>();
    const auto dot = text.find('.');
    const bool digits = dot != std::string::npos && dot > 1 &&
                        std::all_of(text.begin() + 1, text.begin() + static_cast<std::ptrdiff_t>(dot), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (text.empty() || text.front() != '$' || !digits || dot + 1 >= text.size() || dot > 6)
      fail(pointer, "malformed bind reference '" + text + "'; write \"$N.field\": N the index of an earlier op (from 0), field a column of its RETURNING row, e.g. \"$0.id\"");
    Bind b;
    b.column = column;
    b.op = std::stoi(text.substr(1, dot - 1));
    b.field = text.substr(dot + 1);
    if (b.op >= index)
      fail(pointer, "bind reference '" + text + "' names op " + std::to_string(b.op) + ", but op " + std::to_string(index) +
                        (index == 0 ? " is the first op and has no earlier one to bind to" : " can only bind to earlier ops (0 to " + std::to_string(index - 1) + ")") +
                        "; reorder the ops or fix the index");
    const Table* from = config_.table(earlier[static_cast<std::size_t>(b.op)].table);
    if (!from->column(b.field))
      fail(pointer, "bind reference '" + text + "': op " + std::to_string(b.op) + " writes table '" + from->name +
                        "', which has no column '" + b.field + "'" + suggestion(b.field, column_names(*from)) +
                        " (columns: " + joined(column_names(*from)) + ")");
    return b;
  }

  // ---- subpub, stream, query ----------------------------------------------

  void parse_collection(const std::string& name, const std::string& type, const Json& spec, const std::string& pointer) {
    ignore_underscored(spec, pointer);
    Collection c;
    c.name = ascii_lower(name);
    c.kind = type == "subpub" ? Kind::keyed : type == "stream" ? Kind::stream : Kind::table;
    c.change_log_size = default_change_log_;
    if (spec.contains("description")) c.description = string_value(spec["description"], pointer + "/description", "what the service serves");
    if (!spec.contains("primary_table"))
      fail(pointer, "the " + type + " service has no 'primary_table'; add primary_table = \"...\" (the table whose rows it serves; with `sql`, the table whose changes it follows)");
    const Table& primary = known_table(spec["primary_table"], pointer + "/primary_table", "the table the service serves");
    c.primary_table = primary.name;

    if (spec.contains("watch_tables")) {
      const std::string at = pointer + "/watch_tables";
      c.watch_tables = string_list(spec["watch_tables"], at, "the tables whose changes the service follows");
      if (c.watch_tables.empty()) fail(at, "expected at least one table; leave watch_tables out to follow primary_table only");
      for (std::size_t i = 0; i < c.watch_tables.size(); ++i) known_table(Json(c.watch_tables[i]), at + "/" + std::to_string(i), "a watched table");
    } else {
      c.watch_tables = {c.primary_table};
    }
    if (spec.contains("sql")) {
      c.sql = string_value(spec["sql"], pointer + "/sql", "the SELECT giving the service's rows");
      if (c.sql.find_first_not_of(" \t\r\n") == std::string::npos) fail(pointer + "/sql", "the SELECT is empty; leave sql out for SELECT * FROM " + c.primary_table);
      c.custom_sql = true;
    } else {
      c.sql = "SELECT * FROM " + c.primary_table;
    }
    // What a row holds, when the config alone tells: the primary table's columns.
    const std::vector<std::string> row_columns = c.custom_sql ? std::vector<std::string>{} : column_names(primary);

    if (c.kind == Kind::keyed) {
      std::string topic, key;
      if (spec.contains("topic")) topic = string_value(spec["topic"], pointer + "/topic", "the key column (mkio's name for 'key')");
      if (spec.contains("key")) key = string_value(spec["key"], pointer + "/key", "the key column");
      if (spec.contains("topic") && spec.contains("key") && topic != key)
        fail(pointer + "/key", "key '" + key + "' and topic '" + topic + "' disagree; 'topic' is mkio's name for 'key': keep one");
      c.key = key.empty() ? topic : key;
      const std::string key_at = pointer + (spec.contains("key") ? "/key" : "/topic");
      if (c.key.empty() && !spec.contains("key") && !spec.contains("topic"))
        fail(pointer, "the subpub service has no 'key' (mkio: 'topic'); add key = \"...\", the column whose value names a row");
      if (c.key.empty()) fail(key_at, "the key column name is empty");
      if (!c.custom_sql) known_column(primary, c.key, key_at, "key");
    }
    if (spec.contains("where")) {
      const std::string at = pointer + "/where";
      c.where = string_value(spec["where"], at, "an expression rows must pass, e.g. \"status == 'filled'\"");
      check_expression(c.where, at, row_columns, primary.name);
    }
    if (spec.contains("publish")) {
      const std::string at = pointer + "/publish";
      object_value(spec["publish"], at, "{output field: expression}");
      if (spec["publish"].empty()) fail(at, "no output fields; leave publish out to publish rows as they are");
      for (const auto& [field, text] : spec["publish"].items()) {
        const std::string field_at = at + "/" + pointer_token(field);
        const std::string& expr = string_value(text, field_at, "an expression giving the field's value, e.g. \"UPPER(symbol)\"");
        check_expression(expr, field_at, row_columns, primary.name);
        c.publish.emplace_back(field, expr);
      }
    }
    if (spec.contains("defaults")) {
      // mkio's row for a key that does not exist (yet): field -> expression.
      const std::string at = pointer + "/defaults";
      object_value(spec["defaults"], at, "{output field: expression for a key with no row}");
      std::vector<std::string> outputs;
      if (!c.publish.empty())
        for (const auto& [field, expr] : c.publish) outputs.push_back(field);
      else
        outputs = row_columns;
      for (const auto& [field, value] : spec["defaults"].items()) {
        const std::string field_at = at + "/" + pointer_token(field);
        std::string text;
        if (value.is_string()) text = value.get<std::string>();
        else if (value.is_boolean()) text = value.get<bool>() ? "TRUE" : "FALSE";
        else if (value.is_null()) text = "NULL";
        else if (value.is_number()) text = value.dump();
        else fail(field_at, "expected an expression (a string such as \"0\" or \"''\"), got " + type_of(value));
        if (!outputs.empty() && !contains(outputs, field))
          fail(field_at, "defaults field '" + field + "' is not an output field" + suggestion(field, outputs) + " (output fields: " + joined(outputs) + ")");
        check_expression(text, field_at, {}, primary.name);
        c.defaults[field] = text;
      }
    }
    if (spec.contains("filterable")) {
      const std::string at = pointer + "/filterable";
      c.filterable = string_list(spec["filterable"], at, "the fields a client may filter on");
      if (!c.custom_sql) {
        std::vector<std::string> known;
        for (const std::string& t : c.watch_tables)
          for (const Column& col : config_.table(t)->columns) add_unique(known, col.name);
        for (const auto& [field, expr] : c.publish) add_unique(known, field);
        for (std::size_t i = 0; i < c.filterable.size(); ++i)
          if (!contains(known, c.filterable[i]))
            fail(at + "/" + std::to_string(i), "filterable field '" + c.filterable[i] + "' is not a column of " +
                                                    joined(c.watch_tables) + " nor a publish field" +
                                                    suggestion(c.filterable[i], known) + " (fields: " + joined(known) + ")");
      }
    }
    if (spec.contains("buffer_size")) c.buffer_size = positive_int(spec["buffer_size"], pointer + "/buffer_size", "how many rows the stream keeps in memory");
    if (spec.contains("change_log_size"))
      c.change_log_size = positive_int(spec["change_log_size"], pointer + "/change_log_size", "how many changes are kept for catch-up");
    claim_item(c.name, pointer, "service '" + name + "'");
    config_.collections.push_back(std::move(c));
  }

  // Parses TEXT (so a syntax error stops the config) and, when the row's
  // columns are known, checks the fields it reads. Fields starting with '_'
  // are the framework's (mkio's _mkio_ref, _mkio_topic, ...).
  void check_expression(const std::string& text, const std::string& pointer, const std::vector<std::string>& columns,
                  const std::string& table) const {
    try {
      const Expression e = Expression::parse(text, functions_);
      if (columns.empty()) return;
      for (const std::string& field : e.fields())
        if (!field.empty() && field.front() != '_' && !contains(columns, field))
          fail(pointer, "the expression \"" + text + "\" reads field '" + field + "', which is not a column of table '" + table +
                            "'" + suggestion(field, columns) + " (columns: " + joined(columns) + ")");
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      fail(pointer, "invalid expression \"" + text + "\": " + e.text() + "; " + kExpressionHelp);
    }
  }

  void resolve_db_path() {
    namespace fs = std::filesystem;
    if (config_.db_path.empty() || config_.db_path == ":memory:") return;
    const fs::path path(config_.db_path);
    const fs::path directory = fs::path(source_).parent_path();
    if (path.is_relative() && !directory.empty()) config_.db_path = (directory / path).lexically_normal().string();
  }

  const Json& document_;
  const std::string& source_;
  const ExpressionFunctions& functions_;
  const detail::LineMap* lines_;
  mutable bool lazy_tried_ = false;
  mutable std::optional<detail::LineMap> lazy_lines_;
  Config config_;
  int default_change_log_ = 10000;
  std::map<std::string, std::string> items_;  // item key -> what owns it
};

}  // namespace

Config parse(const Json& document, const std::string& source, const ExpressionFunctions& functions) {
  return Parser(document, source, functions, nullptr).run();
}

Config load(const std::string& path, const ExpressionFunctions& functions) {
  if (!detail::is_toml_path(path)) return parse(load_json_file(path), path, functions);
  detail::LineMap lines;
  const Json document = detail::toml_to_json(detail::read_text_file(path), path, &lines);
  return Parser(document, path, functions, &lines).run();
}

Json toml_to_json(const std::string& text, const std::string& source) { return detail::toml_to_json(text, source, nullptr); }

Json describe(const Config& config, const Transaction& service, const OpSet& set) {
  (void)service;
  Json fields = Json::object();
  std::vector<std::string> automatic;
  Json ops = Json::array();
  for (const Op& op : set.ops) {
    const Table& table = *config.table(op.table);
    std::vector<std::string> bound;
    for (const Bind& b : op.bind) bound.push_back(b.column);

    // What the client may send for this op: its fields, its key (except for
    // an insert) and the columns it has defaults for, minus bound columns.
    std::vector<std::string> client;
    for (const std::string& c : op.fields) add_unique(client, c);
    for (const std::string& c : op.key) add_unique(client, c);
    for (const auto& [c, value] : op.defaults.items()) add_unique(client, c);
    std::erase_if(client, [&](const std::string& c) { return contains(bound, c); });

    for (const std::string& name : client) {
      const Column& column = *table.column(name);
      const bool is_key = contains(op.key, name);
      const bool has_default = op.defaults.contains(name) || column.default_sql.has_value();
      const bool required = is_key || (!has_default && !column.autoincrement &&
                                       (column.not_null || column.primary_key));
      Json& info = fields[name];
      if (info.is_null()) {
        info = Json::object();
        info["type"] = column.type;
        info["required"] = required;
      } else if (required) {
        info["required"] = true;
      }
      if (is_key) info["key"] = true;
      // SQLite applies a column's DEFAULT to an INSERT that leaves it out, never to an UPDATE.
      const bool inserts = op.type == OpType::insert || op.type == OpType::upsert;
      if (!is_key && !info.contains("default") && !info.contains("default_sql")) {
        if (op.defaults.contains(name)) {
          info["default"] = op.defaults[name];
        } else if (column.default_sql && inserts) {
          if (auto value = detail::sql_literal(*column.default_sql)) info["default"] = *value;
          else info["default_sql"] = *column.default_sql;
        }
      }
    }

    // Filled without the client: binds always; for an insert or upsert also
    // the rowid, DEFAULT and generated columns it does not write.
    std::vector<std::string> op_auto = bound;
    if (op.type == OpType::insert || op.type == OpType::upsert)
      for (const Column& c : table.columns)
        if (!contains(op.columns, c.name) && !contains(op.key, c.name) && (c.autoincrement || c.default_sql || c.generated))
          add_unique(op_auto, c.name);
    for (const std::string& c : op_auto) add_unique(automatic, c);

    Json step = {{"table", op.table}, {"op", op_type_name(op.type)}};
    if (op.type != OpType::insert) step["key"] = op.key;
    if (!op.bind.empty()) {
      Json binds = Json::object();
      for (const Bind& b : op.bind) binds[b.column] = "$" + std::to_string(b.op) + "." + b.field;
      step["bind"] = binds;
    }
    if (!op_auto.empty()) step["auto"] = op_auto;
    ops.push_back(std::move(step));
  }
  std::erase_if(automatic, [&](const std::string& c) { return fields.contains(c); });

  Json out = Json::object();
  out["type"] = "record";
  out["settable"] = true;
  out["description"] = set.description;
  out["fields"] = std::move(fields);
  out["auto"] = automatic;
  out["ops"] = std::move(ops);
  return out;
}

Json describe(const Config& config, const Collection& collection) {
  const Table& primary = *config.table(collection.primary_table);
  Json c = Json::object();
  c["kind"] = kind_name(collection.kind);
  c["primary_table"] = collection.primary_table;
  if (collection.kind == Kind::keyed) c["key"] = collection.key;
  c["primary_key"] = primary.primary_key;
  if (!collection.publish.empty()) {
    Json columns = Json::object();
    for (const auto& [field, expr] : collection.publish) {
      Json info = Json::object();
      // A field that only copies a column has that column's type.
      const auto first = expr.find_first_not_of(" \t");
      const auto last = expr.find_last_not_of(" \t");
      const std::string bare = first == std::string::npos ? "" : expr.substr(first, last - first + 1);
      if (!collection.custom_sql)
        if (const Column* column = primary.column(bare)) info["type"] = column->type;
      columns[field] = std::move(info);
    }
    c["columns"] = std::move(columns);
  } else if (!collection.custom_sql) {
    Json columns = Json::object();
    for (const Column& column : primary.columns) columns[column.name] = {{"type", column.type}};
    c["columns"] = std::move(columns);
  }
  if (!collection.filterable.empty()) c["filterable"] = collection.filterable;
  if (collection.kind == Kind::stream) c["buffer_size"] = collection.buffer_size;
  else c["change_log_size"] = collection.change_log_size;

  Json out = Json::object();
  out["type"] = "collection";
  out["settable"] = false;
  out["description"] = collection.description;
  out["collection"] = std::move(c);
  return out;
}

}  // namespace mktl::collections
