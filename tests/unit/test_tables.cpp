// Transactions as record items: ops, binds, defaults, batching with rollback
// isolation, refs that survive a restart, and schema migration, through a
// real daemon, real sockets and a real SQLite file.
#include "support.hpp"


#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <set>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_tables {

namespace {

using mktl::Json;

Json orders_config() {
  return Json::parse(R"({
    "tables": {
      "orders": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "symbol": "TEXT NOT NULL",
                             "qty": "INTEGER NOT NULL", "price": "REAL DEFAULT 0", "status": "TEXT DEFAULT 'new'"}},
      "fills": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "order_id": "INTEGER NOT NULL",
                            "qty": "INTEGER", "event": "TEXT"}},
      "notes": {"columns": {"id": "INTEGER PRIMARY KEY", "text": "TEXT NOT NULL"}}
    },
    "services": {
      "orders": {"protocol": "transaction", "ops": {
        "new": [{"table": "orders", "op_type": "insert", "fields": ["symbol", "qty", "price"]},
                {"table": "fills", "op_type": "insert", "defaults": {"event": "new", "qty": 0},
                 "bind": {"order_id": "$0.id"}}],
        "fill": [{"table": "orders", "op_type": "update", "key": ["id"], "fields": ["status"],
                  "defaults": {"status": "filled"}},
                 {"table": "fills", "op_type": "insert", "fields": ["qty"], "defaults": {"event": "fill"},
                  "bind": {"order_id": "$0.id"}}],
        "cancel": [{"table": "orders", "op_type": "delete", "key": ["id"]}],
        "put": [{"table": "orders", "op_type": "upsert", "key": ["id"], "fields": ["id", "symbol", "qty"]}],
        "close": [{"table": "orders", "op_type": "update", "key": ["symbol"], "fields": ["status"]}]
      }},
      "note": {"protocol": "transaction", "table": "notes", "op_type": "insert", "fields": ["text"]}
    }
  })");
}

struct Fixture {
  test::TempDir home;
  Json config = orders_config();
  std::unique_ptr<mktl::Daemon> daemon;
  std::unique_ptr<test::RawDealer> dealer;
  int next_id = 0;

  void start(bool migrate = false) {
    auto options = test::isolated(home);
    options.collections = config;
    options.collections_source = "orders.json";
    options.migrate = migrate;
    daemon = std::make_unique<mktl::Daemon>("book", "book1", Json::object(), options);
    daemon->start();
    dealer = std::make_unique<test::RawDealer>(daemon->rep_endpoint());
  }
  void restart(bool migrate = false) {
    dealer.reset();
    daemon.reset();
    start(migrate);
  }

  // The REP payload of one request.
  Json request(const std::string& type, const std::string& key, const Json& payload) {
    auto id = std::to_string(++next_id);
    auto rep = dealer->roundtrip(id, type, "book." + key, payload.is_null() ? "" : payload.dump());
    REQUIRE(rep);
    return Json::parse(rep->at(5));
  }
  Json set(const std::string& key, const Json& value, const std::string& ref = {}) {
    Json payload = {{"value", value}};
    if (!ref.empty()) payload["ref"] = ref;
    return request("SET", key, payload);
  }
  Json get(const std::string& key, const Json& payload = nullptr) { return request("GET", key, payload); }

  // Direct read of the database file, as another program would see it.
  Json query(const std::string& sql) {
    auto path = home.str() + "/daemon/collections/book/book1.sqlite3";
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    Json rows = Json::array();
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      Json row = Json::array();
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        switch (sqlite3_column_type(stmt, i)) {
          case SQLITE_INTEGER: row.push_back(sqlite3_column_int64(stmt, i)); break;
          case SQLITE_FLOAT: row.push_back(sqlite3_column_double(stmt, i)); break;
          case SQLITE_NULL: row.push_back(nullptr); break;
          default: row.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i))));
        }
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
  }
};

std::string error_type(const Json& rep) { return rep.contains("error") ? rep["error"].value("type", "") : ""; }
std::string error_text(const Json& rep) { return rep.contains("error") ? rep["error"].value("text", "") : ""; }

}  // namespace

