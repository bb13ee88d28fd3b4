// The collections configuration (collections/config.hpp): mkio TOML and JSON
// giving the same Config, an mkio file loading unchanged, item descriptions,
// and one case per class of config error, each checked for the file, the
// place and the fix.
#include <catch2/catch.hpp>

#include <mktl/catalog.hpp>
#include <mktl/config_file.hpp>
#include <mktl/error.hpp>
#include <mktl/expr.hpp>

#include "collections/column.hpp"
#include "collections/config.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_collections_config {

using mktl::Json;
namespace col = mktl::collections;
namespace fs = std::filesystem;

namespace {

const std::string kConfigs = (fs::path(__FILE__).parent_path().parent_path().parent_path() / "configs").string();

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("mktl-collections-" + std::to_string(::getpid()) + "-" + mktl::random_uuid());
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const auto file = path / name;
    std::ofstream(file) << text;
    return file.string();
  }
};

// Tables most cases use: orders (rowid key, NOT NULL columns, defaults) and
// audit (no primary key).
const char* kTables = R"(
[tables.orders]
columns = { id = "INTEGER PRIMARY KEY AUTOINCREMENT", symbol = "TEXT NOT NULL", qty = "INTEGER", price = "REAL DEFAULT 0", status = "TEXT DEFAULT 'pending'" }

[tables.audit]
columns = { event = "TEXT", order_id = "INTEGER", status = "TEXT" }
)";

// The ConfigError text for a TOML document (`services`, then kTables: TOML
// keys after a [table] header belong to it) loaded from a file named bad.toml.
std::string toml_error(const std::string& services, bool with_tables = true) {
  TempDir dir;
  const std::string path = dir.write("bad.toml", services + (with_tables ? kTables : ""));
  try {
    col::load(path);
  } catch (const mktl::ConfigError& e) {
    std::string text = e.what();
    // Name the file by its base name so that cases read simply.
    const auto at = text.find(path);
    if (at != std::string::npos) text.replace(at, path.size(), "bad.toml");
    return text;
  }
  return "no error";
}

