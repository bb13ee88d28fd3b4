// The collections configuration: mkio-shaped `tables` and `services`, read
// from a daemon's JSON config or an mkio TOML file, checked, and normalised
// into the structures below (see ../shared/design/COLLECTIONS.md).
//
// Every problem is a mktl::ConfigError naming the file, the place (a JSON
// pointer such as /services/orders/ops/new/0/table, with the TOML line where
// the file was TOML) and the fix; an unknown key suggests the likely intended
// one. Pure: no I/O beyond reading the file, no SQLite; thread-safe.
#pragma once

#include <mktl/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mktl::collections {

struct Column {
  std::string name;
  std::string decl;  // the SQL type and constraints as configured: "INTEGER PRIMARY KEY AUTOINCREMENT"
  // Derived from decl (case-insensitive): its SQL type word(s) ("INTEGER", "TEXT", "" if none).
  std::string type;
  bool primary_key = false;    // PRIMARY KEY in decl
  bool autoincrement = false;  // INTEGER PRIMARY KEY (rowid alias) or AUTOINCREMENT: filled by SQLite
  bool not_null = false;       // NOT NULL in decl
  std::optional<std::string> default_sql;  // the DEFAULT clause's expression text, if any
};

struct Table {
  std::string name;
  std::vector<Column> columns;           // in configured order
  std::vector<std::string> primary_key;  // `primary_key = [...]`, else the column(s) marked PRIMARY KEY
  const Column* column(const std::string& name) const;
};

enum class OpType { insert, update, delete_, upsert };
const char* op_type_name(OpType type);

// `bind = {order_id = "$0.id"}`: column <- field of an earlier op's RETURNING row.
struct Bind {
  std::string column;
  int op = 0;         // index of the earlier op in the same op set (< this op's index)
  std::string field;  // column of that op's RETURNING row
};

struct Op {
  std::string table;
  OpType type = OpType::insert;
  std::vector<std::string> key;     // match columns (update, delete, upsert); default: the table's primary key
  std::vector<std::string> fields;  // client-supplied columns; empty = every column not filled automatically
  Json defaults = Json::object();   // column -> constant value, overridden by client data
  std::vector<Bind> bind;           // overrides client data and defaults
};

// One record item: a transaction service's unnamed op set (item S) or one
// named op set (item S_N).
struct OpSet {
  std::string item;         // item key: "orders" or "orders_new" (lower case)
  std::string name;         // op set name ("" for the unnamed one)
  std::string description;  // `description`, or `descriptions.<name>`
  std::vector<Op> ops;
};

struct Transaction {
  std::string name;  // service name (lower case)
  std::string description;
  std::vector<OpSet> op_sets;
  int change_log_size = 10000;
};

enum class Kind { keyed, stream, table };  // subpub, stream, query
const char* kind_name(Kind kind);

struct Collection {
  std::string name;  // service name = item key (lower case)
  Kind kind = Kind::table;
  std::string description;
  std::string primary_table;
  std::vector<std::string> watch_tables;  // default: {primary_table}
  std::string sql;                        // default: SELECT * FROM primary_table
  std::string key;                        // keyed: the key column (mkio's `topic` or `key`)
  std::string where;                      // expression text, "" = none
  std::vector<std::pair<std::string, std::string>> publish;  // output field -> expression text, in order
  Json defaults = Json::object();         // keyed: field -> expression text
  std::vector<std::string> filterable;
  int buffer_size = 10000;                // stream
  int change_log_size = 10000;
};

struct Config {
  std::string source;  // file name, for messages
  std::string db_path;  // "" = the daemon's default ($MKTL_HOME/daemon/collections/STORE.db); relative to the file's directory
  double batch_max_wait_ms = 2.0;
  int batch_max_size = 500;
  bool auto_migrate = false;
  std::vector<Table> tables;
  std::vector<Transaction> transactions;
  std::vector<Collection> collections;
  // Keys of an mkio file that have no meaning here (host, port, static,
  // reqrep services, ...): accepted so that an mkio file loads unchanged, and
  // listed so the daemon can log what it ignores.
  std::vector<std::string> ignored;

  bool empty() const { return tables.empty() && transactions.empty() && collections.empty(); }
  const Table* table(const std::string& name) const;
};

// Checks and normalises an mkio-shaped document ({tables, services, ...}).
// `source` names the file in errors. Every expression (where, publish,
// defaults) is parsed here, so a syntax error is a config error.
Config parse(const Json& document, const std::string& source);

// Reads FILE: TOML when it ends in .toml, else JSON. The TOML is converted to
// the JSON shape, so both give the same Config. Errors name FILE.
Config load(const std::string& path);

// The same conversion parse() sees for a TOML text (for tests and --check).
Json toml_to_json(const std::string& text, const std::string& source);

// The description of a record item for the catalog: type "record",
// settable, and `fields` {column: {type, required, default}} plus `auto`
// (columns filled automatically) and `ops` (table and op of each step).
Json describe(const Config& config, const Transaction& service, const OpSet& set);
// The description of a collection item: type "collection" and its
// `collection` object (kind, key, primary key, columns with SQL types,
// filterable, buffer or log size).
Json describe(const Config& config, const Collection& collection);

}  // namespace mktl::collections