TEST_CASE("record items: each op set is a settable item describing its fields", "[tables]") {
  Fixture f;
  f.start();
  for (auto key : {"orders_new", "orders_fill", "orders_cancel", "orders_put", "note"}) {
    const Json& d = f.daemon->items().at(key);
    CHECK(d.at("type") == "record");
    CHECK(d.value("settable", true));
  }
  const Json& fields = f.daemon->items().at("orders_new").at("fields");
  CHECK(fields.at("symbol").at("required") == true);
  CHECK(fields.at("price").at("required") == false);
}

TEST_CASE("a transaction inserts, binds a later op to the RETURNING row, and answers after commit", "[tables]") {
  Fixture f;
  f.start();
  Json rep = f.set("orders_new", {{"symbol", "AAPL"}, {"qty", 100}, {"price", 187.5}});
  REQUIRE(error_type(rep).empty());
  Json value = rep.at("value");
  CHECK(rep.at("ref") == value.at("ref"));
  CHECK(value.at("seq").get<std::int64_t>() >= 1);
  Json order = value.at("rows").at(0);
  CHECK(order.at("symbol") == "AAPL");
  CHECK(order.at("status") == "new");  // the column's DEFAULT, returned
  Json fill = value.at("rows").at(1);
  CHECK(fill.at("order_id") == order.at("id"));  // the bind
  CHECK(fill.at("event") == "new");             // op defaults
  // Client data overrides an op default.
  Json manual = f.set("orders_new", {{"symbol", "X"}, {"qty", 1}, {"event", "manual"}});
  REQUIRE(error_type(manual).empty());
  CHECK(manual.at("value").at("rows").at(1).at("event") == "manual");
  // Committed: another connection sees both rows.
  CHECK(f.query("SELECT symbol, qty FROM orders WHERE id = 1") == Json::parse(R"([["AAPL", 100]])"));
  CHECK(f.query("SELECT order_id, event FROM fills WHERE order_id = " + order.at("id").dump()) ==
        Json::array({Json::array({order.at("id"), "new"})}));
  // GET without ref: the last committed transaction.
  CHECK(f.get("orders_new").at("value").at("ref") == manual.at("ref"));
}

TEST_CASE("update, delete and upsert, and a change that matches no row says so and changes nothing", "[tables]") {
  Fixture f;
  f.start();
  Json id = f.set("orders_new", {{"symbol", "MSFT"}, {"qty", 5}}).at("value").at("rows").at(0).at("id");

  Json filled = f.set("orders_fill", {{"id", id}, {"qty", 5}});
  REQUIRE(error_type(filled).empty());
  CHECK(filled.at("value").at("rows").at(0).at("status") == "filled");
  CHECK(filled.at("value").at("rows").at(1).at("event") == "fill");

  Json ghost = f.set("orders_fill", {{"id", 999}, {"qty", 1}});
  CHECK(error_type(ghost) == "ValueError");
  CHECK_THAT(error_text(ghost), Catch::Contains("matched no row") && Catch::Contains("999"));
  // The fill op after it did not run either: all or nothing.
  CHECK(f.query("SELECT COUNT(*) FROM fills WHERE order_id = 999") == Json::parse("[[0]]"));

  Json up = f.set("orders_put", {{"id", id}, {"symbol", "MSFT"}, {"qty", 7}});
  REQUIRE(error_type(up).empty());
  CHECK(up.at("value").at("rows").at(0).at("qty") == 7);
  Json fresh = f.set("orders_put", {{"id", 50}, {"symbol", "IBM"}, {"qty", 1}});
  CHECK(fresh.at("value").at("rows").at(0).at("id") == 50);

  // An upsert whose key is null cannot conflict: it inserts, and answers with the new row.
  Json unkeyed = f.set("orders_put", {{"id", nullptr}, {"symbol", "SAP"}, {"qty", 3}});
  REQUIRE(error_type(unkeyed).empty());
  CHECK(unkeyed.at("value").at("rows").at(0).at("symbol") == "SAP");
  CHECK(unkeyed.at("value").at("rows").at(0).at("id").is_number_integer());
  f.set("orders_cancel", {{"id", unkeyed.at("value").at("rows").at(0).at("id")}});

  // An update whose key is no unique column answers with every row it changed.
  f.set("orders_new", {{"symbol", "IBM"}, {"qty", 2}});
  Json closed = f.set("orders_close", {{"symbol", "IBM"}, {"status", "closed"}});
  REQUIRE(error_type(closed).empty());
  Json rows = closed.at("value").at("rows").at(0);
  REQUIRE(rows.is_array());
  CHECK(rows.size() == 2);
  for (auto& row : rows) CHECK(row.at("status") == "closed");
  CHECK(f.query("SELECT COUNT(*) FROM orders WHERE status = 'closed'") == Json::parse("[[2]]"));

  Json gone = f.set("orders_cancel", {{"id", id}});
  REQUIRE(error_type(gone).empty());
  CHECK(gone.at("value").at("rows").at(0).at("symbol") == "MSFT");  // the row as it was
  CHECK(f.query("SELECT symbol FROM orders ORDER BY id") == Json::parse(R"([["IBM"], ["IBM"]])"));
  CHECK(error_type(f.set("orders_cancel", {{"id", id}})) == "ValueError");
}