// The ConfigError text for a JSON document parsed as coming from bad.json.
std::string json_error(const std::string& document) {
  try {
    col::parse(Json::parse(document), "bad.json");
  } catch (const mktl::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

const col::OpSet& op_set(const col::Config& config, const std::string& item) {
  for (const auto& t : config.transactions)
    for (const auto& s : t.op_sets)
      if (s.item == item) return s;
  FAIL("no op set " << item);
  throw;
}

const col::Transaction& transaction_of(const col::Config& config, const std::string& item) {
  for (const auto& t : config.transactions)
    for (const auto& s : t.op_sets)
      if (s.item == item) return t;
  FAIL("no op set " << item);
  throw;
}

const col::Collection& collection(const col::Config& config, const std::string& name) {
  for (const auto& c : config.collections)
    if (c.name == name) return c;
  FAIL("no collection " << name);
  throw;
}

// Every item's description, by item key.
Json describe_all(const col::Config& config) {
  Json out = Json::object();
  for (const auto& t : config.transactions)
    for (const auto& s : t.op_sets) out[s.item] = col::describe(config, t, s);
  for (const auto& c : config.collections) out[c.name] = col::describe(config, c);
  return out;
}

}  // namespace

TEST_CASE("collections: the order book in TOML and in JSON gives the same Config and descriptions", "[collections]") {
  col::Config from_toml = col::load(kConfigs + "/orders.toml");
  col::Config from_json = col::load(kConfigs + "/orders.json");
  CHECK(from_toml.source == kConfigs + "/orders.toml");
  CHECK(from_json.source == kConfigs + "/orders.json");
  from_json.source = from_toml.source;
  CHECK(from_toml == from_json);
  CHECK(describe_all(from_toml) == describe_all(from_json));
  // And the TOML converted by hand is the JSON twin, value for value
  // (integers stay integers: 8090, 5000; floats floats: 1.5).
  Json converted = mktl::load_config_file(kConfigs + "/orders.toml");
  Json twin = mktl::load_json_file(kConfigs + "/orders.json");
  CHECK(converted["port"].is_number_integer());
  CHECK(converted["batch_max_wait_ms"].is_number_float());
  // The twin spells type/key as mktl does, the TOML protocol/topic as mkio does.
  converted["services"]["book"].erase("protocol");
  converted["services"]["book"]["type"] = "transaction";
  for (const char* s : {"last_fill", "fill_feed", "open_orders", "order_count"}) {
    converted["services"][s]["type"] = converted["services"][s]["protocol"];
    converted["services"][s].erase("protocol");
  }
  converted["services"]["last_fill"]["key"] = converted["services"]["last_fill"]["topic"];
  converted["services"]["last_fill"].erase("topic");
  CHECK(converted == twin);
}

TEST_CASE("collections: an mkio order book file loads unchanged", "[collections]") {
  const col::Config config = col::load(kConfigs + "/orders.toml");
  CHECK(config.db_path == kConfigs + "/orders.db");  // relative to the file
  CHECK(config.batch_max_wait_ms == 1.5);
  CHECK(config.batch_max_size == 500);
  CHECK_FALSE(config.auto_migrate);
  CHECK(config.ignored == std::vector<std::string>{"/host", "/port", "/services/order_count (reqrep service)", "/static"});

  REQUIRE(config.tables.size() == 2);
  const col::Table& orders = *config.table("orders");
  CHECK(orders.primary_key == std::vector<std::string>{"id"});
  CHECK(orders.column("id")->autoincrement);  // PRIMARY KEY(id) on an INTEGER: the rowid
  CHECK(orders.column("side")->type == "TEXT");
  CHECK(orders.column("side")->not_null);
  CHECK(orders.column("state")->default_sql == std::optional<std::string>("'open'"));
  CHECK(orders.column("created")->default_sql == std::optional<std::string>("CURRENT_TIMESTAMP"));
  const col::Table& fills = *config.table("fills");
  CHECK(fills.primary_key == std::vector<std::string>{"fill_id"});
  CHECK(fills.column("fill_id")->autoincrement);

  REQUIRE(config.transactions.size() == 1);
  const col::Transaction& book = config.transactions[0];
  CHECK(book.name == "book");
  CHECK(book.change_log_size == 5000);  // the top-level default
  std::vector<std::string> items;
  for (const auto& s : book.op_sets) items.push_back(s.item);
  CHECK(items == std::vector<std::string>{"book_accept", "book_cancel", "book_fill", "book_new"});
  CHECK(op_set(config, "book_new").description == "Enter an order; the reply carries its id");
  CHECK(op_set(config, "book_accept").description == "Order entry");

  const col::OpSet& fill = op_set(config, "book_fill");
  CHECK(fill.name == "fill");
  REQUIRE(fill.ops.size() == 2);
  CHECK(fill.ops[0].type == col::OpType::update);
  CHECK(fill.ops[0].key == std::vector<std::string>{"id"});
  CHECK(fill.ops[0].columns == std::vector<std::string>{"filled_qty", "state"});
  CHECK(fill.ops[1].table == "fills");
  CHECK(fill.ops[1].bind == std::vector<col::Bind>{{"order_id", 0, "id"}, {"state", 0, "state"}});
  CHECK(fill.ops[1].columns == std::vector<std::string>{"qty", "price", "venue", "order_id", "state"});
  // cancel names no key: the table's primary key.
  CHECK(op_set(config, "book_cancel").ops[0].key == std::vector<std::string>{"id"});

  REQUIRE(config.collections.size() == 3);
  const col::Collection& last = collection(config, "last_fill");
  CHECK(last.kind == col::Kind::keyed);
  CHECK(last.key == "order_id");
  CHECK(last.where == "qty > 0");
  CHECK(last.sql == "SELECT * FROM fills");
  CHECK_FALSE(last.custom_sql);
  CHECK(last.publish == std::vector<std::pair<std::string, std::string>>{
                            {"notional", "ROUND(qty * price, 2)"}, {"order_id", "order_id"}, {"qty", "qty"}});
  CHECK(last.defaults == Json{{"notional", "0"}, {"qty", "0"}});
  CHECK(last.change_log_size == 5000);
  const col::Collection& feed = collection(config, "fill_feed");
  CHECK(feed.kind == col::Kind::stream);
  CHECK(feed.buffer_size == 1000);
  CHECK(feed.watch_tables == std::vector<std::string>{"fills"});
  const col::Collection& book_view = collection(config, "open_orders");
  CHECK(book_view.kind == col::Kind::table);
  CHECK(book_view.watch_tables == std::vector<std::string>{"orders", "fills"});
  CHECK(book_view.filterable == std::vector<std::string>{"symbol", "trader", "state"});
  CHECK(book_view.change_log_size == 20000);
}

TEST_CASE("collections: record item descriptions say what the client sends and what is filled", "[collections]") {
  const col::Config config = col::load(kConfigs + "/orders.toml");
  const Json entry = col::describe(config, transaction_of(config, "book_new"), op_set(config, "book_new"));
  CHECK(entry["type"] == "record");
  CHECK(entry["settable"] == true);
  CHECK(entry["description"] == "Enter an order; the reply carries its id");
  CHECK(entry["fields"] == Json::parse(R"({
    "trader": {"type": "TEXT", "required": true},
    "symbol": {"type": "TEXT", "required": true},
    "side": {"type": "TEXT", "required": true},
    "qty": {"type": "INTEGER", "required": true},
    "limit_price": {"type": "REAL", "required": false}
  })"));
  CHECK(entry["auto"] == Json::parse(R"(["created", "filled_qty", "id", "state"])"));  // columns in name order
  CHECK(entry["ops"] == Json::parse(R"([{"table": "orders", "op": "insert", "auto": ["created", "filled_qty", "id", "state"]}])"));

  const Json fill = col::describe(config, transaction_of(config, "book_fill"), op_set(config, "book_fill"));
  CHECK(fill["fields"] == Json::parse(R"({
    "id": {"type": "INTEGER", "required": true, "key": true},
    "filled_qty": {"type": "INTEGER", "required": false},
    "state": {"type": "TEXT", "required": false, "default": "filled"},
    "qty": {"type": "INTEGER", "required": true},
    "price": {"type": "REAL", "required": true},
    "venue": {"type": "TEXT", "required": false, "default": "internal"}
  })"));
  // state is a field (op 0) as well as bound (op 1): only order_id and the rowid are automatic.
  CHECK(fill["auto"] == Json::parse(R"(["order_id", "fill_id"])"));
  CHECK(fill["ops"] == Json::parse(R"([
    {"table": "orders", "op": "update", "key": ["id"]},
    {"table": "fills", "op": "insert", "bind": {"order_id": "$0.id", "state": "$0.state"},
     "auto": ["order_id", "state", "fill_id"]}])"));
}

TEST_CASE("collections: collection item descriptions", "[collections]") {
  const col::Config config = col::load(kConfigs + "/orders.toml");
  CHECK(col::describe(config, collection(config, "last_fill")) == Json::parse(R"({
    "type": "collection", "settable": false, "description": "",
    "collection": {"kind": "keyed", "primary_table": "fills", "key": "order_id", "primary_key": ["fill_id"],
                   "columns": {"order_id": {"type": "INTEGER"}, "qty": {"type": "INTEGER"}, "notional": {}},
                   "change_log_size": 5000}})"));
  const Json feed = col::describe(config, collection(config, "fill_feed"));
  CHECK(feed["collection"]["kind"] == "stream");
  CHECK(feed["collection"]["buffer_size"] == 1000);
  CHECK_FALSE(feed["collection"].contains("change_log_size"));
  CHECK(feed["collection"]["columns"]["price"] == Json{{"type", "REAL"}});
  const Json view = col::describe(config, collection(config, "open_orders"));
  CHECK(view["collection"]["kind"] == "table");
  CHECK(view["collection"]["filterable"] == Json::parse(R"(["symbol", "trader", "state"])"));
  CHECK(view["collection"]["columns"].size() == 9);
  CHECK_FALSE(view["collection"].contains("key"));
}

TEST_CASE("collections: the one-op shorthand, unnamed op lists and spelling variants", "[collections]") {
  const col::Config config = col::parse(Json::parse(R"({
    "tables": {"t": {"columns": {"id": "TEXT PRIMARY KEY", "v": "INTEGER"}}},
    "services": {
      "Add": {"protocol": "transaction", "type": "transaction", "table": "t", "op_type": "insert",
              "fields": ["id", "v"], "defaults": {"v": 1}},
      "both": {"type": "transaction", "descriptions": {"default": "two steps"},
               "ops": [{"table": "t", "op_type": "upsert", "fields": ["v"]},
                       {"table": "t", "op_type": "delete", "key": ["id"], "bind": {"id": "$0.id"}}]},
      "keyed": {"type": "subpub", "primary_table": "t", "key": "id", "topic": "id"}
    }})"), "inline.json");
  const col::OpSet& add = op_set(config, "add");  // lower-cased key
  CHECK(add.name.empty());
  REQUIRE(add.ops.size() == 1);
  CHECK(add.ops[0].defaults == Json{{"v", 1}});
  CHECK(add.ops[0].columns == std::vector<std::string>{"id", "v"});
  const Json entry = col::describe(config, transaction_of(config, "add"), add);
  // A TEXT PRIMARY KEY is no rowid: the client must give it.
  CHECK(entry["fields"]["id"] == Json{{"type", "TEXT"}, {"required", true}});
  CHECK(entry["fields"]["v"] == Json{{"type", "INTEGER"}, {"required", false}, {"default", 1}});
  const col::OpSet& both = op_set(config, "both");
  CHECK(both.description == "two steps");
  CHECK(both.ops[0].key == std::vector<std::string>{"id"});
  CHECK(both.ops[0].columns == std::vector<std::string>{"id", "v"});
  CHECK(both.ops[1].columns.empty());
  CHECK(collection(config, "keyed").key == "id");
}

TEST_CASE("collections: db_path, top-level options and ignored mkio keys", "[collections]") {
  const Json doc = Json::parse(R"({"db_path": "data/x.db", "batch_max_size": 10, "batch_max_wait_ms": 0,
    "auto_migrate": true, "wal_checkpoint_interval_s": 60, "backup_on_startup": true, "backup_dir": "b",
    "shutdown_timeout": 5, "name": "n", "version": "1", "config": {}, "_private": 1})");
  const col::Config config = col::parse(doc, "/etc/mktl/book.json");
  CHECK(config.db_path == "/etc/mktl/data/x.db");
  CHECK(config.batch_max_size == 10);
  CHECK(config.batch_max_wait_ms == 0);
  CHECK(config.auto_migrate);
  CHECK(config.empty());
  CHECK(config.ignored == std::vector<std::string>{"/_private", "/backup_dir", "/backup_on_startup", "/config", "/name",
                                                   "/shutdown_timeout", "/version", "/wal_checkpoint_interval_s"});
  CHECK(col::parse(Json::parse(R"({"db_path": "/abs/x.db"})"), "conf/a.json").db_path == "/abs/x.db");
  CHECK(col::parse(Json::parse(R"({"db_path": ":memory:"})"), "conf/a.json").db_path == ":memory:");
  CHECK(col::parse(Json::parse(R"({"db_path": "x.db"})"), "a.json").db_path == "x.db");
  CHECK(col::parse(Json::object(), "a.json").db_path.empty());
}

