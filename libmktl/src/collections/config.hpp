// The collections configuration: mkio-shaped `tables` and `services`, read
// from a daemon's JSON config or an mkio TOML file, checked, and normalised
// into the structures below (see ../shared/design/COLLECTIONS.md).
//
// Every problem is a mktl::ConfigError naming the file, the place (a JSON
// pointer such as /services/orders/ops/new/0/table, with the TOML line where
// the file was TOML: "line 12, /services/...") and the fix; an unknown key
// suggests the likely intended one. Pure: no I/O beyond reading the file (a
// TOML source is read again only to put a line number in an error), no
// SQLite; thread-safe.
//
// Objects in a mktl::Json are ordered by name, so columns, op sets and
// `publish` fields come out in name order whatever order the file used.
#pragma once

#include <mktl/expr.hpp>
#include <mktl/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mktl::collections {

struct Column {
  std::string name;
  std::string decl;  // the SQL type and constraints as configured: "INTEGER PRIMARY KEY AUTOINCREMENT"
  // Derived from decl (case-insensitive): its SQL type word(s), upper case,
  // with any size ("INTEGER", "VARCHAR(20)", "" if none).
  std::string type;
  bool primary_key = false;    // PRIMARY KEY in decl, or named by the table's primary_key
  bool autoincrement = false;  // INTEGER PRIMARY KEY (rowid alias) or AUTOINCREMENT: filled by SQLite
  bool not_null = false;       // NOT NULL in decl
  bool unique = false;         // UNIQUE in decl
  bool generated = false;      // GENERATED ALWAYS AS / AS (...): computed by SQLite, never written
  std::optional<std::string> default_sql;  // the DEFAULT clause's expression text, if any ("'pending'", "0")

  bool operator==(const Column&) const = default;
};

struct Table {
  std::string name;
  std::vector<Column> columns;           // in name order (see above)
  std::vector<std::string> primary_key;  // `primary_key = [...]`, else the column marked PRIMARY KEY
  const Column* column(const std::string& name) const;

  bool operator==(const Table&) const = default;
};

enum class OpType { insert, update, delete_, upsert };
const char* op_type_name(OpType type);

// `bind = {order_id = "$0.id"}`: column <- field of an earlier op's RETURNING row.
struct Bind {
  std::string column;
  int op = 0;         // index of the earlier op in the same op set (< this op's index)
  std::string field;  // column of that op's RETURNING row

  bool operator==(const Bind&) const = default;
};

struct Op {
  std::string table;
  OpType type = OpType::insert;
  std::vector<std::string> key;     // match columns (update, delete, upsert); default: the table's primary key
  std::vector<std::string> fields;  // client-supplied columns as configured (absent = none, as in mkio)
  Json defaults = Json::object();   // column -> constant value, overridden by client data
  std::vector<Bind> bind;           // overrides client data and defaults (ordered by column)
  // The columns an insert/update/upsert writes, in mkio's order: (for an
  // upsert the key first, then) `fields`, bound columns not in fields, and
  // defaulted columns in neither. Each takes its bind, else the client's
  // value, else the op default. Empty for a delete (it only matches `key`);
  // may be empty for an update (mkio then only touches its ref column).
  std::vector<std::string> columns;

  bool operator==(const Op&) const = default;
};

// One record item: a transaction service's unnamed op set (item S) or one
// named op set (item S_N).
struct OpSet {
  std::string item;         // item key: "orders" or "orders_new" (lower case)
  std::string name;         // op set name as configured ("" for the unnamed one)
  std::string description;  // `descriptions.<name>`, else the service's `description`
  std::vector<Op> ops;

  bool operator==(const OpSet&) const = default;
};

struct Transaction {
  std::string name;  // service name (lower case)
  std::string description;
  std::vector<OpSet> op_sets;
  int change_log_size = 10000;  // the service's, else the top-level change_log_size

  bool operator==(const Transaction&) const = default;
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
  bool custom_sql = false;                // `sql` was configured (rows may hold more than primary_table's columns)
  std::string key;                        // keyed: the key column (mkio's `topic` or `key`)
  std::string where;                      // expression text, "" = none
  std::vector<std::pair<std::string, std::string>> publish;  // output field -> expression text, in name order
  Json defaults = Json::object();         // keyed: field -> expression text (mkio's not-found row)
  std::vector<std::string> filterable;
  int buffer_size = 10000;                // stream
  int change_log_size = 10000;            // the service's, else the top-level change_log_size

  bool operator==(const Collection&) const = default;
};

struct Config {
  std::string source;  // file name, for messages
  // "" = the daemon's default ($MKTL_HOME/daemon/collections/STORE/ALIAS.sqlite3); a
  // relative path in the file is made relative to the file's directory here.
  std::string db_path;
  double batch_max_wait_ms = 2.0;
  int batch_max_size = 500;
  bool auto_migrate = false;
  // The collections' change bus: changes queued between the writer and the
  // collections thread; past it every collection resets (see live.hpp).
  int change_bus_size = 100000;
  std::vector<Table> tables;
  std::vector<Transaction> transactions;
  std::vector<Collection> collections;
  // Places (JSON pointers) in an mkio file that have no meaning here (host,
  // port, static, reqrep services, ...): accepted so that an mkio file loads
  // unchanged, and listed so the daemon can log what it ignores. A whole
  // ignored service reads "/services/NAME (reqrep service)".
  std::vector<std::string> ignored;

  bool empty() const { return tables.empty() && transactions.empty() && collections.empty(); }
  const Table* table(const std::string& name) const;

  bool operator==(const Config&) const = default;
};

// Checks and normalises an mkio-shaped document ({tables, services, ...}).
// `source` names the file in errors. Every expression (where, publish,
// defaults) is parsed here with `functions`, so a syntax error or an unknown
// function is a config error.
Config parse(const Json& document, const std::string& source,
             const ExpressionFunctions& functions = ExpressionFunctions());

// Reads FILE: TOML when it ends in .toml, else JSON. The TOML is converted to
// the JSON shape, so both give the same Config. Errors name FILE.
Config load(const std::string& path, const ExpressionFunctions& functions = ExpressionFunctions());

// The same conversion parse() sees for a TOML text (for tests and --check):
// tables become objects, arrays arrays, integers stay integers, floats
// floats, dates and times their TOML text. A syntax error is a ConfigError
// naming `source`, the line and the column.
Json toml_to_json(const std::string& text, const std::string& source);

// The description of a record item for the catalog: type "record",
// settable, `fields` {column: {type, required, default | default_sql, key}}
// (what the client may send), `auto` (columns filled without the client) and
// `ops` ({table, op, key, bind, auto} of each step).
Json describe(const Config& config, const Transaction& service, const OpSet& set);
// The description of a collection item: type "collection" and its
// `collection` object (kind, primary_table, key, primary_key, columns with
// SQL types where known, filterable, buffer_size or change_log_size).
Json describe(const Config& config, const Collection& collection);

}  // namespace mktl::collections