TEST_CASE("bad transactions get a clear error naming the cause", "[tables]") {
  Fixture f;
  f.start();
  Json missing = f.set("orders_new", {{"symbol", "AAPL"}});
  CHECK(error_type(missing) == "ValueError");
  CHECK_THAT(error_text(missing), Catch::Contains("missing field 'qty'"));

  Json typo = f.set("orders_new", {{"symbol", "AAPL"}, {"qtty", 1}});
  CHECK(error_type(typo) == "ValueError");
  CHECK_THAT(error_text(typo), Catch::Contains("unknown field 'qtty'") && Catch::Contains("did you mean 'qty'"));

  Json type = f.set("orders_new", {{"symbol", "AAPL"}, {"qty", "many"}});
  CHECK(error_type(type) == "TypeError");
  CHECK_THAT(error_text(type), Catch::Contains("qty") && Catch::Contains("integer"));

  CHECK(error_type(f.set("orders_new", Json::array({1, 2}))) == "TypeError");
  CHECK(error_type(f.set("orders_new", "not json")) == "TypeError");
  Json constraint = f.set("orders_new", {{"symbol", nullptr}, {"qty", 1}});
  CHECK(error_type(constraint) == "ValueError");
  CHECK_THAT(error_text(constraint), Catch::Contains("NOT NULL"));
  // Numeric text is taken for numbers, as mKTL's numeric items take it.
  CHECK(error_type(f.set("orders_new", {{"symbol", "X"}, {"qty", "12"}})).empty());
  CHECK(f.query("SELECT COUNT(*) FROM orders") == Json::parse("[[1]]"));
}

TEST_CASE("transactions of one batch are isolated: a failing one rolls back alone", "[tables]") {
  Fixture f;
  f.start();
  // Many in flight at once on one socket, every third one failing in the database.
  constexpr int n = 90;
  for (int i = 0; i < n; ++i) {
    Json value = {{"symbol", i % 3 == 0 ? Json(nullptr) : Json("S" + std::to_string(i))}, {"qty", i}};
    f.dealer->request("t" + std::to_string(i), "SET", "book.orders_new", Json({{"value", value}}).dump());
  }
  int ok = 0, failed = 0;
  std::set<std::int64_t> seqs;
  for (int replies = 0; replies < n;) {
    auto m = f.dealer->recv();
    REQUIRE(m);
    if (m->at(2) != "REP") continue;
    ++replies;
    int i = std::stoi(m->at(1).substr(1));
    Json rep = Json::parse(m->at(5));
    if (i % 3 == 0) {
      CHECK(error_type(rep) == "ValueError");
      ++failed;
    } else {
      REQUIRE(error_type(rep).empty());
      CHECK(rep.at("value").at("rows").at(0).at("qty") == i);
      seqs.insert(rep.at("seq").get<std::int64_t>());
      ++ok;
    }
  }
  CHECK(failed == n / 3);
  CHECK(ok == n - n / 3);
  CHECK(seqs.size() == static_cast<std::size_t>(ok));  // every committed transaction has its own seq
  CHECK(f.query("SELECT COUNT(*) FROM orders") == Json::array({Json::array({ok})}));
  CHECK(f.query("SELECT COUNT(*) FROM fills") == Json::array({Json::array({ok})}));
}