TEST_CASE("collections: column declarations", "[collections]") {
  using col::detail::parse_column;
  const col::Column a = parse_column("a", "integer primary key autoincrement");
  CHECK(a.type == "INTEGER");
  CHECK(a.primary_key);
  CHECK(a.autoincrement);
  const col::Column b = parse_column("b", "varchar ( 20 ) NOT NULL ON CONFLICT ABORT UNIQUE COLLATE nocase");
  CHECK(b.type == "VARCHAR(20)");
  CHECK(b.not_null);
  CHECK(b.unique);
  CHECK_FALSE(b.primary_key);
  CHECK(parse_column("c", "DECIMAL(10, 2) DEFAULT -1.5").default_sql == std::optional<std::string>("-1.5"));
  CHECK(parse_column("d", "TEXT DEFAULT (upper('x')) CHECK (length(d) < 5)").default_sql ==
        std::optional<std::string>("(upper('x'))"));
  CHECK(parse_column("e", "TEXT DEFAULT 'it''s'").default_sql == std::optional<std::string>("'it''s'"));
  CHECK(parse_column("f", "INTEGER REFERENCES t(id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED NOT NULL").not_null);
  CHECK(parse_column("g", "REAL GENERATED ALWAYS AS (a * 2) STORED").generated);
  CHECK(parse_column("h", "").type.empty());
  CHECK(parse_column("i", "DOUBLE PRECISION").type == "DOUBLE PRECISION");
  CHECK_FALSE(parse_column("j", "INTEGER PRIMARY KEY DESC").autoincrement);  // SQLite's quirk: no rowid alias
  CHECK_FALSE(parse_column("k", "TEXT PRIMARY KEY").autoincrement);

  CHECK_THROWS_WITH(parse_column("x", "TEXT NOT NUL"), Catch::Contains("expected NULL after NOT"));
  CHECK_THROWS_WITH(parse_column("x", "TEXT NOT NULL DEFALT 'x'"), Catch::Contains("unexpected 'DEFALT'") && Catch::Contains("did you mean 'DEFAULT'?"));
  CHECK(parse_column("x", "TEXT NULLABLE").type == "TEXT NULLABLE");  // SQLite takes any words as a type name
  CHECK_THROWS_WITH(parse_column("x", "TEXT PRIMARY KEY AUTOINCREMENT"), Catch::Contains("only allowed on an INTEGER PRIMARY KEY"));
  CHECK_THROWS_WITH(parse_column("x", "TEXT DEFAULT"), Catch::Contains("expected a value after DEFAULT"));
  CHECK_THROWS_WITH(parse_column("x", "TEXT DEFAULT 'open"), Catch::Contains("unterminated string"));
  CHECK_THROWS_WITH(parse_column("x", "TEXT CHECK (a > (1)"), Catch::Contains("unbalanced parentheses"));
  CHECK_THROWS_WITH(parse_column("x", "VARCHAR(abc)"), Catch::Contains("expected a number"));

  using col::detail::sql_literal;
  CHECK(sql_literal("'pending'") == Json("pending"));
  CHECK(sql_literal("'it''s'") == Json("it's"));
  CHECK(sql_literal("0") == Json(0));
  CHECK(sql_literal("-2") == Json(-2));
  CHECK(sql_literal("2.5") == Json(2.5));
  CHECK(sql_literal("NULL") == Json(nullptr));
  CHECK(sql_literal("true") == Json(1));
  CHECK_FALSE(sql_literal("CURRENT_TIMESTAMP"));
  CHECK_FALSE(sql_literal("(1 + 2)"));
}