TEST_CASE("one-op transactions of one batch are isolated too (they run without a SAVEPOINT)", "[tables]") {
  Fixture f;
  f.start();
  // book.note inserts one row: every third one fails in the database (text is NOT NULL).
  constexpr int n = 90;
  for (int i = 0; i < n; ++i) {
    Json value = {{"text", i % 3 == 0 ? Json(nullptr) : Json("n" + std::to_string(i))}};
    f.dealer->request("t" + std::to_string(i), "SET", "book.note", Json({{"value", value}}).dump());
  }
  int ok = 0, failed = 0;
  for (int replies = 0; replies < n;) {
    auto m = f.dealer->recv();
    REQUIRE(m);
    if (m->at(2) != "REP") continue;
    ++replies;
    int i = std::stoi(m->at(1).substr(1));
    Json rep = Json::parse(m->at(5));
    if (i % 3 == 0) {
      CHECK(error_type(rep) == "ValueError");
      ++failed;
    } else {
      REQUIRE(error_type(rep).empty());
      CHECK(rep.at("value").at("rows").at(0).at("text") == "n" + std::to_string(i));
      ++ok;
    }
  }
  CHECK(failed == n / 3);
  CHECK(f.query("SELECT COUNT(*) FROM notes") == Json::array({Json::array({ok})}));
  // Each committed one has its log entry, the failed ones none.
  CHECK(f.query("SELECT SUM(json_array_length(entries)) FROM _mktl_txn_log WHERE item = 'note'") ==
        Json::array({Json::array({ok})}));
}

TEST_CASE("each committed transaction is broadcast on the record item's topic", "[tables]") {
  Fixture f;
  f.start();
  test::RawSub sub(f.daemon->pub_endpoint(), "book.note.");
  std::string ref;
  std::optional<test::RawSub::Frames> got;
  REQUIRE(test::until_subscribed(
      [&](int i) { ref = f.set("note", {{"text", "n" + std::to_string(i)}}).at("ref").get<std::string>(); },
      [&] {
        while (auto m = sub.recv(std::chrono::milliseconds(0)))
          if (Json::parse(m->at(2)).at("value").at("ref") == ref) got = m;
        return got.has_value();
      }));
  Json value = Json::parse(got->at(2)).at("value");
  CHECK(value.at("rows").at(0).at("text").get<std::string>().rfind("n", 0) == 0);
}

TEST_CASE("GET with a ref tells whether it committed, also after a restart, and a repeated ref runs once", "[tables]") {
  Fixture f;
  f.start();
  Json rep = f.set("note", {{"text", "hello"}}, "client-ref-1");
  REQUIRE(error_type(rep).empty());
  CHECK(rep.at("ref") == "client-ref-1");
  std::string generated = f.set("note", {{"text", "again"}}).at("ref").get<std::string>();

  Json again = f.set("note", {{"text", "hello"}}, "client-ref-1");
  CHECK(again.at("value").value("duplicate", false));
  CHECK(again.at("seq") == rep.at("seq"));
  CHECK(f.query("SELECT COUNT(*) FROM notes") == Json::parse("[[2]]"));
  // A ref belongs to its record item: the same ref elsewhere is another transaction.
  Json other = f.set("orders_new", {{"symbol", "R"}, {"qty", 1}}, "client-ref-1");
  REQUIRE(error_type(other).empty());
  CHECK_FALSE(other.at("value").value("duplicate", false));
  CHECK(other.at("value").at("rows").at(0).at("symbol") == "R");

  f.restart();
  Json known = f.get("note", {{"ref", "client-ref-1"}}).at("value");
  CHECK(known.at("status") == "committed");
  CHECK(known.at("rows").at(0).at("text") == "hello");
  CHECK(f.get("note", {{"ref", generated}}).at("value").at("status") == "committed");
  CHECK(f.get("note", {{"ref", "never-sent"}}).at("value").at("status") == "unknown");
  CHECK(f.get("orders_new", {{"ref", "client-ref-1"}}).at("value").at("rows").at(0).at("symbol") == "R");
  // The last transaction is the item's value after the restart too.
  CHECK(f.get("note").at("value").at("ref") == generated);
}

TEST_CASE("the transaction log keeps change_log_size results per record item, also across a restart", "[tables]") {
  Fixture f;
  f.config["services"]["note"]["change_log_size"] = 3;
  f.start();
  std::vector<std::string> refs;
  for (int i = 0; i < 8; ++i) {
    Json rep = f.set("note", {{"text", "n" + std::to_string(i)}}, "r" + std::to_string(i));
    REQUIRE(error_type(rep).empty());
    refs.push_back(rep.at("ref").get<std::string>());
  }
  auto status = [&](int i) { return f.get("note", {{"ref", refs[static_cast<std::size_t>(i)]}}).at("value").at("status"); };
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 5; ++i) CHECK(status(i) == "unknown");
    for (int i = 5; i < 8; ++i) {
      CHECK(status(i) == "committed");
      CHECK(f.get("note", {{"ref", refs[static_cast<std::size_t>(i)]}}).at("value").at("rows").at(0).at("text") ==
            "n" + std::to_string(i));
    }
    // A kept ref is still answered from the log, not run again.
    Json again = f.set("note", {{"text", "n7"}}, "r7");
    CHECK(again.at("value").value("duplicate", false));
    // Rows that hold only forgotten results are pruned from time to time
    // (each time the window has filled again): at most twice the window stays.
    CHECK(f.query("SELECT MIN(seq) > 1 AND COUNT(*) <= 6 FROM _mktl_txn_log WHERE item = 'note'") == Json::parse("[[1]]"));
    f.restart();
  }
  // The seq goes on from the log after a restart.
  CHECK(f.set("note", {{"text", "n8"}}).at("seq") == 9);
}

TEST_CASE("the transaction log's window holds the daemon's refs and a client's in any order alike", "[tables]") {
  Fixture f;
  f.config["services"]["note"]["change_log_size"] = 4;
  f.start();
  // The daemon's refs rise with time; "zulu" sorts after them and "alpha"
  // before, and "zulu" is set again once it has left the window.
  std::vector<std::string> refs;
  auto set = [&](const std::string& ref) {
    Json rep = f.set("note", {{"text", "t" + std::to_string(refs.size())}}, ref);
    REQUIRE(error_type(rep).empty());
    refs.push_back(rep.at("ref").get<std::string>());
    return rep;
  };
  for (const char* ref : {"", "zulu", "", "alpha", "", ""}) set(ref);
  auto status = [&](std::size_t i) { return f.get("note", {{"ref", refs[i]}}).at("value").at("status"); };
  auto text = [&](std::size_t i) { return f.get("note", {{"ref", refs[i]}}).at("value").at("rows").at(0).at("text"); };
  for (std::size_t i : {0, 1}) CHECK(status(i) == "unknown");
  for (std::size_t i : {2, 3, 4, 5}) CHECK(text(i) == "t" + std::to_string(i));
  CHECK(set("alpha").at("value").value("duplicate", false));  // kept: answered, not run
  refs.pop_back();
  CHECK_FALSE(set("zulu").at("value").value("duplicate", false));  // forgotten: runs again
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i : {0, 2}) CHECK(status(i) == "unknown");
    for (std::size_t i : {3, 4, 5, 6}) CHECK(text(i) == "t" + std::to_string(i));  // refs[6] is "zulu" again
    CHECK(set("zulu").at("value").value("duplicate", false));
    refs.pop_back();
    f.restart();
  }
}