TEST_CASE("collections: TOML converts to the JSON shape, and syntax errors name file, line and column", "[collections]") {
  const Json j = col::toml_to_json(R"(
i = 1
f = 2.0
b = true
s = "x"
d = 1979-05-27
t = 07:32:00
dt = 1979-05-27T07:32:00Z
a = [1, "two", { three = 3 }]
[n.m]
k = -3
)", "x.toml");
  CHECK(j == Json::parse(R"({"i": 1, "f": 2.0, "b": true, "s": "x", "d": "1979-05-27", "t": "07:32:00",
                              "dt": "1979-05-27T07:32:00Z", "a": [1, "two", {"three": 3}], "n": {"m": {"k": -3}}})"));
  CHECK(j["i"].is_number_integer());
  CHECK(j["f"].is_number_float());

  try {
    col::toml_to_json("a = 1\nb = [1, 2\n", "x.toml");
    FAIL("no error");
  } catch (const mktl::ConfigError& e) {
    CHECK(e.file() == "x.toml");
    CHECK_THAT(e.pointer(), Catch::StartsWith("line 2") || Catch::StartsWith("line 3"));
    CHECK_THAT(e.pointer(), Catch::Contains("column"));
    CHECK_THAT(std::string(e.what()), Catch::StartsWith("x.toml: line ") && Catch::Contains("invalid TOML"));
  }
  CHECK_THAT(toml_error("[services.x\n", false), Catch::StartsWith("bad.toml: line 1, column ") && Catch::Contains("invalid TOML"));
}