TEST_CASE("the transaction log of an older version (one row per transaction) is converted at open", "[tables]") {
  Fixture f;
  f.start();
  REQUIRE(error_type(f.set("note", {{"text", "first"}})).empty());
  f.dealer.reset();
  f.daemon.reset();
  // The older layout, with two transactions of `note`.
  auto path = f.home.str() + "/daemon/collections/book/book1.sqlite3";
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "DROP TABLE _mktl_txn_log;"
                       "CREATE TABLE _mktl_log (seq INTEGER PRIMARY KEY, ref TEXT NOT NULL, item TEXT NOT NULL, "
                       "time REAL NOT NULL, result TEXT NOT NULL, UNIQUE (item, ref));"
                       "INSERT INTO _mktl_log VALUES (4, 'old-a', 'note', 1.5e9, '{\"rows\":[{\"id\":1,\"text\":\"first\"}]}');"
                       "INSERT INTO _mktl_log VALUES (7, 'old-b', 'note', 1.6e9, '{\"rows\":[null]}');",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  f.start();
  Json a = f.get("note", {{"ref", "old-a"}}).at("value");
  CHECK(a.at("status") == "committed");
  CHECK(a.at("seq") == 4);
  CHECK(a.at("rows") == Json::parse(R"([{"id": 1, "text": "first"}])"));
  CHECK(f.get("note", {{"ref", "old-b"}}).at("value").at("rows") == Json::parse("[null]"));
  CHECK(f.set("note", {{"text", "x"}}, "old-a").at("value").value("duplicate", false));
  CHECK(f.set("note", {{"text", "second"}}).at("seq") == 8);
  CHECK(f.query("SELECT COUNT(*) FROM sqlite_master WHERE name = '_mktl_log'") == Json::parse("[[0]]"));
}

namespace {

// Counts its refreshes; in setup_final() (every item exists then, record
// items too) it watches the record item `note`.
class Watching : public mktl::Item {
 public:
  using Item::Item;
  void req_poll() override { ++polls; }
  std::atomic<int> polls{0};
};

class WatchingDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
  void setup() override { watching = &add_item<Watching>("watching"); }
  void setup_final() override { watching->watch(item("note")); }
  Watching* watching = nullptr;
};

}  // namespace

TEST_CASE("an item watching a record item refreshes after each committed transaction", "[tables]") {
  test::TempDir home;
  auto options = test::isolated(home);
  options.collections = orders_config();
  options.collections_source = "orders.json";
  WatchingDaemon daemon("book", "book1", Json::parse(R"({"watching": {"type": "numeric"}})"), options);
  daemon.start();
  test::RawDealer dealer(daemon.rep_endpoint());
  auto rep = dealer.roundtrip("1", "SET", "book.note", R"({"value": {"text": "seen?"}})");
  REQUIRE(rep);
  CHECK(error_type(Json::parse(rep->at(5))).empty());
  CHECK(test::wait_until([&] { return daemon.watching->polls.load() == 1; }));
  // A transaction that fails commits nothing: no refresh.
  rep = dealer.roundtrip("2", "SET", "book.note", R"({"value": {"txt": "typo"}})");
  REQUIRE(rep);
  CHECK_FALSE(error_type(Json::parse(rep->at(5))).empty());
  rep = dealer.roundtrip("3", "SET", "book.note", R"({"value": {"text": "again"}})");
  REQUIRE(rep);
  CHECK(test::wait_until([&] { return daemon.watching->polls.load() == 2; }));
  CHECK(daemon.watching->polls.load() == 2);
  daemon.stop();
}

TEST_CASE("schema migration: safe changes apply, lossy ones need --migrate, a failed one changes nothing", "[tables]") {
  Fixture f;
  f.start();
  f.set("orders_new", {{"symbol", "AAPL"}, {"qty", 1}});
  f.set("note", {{"text", "keep me"}});

  SECTION("a new table and a new nullable column are applied at start") {
    f.config["tables"]["extra"] = {{"columns", {{"id", "INTEGER PRIMARY KEY"}, {"v", "TEXT"}}}};
    f.config["tables"]["orders"]["columns"]["venue"] = "TEXT DEFAULT 'NYSE'";
    f.restart();
    CHECK(f.query("SELECT symbol, venue FROM orders") == Json::parse(R"([["AAPL", "NYSE"]])"));
    CHECK(f.query("SELECT COUNT(*) FROM extra") == Json::parse("[[0]]"));
  }
  SECTION("a dropped column is refused with its impact, then applied with migrate") {
    f.config["tables"]["orders"]["columns"].erase("price");
    f.config["services"]["orders"]["ops"]["new"][0]["fields"] = {"symbol", "qty"};
    try {
      f.restart();
      FAIL("the daemon started");
    } catch (const mktl::ConfigError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("dropped column price") && Catch::Contains("1 row") &&
                                           Catch::Contains("--migrate") && Catch::Contains("orders.json"));
    }
    CHECK(f.query("SELECT COUNT(*) FROM pragma_table_info('orders') WHERE name = 'price'") == Json::parse("[[1]]"));
    f.restart(true);
    CHECK(f.query("SELECT COUNT(*) FROM pragma_table_info('orders') WHERE name = 'price'") == Json::parse("[[0]]"));
    CHECK(f.query("SELECT symbol FROM orders") == Json::parse(R"([["AAPL"]])"));
    CHECK(error_type(f.set("orders_new", {{"symbol", "B"}, {"qty", 2}, {"price", 1}})) == "ValueError");
  }
  SECTION("a type change and a dropped table are listed; auto_migrate applies them") {
    f.config["tables"]["notes"]["columns"]["text"] = "BLOB NOT NULL";
    f.config["tables"].erase("fills");
    f.config["services"]["orders"]["ops"]["new"].erase(1);
    f.config["services"]["orders"]["ops"]["fill"].erase(1);
    try {
      f.restart();
      FAIL("the daemon started");
    } catch (const mktl::ConfigError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("type TEXT -> BLOB") && Catch::Contains("dropped table"));
    }
    f.config["auto_migrate"] = true;
    f.restart();
    CHECK(f.query("SELECT type FROM pragma_table_info('notes') WHERE name = 'text'") == Json::parse(R"([["BLOB"]])"));
    CHECK(f.query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'fills'") == Json::parse("[[0]]"));
    CHECK(f.query("SELECT text FROM notes") == Json::parse(R"([["keep me"]])"));
  }
  SECTION("a column whose default is not constant needs the table rebuilt") {
    f.config["tables"]["notes"]["columns"]["created"] = "TEXT DEFAULT CURRENT_TIMESTAMP";
    CHECK_THROWS_WITH(f.restart(), Catch::Contains("new column created"));
    f.restart(true);
    CHECK(f.query("SELECT text, created IS NOT NULL FROM notes") == Json::parse(R"([["keep me", 1]])"));
  }
  SECTION("a primary key change is lossy") {
    f.config["tables"]["notes"]["columns"]["id"] = "INTEGER";
    f.config["tables"]["notes"]["primary_key"] = {"text"};
    CHECK_THROWS_WITH(f.restart(), Catch::Contains("primary key"));
    f.restart(true);
    CHECK(f.query("SELECT text FROM notes") == Json::parse(R"([["keep me"]])"));
  }
  SECTION("a migration that fails leaves the file as it was") {
    f.set("note", {{"text", "dup"}});
    f.set("note", {{"text", "dup"}});
    f.config["tables"]["notes"]["columns"]["text"] = "TEXT NOT NULL UNIQUE";
    f.config["tables"]["notes"]["columns"].erase("id");
    f.config["tables"]["notes"]["columns"]["n"] = "INTEGER PRIMARY KEY";
    CHECK_THROWS_WITH(f.restart(true), Catch::Contains("rolled back"));
    CHECK(f.query("SELECT COUNT(*) FROM notes") == Json::parse("[[3]]"));
    CHECK(f.query("SELECT COUNT(*) FROM pragma_table_info('notes') WHERE name = 'id'") == Json::parse("[[1]]"));
  }
}

}  // namespace test_tables