TEST_CASE("collections: TOML errors carry the line of the offending key", "[collections]") {
  // The op's table is on line 5.
  const std::string error = toml_error(R"(
[services.orders]
protocol = "transaction"
ops.new = [
  { table = "ordres", op_type = "insert", fields = ["symbol"] },
]
)");
  CHECK_THAT(error, Catch::StartsWith("bad.toml: line 5, /services/orders/ops/new/0/table: no table 'ordres' in tables; did you mean 'orders'?"));

  // A document converted before parse() (as the daemon gets it) finds its lines again.
  TempDir dir;
  const std::string path = dir.write("late.toml", std::string(kTables) + "\n[services.s]\nprotocol = \"stream\"\nprimary_table = \"orders\"\nbuffer_size = 0\n");
  try {
    col::parse(mktl::load_config_file(path), path);
    FAIL("no error");
  } catch (const mktl::ConfigError& e) {
    CHECK(e.pointer() == "line 11, /services/s/buffer_size");
  }
}

TEST_CASE("collections: each class of config error names the file, the place and the fix", "[collections]") {
  struct Case {
    const char* services;
    const char* expected;  // the message after "bad.toml: line N, "
  };
  const std::vector<Case> cases = {
      // Unknown keys, with a suggestion.
      {"[tables.x]\ncolumns = { a = \"TEXT\" }\nprimay_key = [\"a\"]\n",
       "/tables/x/primay_key: unknown key 'primay_key' in table 'x'; did you mean 'primary_key'?"},
      {"servics = {}\n", "/servics: unknown key 'servics'; did you mean 'services'?"},
      {"[services.s]\nprotocol = \"stream\"\nprimary_tabel = \"orders\"\n",
       "/services/s/primary_tabel: unknown key 'primary_tabel' in stream service 's'; did you mean 'primary_table'?"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", feilds = [\"symbol\"] }]\n",
       "/services/s/ops/0/feilds: unknown key 'feilds' in an op; did you mean 'fields'?"},
      {"[services.s]\nprotocol = \"query\"\nprimary_table = \"orders\"\nbuffer_size = 10\n",
       "/services/s/buffer_size: 'buffer_size' has no meaning for a query service (it is an option of stream)"},
      // Service types.
      {"[services.s]\nprimary_table = \"orders\"\n", "/services/s: the service has no 'type' (mkio: 'protocol')"},
      {"[services.s]\nprotocol = \"subpib\"\n", "/services/s/protocol: unknown service type 'subpib'; did you mean 'subpub'?"},
      {"[services.s]\ntype = \"query\"\nprotocol = \"stream\"\n", "/services/s/type: type 'query' and protocol 'stream' disagree"},
      // Item names.
      {"[services.orders]\nprotocol = \"transaction\"\nops.new = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }]\n"
       "[services.Orders_New]\nprotocol = \"stream\"\nprimary_table = \"orders\"\n",
       "/services/orders/ops/new: item key 'orders_new' of op set 'new' of service 'orders' collides with that of service 'Orders_New'"},
      {"[services.a]\nprotocol = \"stream\"\nprimary_table = \"orders\"\n[services.A]\nprotocol = \"stream\"\nprimary_table = \"orders\"\n",
       "/services/a: service 'a' and service 'A' differ only in case"},
      {"[services._hidden]\nprotocol = \"stream\"\nprimary_table = \"orders\"\n",
       "/services/_hidden: the service name '_hidden' starts with '_'"},
      {"[services.\"a.b\"]\nprotocol = \"stream\"\nprimary_table = \"orders\"\n", "/services/a.b: the service name 'a.b' holds a '.'"},
      {"[services.\"a b\"]\nprotocol = \"stream\"\nprimary_table = \"orders\"\n", "/services/a b: the service name 'a b' holds whitespace"},
      {"[services.s]\nprotocol = \"transaction\"\nops.\"_x\" = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }]\n",
       "/services/s/ops/_x: the op set name '_x' starts with '_'"},
      // Ops against their tables.
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"order\"\nop_type = \"insert\"\n",
       "/services/s/table: no table 'order' in tables; did you mean 'orders'?"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"orders\"\nop_type = \"insert\"\nfields = [\"symbol\", \"qtty\"]\n",
       "/services/s/fields/1: field 'qtty' is not a column of table 'orders'; did you mean 'qty'?"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"orders\"\nop_type = \"update\"\nkey = [\"idd\"]\n",
       "/services/s/key/0: key 'idd' is not a column of table 'orders'; did you mean 'id'?"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"], defaults = { stauts = \"x\" } }]\n",
       "/services/s/ops/0/defaults/stauts: defaults column 'stauts' is not a column of table 'orders'; did you mean 'status'?"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }, "
       "{ table = \"audit\", op_type = \"insert\", bind = { orderid = \"$0.id\" } }]\n",
       "/services/s/ops/1/bind/orderid: bind column 'orderid' is not a column of table 'audit'; did you mean 'order_id'?"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }, "
       "{ table = \"audit\", op_type = \"insert\", bind = { order_id = \"$1.id\" } }]\n",
       "/services/s/ops/1/bind/order_id: bind reference '$1.id' names op 1, but op 1 can only bind to earlier ops (0 to 0)"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }, "
       "{ table = \"audit\", op_type = \"insert\", bind = { order_id = \"$2.id\" } }]\n",
       "/services/s/ops/1/bind/order_id: bind reference '$2.id' names op 2"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"audit\", op_type = \"insert\", bind = { order_id = \"$0.id\" } }]\n",
       "/services/s/ops/0/bind/order_id: bind reference '$0.id' names op 0, but op 0 is the first op"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }, "
       "{ table = \"audit\", op_type = \"insert\", bind = { order_id = \"0.id\" } }]\n",
       "/services/s/ops/1/bind/order_id: malformed bind reference '0.id'; write \"$N.field\""},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }, "
       "{ table = \"audit\", op_type = \"insert\", bind = { order_id = \"$0\" } }]\n",
       "/services/s/ops/1/bind/order_id: malformed bind reference '$0'"},
      {"[services.s]\nprotocol = \"transaction\"\nops = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }, "
       "{ table = \"audit\", op_type = \"insert\", bind = { order_id = \"$0.idd\" } }]\n",
       "/services/s/ops/1/bind/order_id: bind reference '$0.idd': op 0 writes table 'orders', which has no column 'idd'; did you mean 'id'?"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"audit\"\nop_type = \"update\"\nfields = [\"status\"]\n",
       "/services/s: op_type 'update' needs 'key' (the columns that pick the row) and table 'audit' has no primary key"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"audit\"\nop_type = \"delete\"\n",
       "/services/s: op_type 'delete' needs 'key'"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"orders\"\nop_type = \"inster\"\n",
       "/services/s/op_type: unknown op_type 'inster'; did you mean 'insert'?"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"orders\"\nop_type = \"upsert\"\nkey = [\"symbol\"]\nfields = [\"symbol\"]\n",
       "/services/s/key: an upsert's key must be the table's primary key (id) or one UNIQUE column"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"orders\"\nop_type = \"insert\"\nfields = [\"qty\"]\n",
       "/services/s: the insert into 'orders' never sets column 'symbol', which is NOT NULL without a DEFAULT"},
      {"[services.s]\nprotocol = \"transaction\"\nops = []\n", "/services/s/ops: no ops"},
      {"[services.s]\nprotocol = \"transaction\"\n", "/services/s: the transaction service has no ops"},
      {"[services.s]\nprotocol = \"transaction\"\ntable = \"orders\"\nop_type = \"insert\"\nfields = [\"symbol\"]\nops = []\n",
       "/services/s/table: 'table' belongs to the one-op shorthand, but the service also has 'ops'"},
      {"[services.s]\nprotocol = \"transaction\"\nops.new = [{ table = \"orders\", op_type = \"insert\", fields = [\"symbol\"] }]\n"
       "descriptions = { nwe = \"x\" }\n",
       "/services/s/descriptions/nwe: no op set 'nwe' to describe; did you mean 'new'?"},
      // Collections.
      {"[services.s]\nprotocol = \"stream\"\n", "/services/s: the stream service has no 'primary_table'"},
      {"[services.s]\nprotocol = \"subpub\"\nsql = \"SELECT * FROM orders\"\ntopic = \"id\"\n", "/services/s: the subpub service has no 'primary_table'"},
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\n", "/services/s: the subpub service has no 'key' (mkio: 'topic')"},
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\ntopic = \"symbl\"\n",
       "/services/s/topic: key 'symbl' is not a column of table 'orders'; did you mean 'symbol'?"},
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\ntopic = \"id\"\nkey = \"symbol\"\n",
       "/services/s/key: key 'symbol' and topic 'id' disagree"},
      {"[services.s]\nprotocol = \"query\"\nprimary_table = \"orders\"\nwatch_tables = [\"orders\", \"audits\"]\n",
       "/services/s/watch_tables/1: no table 'audits' in tables; did you mean 'audit'?"},
      {"[services.s]\nprotocol = \"query\"\nprimary_table = \"orders\"\nfilterable = [\"symbol\", \"prize\"]\n",
       "/services/s/filterable/1: filterable field 'prize' is not a column of orders nor a publish field; did you mean 'price'?"},
      {"[services.s]\nprotocol = \"stream\"\nprimary_table = \"orders\"\nbuffer_size = 0\n",
       "/services/s/buffer_size: expected a positive integer"},
      {"[services.s]\nprotocol = \"stream\"\nprimary_table = \"orders\"\nbuffer_size = 10.5\n",
       "/services/s/buffer_size: expected a positive integer"},
      {"[services.s]\nprotocol = \"stream\"\nprimary_table = \"orders\"\nbuffer_size = \"100\"\n",
       "/services/s/buffer_size: expected a positive integer (how many rows the stream keeps in memory), got \"100\""},
      // Expressions.
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\ntopic = \"symbol\"\nwhere = \"status == \"\n",
       "/services/s/where: invalid expression \"status == \""},
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\ntopic = \"symbol\"\nwhere = \"stauts == 'x'\"\n",
       "/services/s/where: the expression \"stauts == 'x'\" reads field 'stauts', which is not a column of table 'orders'; did you mean 'status'?"},
      {"[services.s]\nprotocol = \"stream\"\nprimary_table = \"orders\"\npublish = { total = \"qty * \" }\n",
       "/services/s/publish/total: invalid expression \"qty * \""},
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\ntopic = \"symbol\"\ndefaults = { qty = \"NOSUCH(1)\" }\n",
       "/services/s/defaults/qty: invalid expression \"NOSUCH(1)\""},
      {"[services.s]\nprotocol = \"subpub\"\nprimary_table = \"orders\"\ntopic = \"symbol\"\npublish = { sym = \"symbol\" }\ndefaults = { sym0 = \"''\" }\n",
       "/services/s/defaults/sym0: defaults field 'sym0' is not an output field; did you mean 'sym'?"},
      // Tables.
      {"[tables.x]\ncolumns = { a = \"TEXT NOT NUL\" }\n", "/tables/x/columns/a: expected NULL after NOT"},
      {"[tables.x]\ncolumns = { a = \"INTEGER PRIMARY KEY\" }\nprimary_key = [\"a\"]\n",
       "/tables/x/primary_key: column 'a' already declares PRIMARY KEY; keep either that or primary_key, not both"},
      {"[tables.x]\ncolumns = { a = \"TEXT\" }\nprimary_key = [\"b\"]\n", "/tables/x/primary_key/0: table 'x' has no column 'b'"},
      {"[tables.x]\ncolumns = { a = \"INTEGER PRIMARY KEY\", b = \"TEXT PRIMARY KEY\" }\n",
       "/tables/x/columns: columns a, b each declare PRIMARY KEY"},
      {"[tables.x]\nprimary_key = [\"a\"]\n", "/tables/x: table 'x' has no 'columns'"},
      {"[tables.\"my-table\"]\ncolumns = { a = \"TEXT\" }\n", "/tables/my-table: the table name 'my-table' is not a plain SQL name"},
      {"[tables.x]\ncolumns = { a = \"TEXT\", A = \"TEXT\" }\n", "column 'a' and column 'A' differ only in case"},
  };
  for (const Case& c : cases) {
    INFO(c.services);
    const std::string error = toml_error(c.services);
    CHECK_THAT(error, Catch::StartsWith("bad.toml: line "));
    CHECK_THAT(error, Catch::Contains(c.expected));
  }
}

TEST_CASE("collections: wrong JSON types name the place and what was expected", "[collections]") {
  CHECK(json_error(R"([])") == "bad.json: expected a JSON object {\"tables\": {...}, \"services\": {...}}, got an array");
  CHECK_THAT(json_error(R"({"tables": []})"), Catch::StartsWith("bad.json: /tables: expected an object"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": "id INTEGER"}}})"),
             Catch::StartsWith("bad.json: /tables/t/columns: expected an object ({column name: \"SQL type and constraints\"})"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": {"id": 1}}}})"),
             Catch::StartsWith("bad.json: /tables/t/columns/id: expected a string (the SQL type and constraints"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": {"id": "INTEGER"}}}, "services": {"s": {"type": "transaction",
               "table": "t", "op_type": "insert", "fields": "id"}}})"),
             Catch::StartsWith("bad.json: /services/s/fields: expected an array of strings"));
  CHECK_THAT(json_error(R"({"services": {"s": {"type": 5}}})"), Catch::StartsWith("bad.json: /services/s/type: expected a string"));
  CHECK_THAT(json_error(R"({"services": {"s": []}})"), Catch::StartsWith("bad.json: /services/s: expected an object"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": {"id": "INTEGER"}}}, "services": {"s": {"type": "stream",
               "primary_table": "t", "description": 5}}})"),
             Catch::StartsWith("bad.json: /services/s/description: expected a string"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": {"id": "INTEGER PRIMARY KEY"}}}, "services": {"s": {"type": "transaction",
               "ops": [{"table": "t", "op_type": "insert", "defaults": {"id": [1]}}]}}})"),
             Catch::StartsWith("bad.json: /services/s/ops/0/defaults/id: expected a string, number, boolean or null"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": {"id": "INTEGER PRIMARY KEY"}}}, "services": {"s": {"type": "transaction",
               "ops": {"new": {"table": "t", "op_type": "insert"}}}}})"),
             Catch::StartsWith("bad.json: /services/s/ops/new: expected an array of ops"));
  CHECK_THAT(json_error(R"({"tables": {"t": {"columns": {"id": "INTEGER PRIMARY KEY"}}}, "services": {"s": {"type": "transaction",
               "ops": [{"table": "t", "op_type": "insert"}, {"table": "t", "op_type": "insert", "bind": {"id": 0}}]}}})"),
             Catch::StartsWith("bad.json: /services/s/ops/1/bind/id: expected a reference \"$N.field\""));
  CHECK_THAT(json_error(R"({"batch_max_size": 0})"), Catch::StartsWith("bad.json: /batch_max_size: expected a positive integer"));
  CHECK_THAT(json_error(R"({"batch_max_wait_ms": -1})"), Catch::StartsWith("bad.json: /batch_max_wait_ms: expected milliseconds"));
  CHECK_THAT(toml_error("batch_max_wait_ms = nan\n"), Catch::StartsWith("bad.toml: line 1, /batch_max_wait_ms: expected milliseconds"));
  CHECK_THAT(json_error(R"({"auto_migrate": "yes"})"), Catch::StartsWith("bad.json: /auto_migrate: expected true or false"));
  CHECK_THAT(json_error(R"({"change_log_size": 1.5})"), Catch::StartsWith("bad.json: /change_log_size: expected a positive integer"));
  CHECK_THAT(json_error(R"({"items": {}})"), Catch::StartsWith("bad.json: /items: unknown key 'items'"));
}

TEST_CASE("collections: user expression functions are known to the config", "[collections]") {
  const Json doc = Json::parse(R"json({"tables": {"t": {"columns": {"id": "INTEGER PRIMARY KEY", "v": "REAL"}}},
    "services": {"s": {"type": "stream", "primary_table": "t", "publish": {"w": "CELSIUS(v)"}}}})json");
  CHECK_THROWS_AS(col::parse(doc, "f.json"), mktl::ConfigError);
  mktl::ExpressionFunctions functions;
  functions.add("celsius", 1, 1, [](std::span<const Json> args) { return Json(args[0].get<double>() - 273.15); });
  CHECK(col::parse(doc, "f.json", functions).collections.at(0).publish.at(0).second == "CELSIUS(v)");
}

TEST_CASE("collections: a daemon's catalog file with items, tables and services", "[collections]") {
  TempDir dir;
  // A plain items file stays an items file.
  auto plain = mktl::load_daemon_config(dir.write("items.json", R"({"temp": {"type": "numeric"}})"));
  CHECK(plain.items == Json::parse(R"({"temp": {"type": "numeric"}})"));
  CHECK(plain.collections.is_null());
  // An items file with an item called "tables" stays one too: "temp" is no mkio key.
  auto odd = mktl::load_daemon_config(dir.write("odd.json", R"({"tables": {"type": "string"}, "temp": {}})"));
  CHECK(odd.items.size() == 2);
  CHECK(odd.collections.is_null());
  // A daemon config: items beside the mkio document.
  auto both = mktl::load_daemon_config(dir.write("daemon.json", R"({"items": {"temp": {"type": "numeric"}},
    "port": 1, "tables": {"t": {"columns": {"id": "INTEGER PRIMARY KEY"}}}, "services": {}})"));
  CHECK(both.items == Json::parse(R"({"temp": {"type": "numeric"}})"));
  CHECK(both.collections == Json::parse(R"({"port": 1, "tables": {"t": {"columns": {"id": "INTEGER PRIMARY KEY"}}}, "services": {}})"));
  // Any TOML file is a daemon config; its [items] table holds the items.
  auto toml = mktl::load_daemon_config(dir.write("daemon.toml", "[items.temp]\ntype = \"numeric\"\n[tables.t]\ncolumns = { id = \"INTEGER\" }\n"));
  CHECK(toml.items == Json::parse(R"({"temp": {"type": "numeric"}})"));
  CHECK(toml.collections == Json::parse(R"({"tables": {"t": {"columns": {"id": "INTEGER"}}}})"));
  // {"items": {...}} alone: the items of a daemon config with no tables yet.
  auto wrapped = mktl::load_daemon_config(dir.write("wrapped.json", R"({"items": {"temp": {"type": "numeric"}, "mode": {}}})"));
  CHECK(wrapped.items == Json::parse(R"({"temp": {"type": "numeric"}, "mode": {}})"));
  CHECK(wrapped.collections.is_null());
  // An item called "items" is still one: with its type, or beside other items.
  auto named = mktl::load_daemon_config(dir.write("named.json", R"({"items": {"type": "string", "units": {"a": "b"}}})"));
  CHECK(named.items == Json::parse(R"({"items": {"type": "string", "units": {"a": "b"}}})"));
  auto beside = mktl::load_daemon_config(dir.write("beside.json", R"({"items": {"x": {}}, "temp": {"type": "numeric"}})"));
  CHECK(beside.items.size() == 2);
  CHECK(beside.collections.is_null());
  auto described = mktl::load_daemon_config(dir.write("described.json", R"({"items": {"description": "a list"}})"));
  CHECK(described.items == Json::parse(R"({"items": {"description": "a list"}})"));
  auto items_only = mktl::load_daemon_config(dir.write("items.toml", "[items.temp]\ntype = \"numeric\"\n"));
  CHECK(items_only.collections.is_null());
  CHECK_THROWS_AS(mktl::load_daemon_config(dir.write("bad.json", R"({"items": [], "services": {}})")), mktl::ConfigError);
  CHECK_THROWS_WITH(mktl::load_config_file((dir.path / "missing.toml").string()), Catch::Contains("missing.toml: cannot read the file"));
  CHECK(mktl::is_mkio_top_level_key("wal_checkpoint_interval_s"));
  CHECK(mktl::is_mkio_top_level_key("_anything"));
  CHECK_FALSE(mktl::is_mkio_top_level_key("items"));
}

}  // namespace test_collections_config
