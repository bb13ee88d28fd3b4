// Live collections (issue 11): keyed (subpub), stream and table (query)
// items served by a real daemon over real sockets from a real SQLite file:
// broadcasts, snapshots, catch-up with `since`, rowid, refresh, JOIN
// re-reads, failing expressions and the change bus overflowing.
// The contract is LIVE.md (see live.hpp).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_live {

namespace {

using mktl::Json;

Json live_config() {
  return Json::parse(R"({
    "tables": {
      "orders": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "symbol": "TEXT NOT NULL",
                             "qty": "INTEGER NOT NULL", "status": "TEXT DEFAULT 'new'"}},
      "fills": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "order_id": "INTEGER NOT NULL",
                            "qty": "INTEGER NOT NULL"}},
      "prices": {"columns": {"symbol": "TEXT PRIMARY KEY", "price": "REAL NOT NULL"}},
      "events": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "text": "TEXT NOT NULL"}}
    },
    "services": {
      "orders": {"protocol": "transaction", "ops": {
        "new": [{"table": "orders", "op_type": "insert", "fields": ["symbol", "qty"]}],
        "fill": [{"table": "fills", "op_type": "insert", "fields": ["order_id", "qty"]}],
        "status": [{"table": "orders", "op_type": "update", "key": ["id"], "fields": ["status"]}],
        "rename": [{"table": "orders", "op_type": "update", "key": ["id"], "fields": ["symbol"]}],
        "cancel": [{"table": "orders", "op_type": "delete", "key": ["id"]}],
        "pair": [{"table": "orders", "op_type": "insert", "fields": ["symbol", "qty"]},
                 {"table": "fills", "op_type": "insert", "fields": ["qty"], "bind": {"order_id": "$0.id"}}]
      }},
      "quote": {"protocol": "transaction", "table": "prices", "op_type": "upsert", "key": ["symbol"],
                "fields": ["symbol", "price"]},
      "event": {"protocol": "transaction", "table": "events", "op_type": "insert", "fields": ["text"]},
      "quotes": {"protocol": "subpub", "primary_table": "prices", "key": "symbol", "where": "price >= 0",
                 "defaults": {"price": "0"}},
      "by_symbol": {"protocol": "subpub", "primary_table": "orders", "key": "symbol"},
      "live": {"protocol": "query", "primary_table": "orders", "filterable": ["symbol", "qty"], "change_log_size": 5},
      "filled": {"protocol": "query", "primary_table": "orders", "watch_tables": ["orders", "fills"],
                 "sql": "SELECT o.id AS id, o.symbol AS symbol, COALESCE(SUM(f.qty), 0) AS filled FROM orders o LEFT JOIN fills f ON f.order_id = o.id GROUP BY o.id"},
      "per": {"protocol": "query", "primary_table": "orders", "publish": {"symbol": "symbol", "per": "100 / qty"}},
      "log": {"protocol": "stream", "primary_table": "events", "buffer_size": 3}
    }
  })");
}

struct Fixture {
  test::TempDir home;
  Json config = live_config();
  std::unique_ptr<mktl::Daemon> daemon;
  std::unique_ptr<test::RawDealer> dealer;
  int next_id = 0;

  void start() {
    auto options = test::isolated(home);
    options.collections = config;
    options.collections_source = "live.json";
    daemon = std::make_unique<mktl::Daemon>("book", "book1", Json::object(), options);
    daemon->start();
    dealer = std::make_unique<test::RawDealer>(daemon->rep_endpoint());
  }

  Json raw(const std::string& type, const std::string& key, const std::string& payload) {
    auto id = std::to_string(++next_id);
    auto rep = dealer->roundtrip(id, type, "book." + key, payload);
    REQUIRE(rep);
    return Json::parse(rep->at(5));
  }
  Json request(const std::string& type, const std::string& key, const Json& payload) {
    return raw(type, key, payload.is_null() ? "" : payload.dump());
  }
  // A transaction; returns its ref.
  std::string set(const std::string& key, const Json& value) {
    Json rep = request("SET", key, {{"value", value}});
    REQUIRE_FALSE(rep.contains("error"));
    return rep.at("ref").get<std::string>();
  }
  Json get(const std::string& key, const Json& payload = nullptr) { return request("GET", key, payload); }
  std::int64_t seq(const std::string& key) { return get(key).at("seq").get<std::int64_t>(); }

  // Another program writing to the database file.
  void write_sql(const std::string& sql) {
    auto path = home.str() + "/daemon/collections/book/book1.sqlite3";
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* error = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string text = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    INFO(text);
    REQUIRE(rc == SQLITE_OK);
  }
};

// Broadcasts of one topic, read in order.
struct Listener {
  test::RawSub sub;
  Listener(Fixture& f, const std::string& topic) : sub(f.daemon->pub_endpoint(), topic) {}

  // Makes broadcasts with `poke` until one arrives: past the slow-joiner window.
  void join(const std::function<void(int)>& poke) {
    bool got = false;
    REQUIRE(test::until_subscribed(poke, [&] {
      while (sub.recv(std::chrono::milliseconds(0))) got = true;
      return got;
    }));
    while (sub.recv(std::chrono::milliseconds(100))) {
    }
  }
  // The next broadcast payload satisfying `match` (others skipped), or null.
  Json next(const std::function<bool(const Json&)>& match = [](const Json&) { return true; }) {
    for (int i = 0; i < 200; ++i) {
      auto m = sub.recv(std::chrono::seconds(10));
      if (!m) return nullptr;
      Json payload = Json::parse(m->at(2));
      if (match(payload)) return payload;
    }
    return nullptr;
  }
};

std::string error_type(const Json& rep) { return rep.contains("error") ? rep["error"].value("type", "") : ""; }
std::string error_text(const Json& rep) { return rep.contains("error") ? rep["error"].value("text", "") : ""; }

Json new_order(const std::string& symbol, int qty) { return {{"symbol", symbol}, {"qty", qty}}; }

}  // namespace

TEST_CASE("live: collection items are read-only items described as collections", "[live]") {
  Fixture f;
  f.start();
  for (auto key : {"quotes", "by_symbol", "live", "filled", "per", "log"}) {
    const Json& d = f.daemon->items().at(key);
    CHECK(d.at("type") == "collection");
    CHECK(d.at("settable") == false);
  }
  CHECK(f.daemon->items().at("log").at("collection").at("kind") == "stream");
  Json rep = f.request("SET", "live", {{"value", 1}});
  CHECK(error_type(rep) == "TypeError");
  Json plain = f.get("live");
  CHECK(plain.at("value").is_null());
  CHECK(plain.at("seq") == 0);
  CHECK(plain.at("count") == 0);
  CHECK(plain.at("epoch").get<std::string>().size() > 0);
}

TEST_CASE("live: a keyed collection publishes insert, update and a delete when a row stops matching where", "[live]") {
  Fixture f;
  f.start();
  Listener all(f, "book.quotes.");
  Listener row(f, "row:book.quotes.A%2EB.");
  all.join([&](int i) { f.set("quote", {{"symbol", "WARM"}, {"price", i}}); });
  row.join([&](int i) { f.set("quote", {{"symbol", "A.B"}, {"price", i}}); });
  while (all.sub.recv(std::chrono::milliseconds(100))) {
  }
  std::int64_t s0 = f.seq("quotes");
  std::string epoch = f.get("quotes").at("epoch");

  std::string r1 = f.set("quote", {{"symbol", "AAPL"}, {"price", 10.5}});
  Json m = all.next();
  REQUIRE_FALSE(m.is_null());
  CHECK(m.at("rowid") == "AAPL");
  CHECK(m.at("op") == "insert");
  CHECK(m.at("seq") == s0 + 1);
  CHECK(m.at("ref") == r1);
  CHECK(m.at("exists") == true);
  CHECK(m.at("epoch") == epoch);
  CHECK(m.at("value") == Json({{"symbol", "AAPL"}, {"price", 10.5}}));

  std::string r2 = f.set("quote", {{"symbol", "AAPL"}, {"price", 11}});
  m = all.next();
  CHECK(m.at("op") == "update");
  CHECK(m.at("seq") == s0 + 2);
  CHECK(m.at("ref") == r2);
  CHECK(m.at("value").at("price") == 11.0);

  // A negative price fails `where`: the row is gone for subscribers.
  std::string r3 = f.set("quote", {{"symbol", "AAPL"}, {"price", -1}});
  m = all.next();
  CHECK(m.at("op") == "delete");
  CHECK(m.at("seq") == s0 + 3);
  CHECK(m.at("exists") == false);
  CHECK(m.at("ref") == r3);
  CHECK(m.at("value").at("price") == 11.0);  // the last known row
  CHECK(f.get("quotes", {{"rowid", "AAPL"}}).at("exists") == false);

  // The row topic carries only its row, with its id percent-encoded.
  std::string r4 = f.set("quote", {{"symbol", "A.B"}, {"price", 99}});
  Json one = row.next([&](const Json& p) { return p.at("ref") == r4; });
  REQUIRE_FALSE(one.is_null());
  CHECK(one.at("rowid") == "A.B");
  CHECK(one.at("value").at("price") == 99.0);
}

TEST_CASE("live: a table collection publishes each change with its seq, rowid and ref", "[live]") {
  Fixture f;
  f.start();
  Listener l(f, "book.live.");
  l.join([&](int i) { f.set("orders_new", new_order("W", i + 1)); });
  std::int64_t s0 = f.seq("live");

  std::string r1 = f.set("orders_new", new_order("IBM", 5));
  Json m = l.next();
  REQUIRE_FALSE(m.is_null());
  CHECK(m.at("op") == "insert");
  CHECK(m.at("seq") == s0 + 1);
  CHECK(m.at("ref") == r1);
  Json id = m.at("rowid");
  CHECK(m.at("value").at("id") == id);
  CHECK(m.at("value").at("status") == "new");

  std::string r2 = f.set("orders_status", {{"id", id}, {"status", "open"}});
  m = l.next();
  CHECK(m.at("op") == "update");
  CHECK(m.at("seq") == s0 + 2);
  CHECK(m.at("ref") == r2);
  CHECK(m.at("value").at("status") == "open");

  std::string r3 = f.set("orders_cancel", {{"id", id}});
  m = l.next();
  CHECK(m.at("op") == "delete");
  CHECK(m.at("seq") == s0 + 3);
  CHECK(m.at("exists") == false);
  CHECK(m.at("rowid") == id);
  CHECK(m.at("ref") == r3);

  Json plain = f.get("live");
  CHECK(plain.at("seq") == s0 + 3);
  CHECK(plain.at("ref") == r3);
  CHECK(f.get("live", {{"rowid", id}}).at("exists") == false);
}

TEST_CASE("live: snapshots page with maxcount and cursor, filter in the daemon, and carry their seq", "[live]") {
  Fixture f;
  f.start();
  for (int i = 1; i <= 5; ++i) f.set("orders_new", new_order(i % 2 ? "ODD" : "EVEN", i));
  Json all = f.get("live", {{"snapshot", true}});
  CHECK(all.at("value").size() == 5);
  CHECK(all.at("count") == 5);
  CHECK(all.at("hasmore") == false);
  CHECK(all.at("seq") == f.seq("live"));
  CHECK(all.at("seq") == 5);

  Json rows = Json::array();
  Json page = f.get("live", {{"snapshot", true}, {"maxcount", 2}});
  int pages = 1;
  for (; page.at("hasmore") == true && pages < 10; ++pages) {
    CHECK(page.at("value").size() == 2);
    CHECK(page.at("count") == 5);
    for (auto& r : page.at("value")) rows.push_back(r);
    page = f.get("live", {{"snapshot", true}, {"maxcount", 2}, {"cursor", page.at("cursor")}});
  }
  for (auto& r : page.at("value")) rows.push_back(r);
  CHECK(pages == 3);
  CHECK(rows == all.at("value"));

  Json odd = f.get("live", {{"snapshot", true}, {"filter", "symbol == 'ODD' AND qty > 1"}});
  CHECK(odd.at("count") == 2);
  CHECK(odd.at("rowids").size() == 2);
  for (auto& r : odd.at("value")) CHECK(r.at("symbol") == "ODD");

  // A field outside `filterable`, a syntax error, bad paging: ValueErrors that say so.
  Json bad = f.get("live", {{"snapshot", true}, {"filter", "status == 'new'"}});
  CHECK(error_type(bad) == "ValueError");
  CHECK_THAT(error_text(bad), Catch::Contains("status") && Catch::Contains("filterable"));
  bad = f.get("live", {{"snapshot", true}, {"filter", "qty >"}});
  CHECK(error_type(bad) == "ValueError");
  CHECK_THAT(error_text(bad), Catch::Contains("filter"));
  CHECK(error_type(f.get("live", {{"snapshot", true}, {"filter", 3}})) == "ValueError");
  CHECK(error_type(f.get("live", {{"snapshot", true}, {"maxcount", 0}})) == "ValueError");
  CHECK(error_type(f.get("live", {{"snapshot", true}, {"cursor", Json::object()}})) == "ValueError");
  CHECK(error_type(f.get("log", {{"snapshot", true}, {"cursor", "x"}})) == "ValueError");
  // A filter failing on some rows leaves them out and says how many.
  Json partial = f.get("live", {{"snapshot", true}, {"filter", "symbol + qty == 'x'"}});
  CHECK(partial.at("count") == 0);
  CHECK(partial.at("errors") == 5);
}

TEST_CASE("live: since gives the changes in order, or a reset when they are not held", "[live]") {
  Fixture f;
  f.start();
  std::int64_t s0 = f.seq("live");
  std::string r1 = f.set("orders_new", new_order("A", 1));
  std::string r2 = f.set("orders_new", new_order("B", 2));
  std::string r3 = f.set("orders_new", new_order("C", 3));
  Json since = f.get("live", {{"since", s0}});
  REQUIRE_FALSE(since.contains("reset"));
  REQUIRE(since.at("value").size() == 3);
  CHECK(since.at("seq") == s0 + 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(since.at("value").at(i).at("seq") == s0 + 1 + i);
    CHECK(since.at("value").at(i).at("op") == "insert");
  }
  CHECK(since.at("value").at(0).at("ref") == r1);
  CHECK(since.at("value").at(2).at("value").at("symbol") == "C");
  CHECK(f.get("live", {{"since", s0 + 3}}).at("value").empty());

  // By transaction ref: the changes after that transaction.
  Json by_ref = f.get("live", {{"since", r1}});
  REQUIRE(by_ref.at("value").size() == 2);
  CHECK(by_ref.at("value").at(0).at("ref") == r2);
  CHECK(by_ref.at("value").at(1).at("ref") == r3);
  CHECK(f.get("live", {{"since", r3}}).at("value").empty());

  // Another epoch: a reset with the rows.
  Json other = f.get("live", {{"since", s0}, {"epoch", "another"}});
  CHECK(other.at("reset") == true);
  CHECK(other.at("value").size() == 3);
  CHECK(other.at("rowids").size() == 3);
  CHECK(other.at("seq") == s0 + 3);
  CHECK(f.get("live", {{"since", s0}, {"epoch", f.get("live").at("epoch")}}).at("value").size() == 3);

  // More than change_log_size (5) ago: a reset.
  for (int i = 0; i < 4; ++i) f.set("orders_new", new_order("D", i + 1));
  Json old = f.get("live", {{"since", s0}});
  CHECK(old.at("reset") == true);
  CHECK(old.at("value").size() == 7);
  CHECK(f.get("live", {{"since", s0 + 2}}).at("value").size() == 5);  // the oldest still held
  CHECK(f.get("live", {{"since", "no such ref"}}).at("reset") == true);

  // Bad requests are errors, never a crash.
  CHECK(error_type(f.get("live", {{"since", 1.5}})) == "TypeError");
  CHECK(error_type(f.get("live", {{"since", Json::array()}})) == "TypeError");
  CHECK(error_type(f.get("live", {{"since", 1}, {"epoch", 5}})) == "TypeError");
  CHECK(error_type(f.get("live", {{"snapshot", "yes"}})) == "TypeError");
  CHECK(error_type(f.raw("GET", "live", "[1, 2]")) == "ValueError");
  CHECK(error_type(f.raw("GET", "live", "{not json")) == "ValueError");
  CHECK(error_type(f.get("live", {{"rowid", Json::object()}})) == "ValueError");
  CHECK(f.seq("live") == s0 + 7);  // still serving
}

TEST_CASE("live: a stream numbers rows by rowid and serves since older than its buffer from SQLite", "[live]") {
  Fixture f;
  f.start();
  Listener l(f, "book.log.");
  l.join([&](int i) { f.set("event", {{"text", "warm" + std::to_string(i)}}); });
  std::int64_t s0 = f.seq("log");
  CHECK(f.get("log").at("epoch") == "");

  std::string ref = f.set("event", {{"text", "first"}});
  Json m = l.next();
  REQUIRE_FALSE(m.is_null());
  CHECK(m.at("seq") == s0 + 1);
  CHECK(m.at("rowid") == s0 + 1);
  CHECK(m.at("ref") == ref);
  CHECK(m.at("value").at("text") == "first");
  CHECK(m.at("op") == "insert");
  for (int i = 0; i < 4; ++i) f.set("event", {{"text", "e" + std::to_string(i)}});
  std::int64_t top = s0 + 5;
  CHECK(f.seq("log") == top);

  // The ring holds 3: since top-2 comes from it, with refs.
  Json recent = f.get("log", {{"since", top - 2}});
  REQUIRE(recent.at("value").size() == 2);
  CHECK(recent.at("value").at(1).at("seq") == top);
  CHECK(recent.at("value").at(1).at("ref").is_string());
  // Older: from SQLite, every row still in the table, in order.
  Json older = f.get("log", {{"since", s0}});
  REQUIRE_FALSE(older.contains("reset"));
  REQUIRE(older.at("value").size() == 5);
  for (int i = 0; i < 5; ++i) CHECK(older.at("value").at(i).at("seq") == s0 + 1 + i);
  CHECK(older.at("value").at(0).at("value").at("text") == "first");
  CHECK(f.get("log", {{"snapshot", true}}).at("value").size() == 3);

  // rowid: from the ring, from SQLite, or absent.
  CHECK(f.get("log", {{"rowid", top}}).at("exists") == true);
  Json first = f.get("log", {{"rowid", s0 + 1}});
  CHECK(first.at("exists") == true);
  CHECK(first.at("value").at("text") == "first");
  CHECK(f.get("log", {{"rowid", top + 100}}).at("exists") == false);
}

TEST_CASE("live: rowid of a keyed collection, with defaults for a key that has no row", "[live]") {
  Fixture f;
  f.start();
  f.set("quote", {{"symbol", "MSFT"}, {"price", 400}});
  Json got = f.get("quotes", {{"rowid", "MSFT"}});
  CHECK(got.at("exists") == true);
  CHECK(got.at("value").at("price") == 400.0);
  CHECK(got.at("seq") == f.seq("quotes"));
  Json none = f.get("quotes", {{"rowid", "NONE"}});
  CHECK(none.at("exists") == false);
  CHECK(none.at("value") == Json({{"price", 0}}));
}

TEST_CASE("live: refresh re-reads SQLite and publishes what changed behind the daemon's back", "[live]") {
  Fixture f;
  f.start();
  f.set("orders_new", new_order("X", 1));
  std::int64_t s0 = f.seq("live");
  f.write_sql("INSERT INTO orders (symbol, qty) VALUES ('Y', 2); UPDATE orders SET qty = 9 WHERE symbol = 'X'");
  CHECK(f.seq("live") == s0);  // not seen: no transaction of ours
  Json plain = f.get("live", {{"refresh", true}});
  CHECK(plain.at("seq") == s0 + 2);
  CHECK(plain.at("count") == 2);
  Json changes = f.get("live", {{"since", s0}}).at("value");
  REQUIRE(changes.size() == 2);
  CHECK(changes.at(0).at("op") == "update");
  CHECK(changes.at(0).at("value").at("qty") == 9);
  CHECK(changes.at(1).at("op") == "insert");
  CHECK(changes.at(1).at("value").at("symbol") == "Y");
  CHECK(f.get("live", {{"refresh", true}}).at("seq") == s0 + 2);  // nothing new
}

TEST_CASE("live: a JOIN query is read again when a joined table changes", "[live]") {
  Fixture f;
  f.start();
  Listener l(f, "book.filled.");
  l.join([&](int i) { f.set("orders_new", new_order("J", i + 1)); });
  Json order = f.get("filled", {{"snapshot", true}}).at("rowids").at(0);
  std::int64_t s0 = f.seq("filled");
  std::string ref = f.set("orders_fill", {{"order_id", order}, {"qty", 7}});
  Json m = l.next([&](const Json& p) { return p.at("ref") == ref; });
  REQUIRE_FALSE(m.is_null());
  CHECK(m.at("op") == "update");
  CHECK(m.at("seq") == s0 + 1);
  CHECK(m.at("rowid") == order);
  CHECK(m.at("value").at("filled") == 7);
  f.set("orders_fill", {{"order_id", order}, {"qty", 3}});
  CHECK(f.get("filled", {{"rowid", order}}).at("value").at("filled") == 10);
}

TEST_CASE("live: a publish expression failing on some rows leaves them out and counts them", "[live]") {
  Fixture f;
  f.start();
  f.set("orders_new", new_order("A", 4));
  f.set("orders_new", new_order("ZERO", 0));  // 100 / 0 fails
  f.set("orders_new", new_order("B", 50));
  Json snap = f.get("per", {{"snapshot", true}});
  CHECK(snap.at("count") == 2);
  for (auto& r : snap.at("value")) CHECK(r.at("symbol") != "ZERO");
  CHECK(snap.at("value").at(0).at("per") == 25.0);
  Json stats = f.get("per", {{"stats", true}}).at("value");
  CHECK(stats.at("errors") == 1);
  CHECK(stats.at("count") == 2);
  CHECK(stats.at("published") == 2);
  CHECK(f.get("live", {{"stats", true}}).at("value").at("errors") == 0);
}

TEST_CASE("live: rows already in the tables are loaded at start", "[live]") {
  Fixture f;
  f.start();
  for (int i = 0; i < 4; ++i) f.set("event", {{"text", "e" + std::to_string(i)}});
  f.set("orders_new", new_order("KEEP", 1));
  f.dealer.reset();
  f.daemon.reset();
  f.start();
  CHECK(f.get("live", {{"snapshot", true}}).at("value").at(0).at("symbol") == "KEEP");
  CHECK(f.seq("live") == 0);
  CHECK(f.seq("log") == 4);  // a stream's seq is durable
  CHECK(f.get("log", {{"snapshot", true}}).at("rowids") == Json::array({2, 3, 4}));
  CHECK(f.get("log", {{"since", 0}}).at("value").size() == 4);
}

TEST_CASE("live: a full change bus never blocks the writer, and every collection resets", "[live]") {
  Fixture f;
  f.config["change_bus_size"] = 1;
  f.start();
  Listener l(f, "book.live.");
  l.join([&](int i) { f.set("orders_new", new_order("W", i + 1)); });
  std::uint64_t before = f.get("live", {{"stats", true}}).at("value").at("overflows");
  std::int64_t s0 = f.seq("live");
  // Two watched changes in one transaction can never fit a bus of one.
  f.set("orders_pair", new_order("BIG", 3));
  Json reset = l.next([&](const Json& p) { return p.contains("reset") && p.at("seq") > s0; });
  REQUIRE_FALSE(reset.is_null());
  CHECK(reset.at("reset") == true);
  CHECK(reset.at("value").is_null());
  CHECK(reset.at("epoch") == f.get("live").at("epoch"));
  CHECK(f.get("live", {{"stats", true}}).at("value").at("overflows") == before + 1);
  // The rows were read again from SQLite, and a client behind the reset is told to reset.
  CHECK(f.get("live", {{"snapshot", true}, {"filter", "symbol == 'BIG'"}}).at("count") == 1);
  CHECK(f.get("filled", {{"snapshot", true}}).at("value").back().at("filled") == 3);
  CHECK(f.get("live", {{"since", s0}}).at("reset") == true);
  // And the collections follow changes again.
  f.set("orders_new", new_order("AFTER", 1));
  Json after = l.next([](const Json& p) { return !p.contains("reset"); });
  REQUIRE_FALSE(after.is_null());
  CHECK(after.at("value").at("symbol") == "AFTER");
  CHECK(after.at("seq") == reset.at("seq").get<std::int64_t>() + 1);
}

TEST_CASE("live: keyed rows sharing a key, where a row moved to another key or deleted leaves the key to the others", "[live]") {
  Fixture f;
  f.start();
  f.set("orders_new", new_order("IBM", 1));
  f.set("orders_new", new_order("IBM", 2));
  Json ids = f.get("live", {{"snapshot", true}}).at("rowids");
  REQUIRE(ids.size() == 2);
  CHECK(f.get("by_symbol", {{"rowid", "IBM"}}).at("value").at("qty") == 2);  // the last written
  std::int64_t s0 = f.seq("by_symbol");

  std::string moved = f.set("orders_rename", {{"id", ids[1]}, {"symbol", "MSFT"}});
  CHECK(f.get("by_symbol", {{"rowid", "IBM"}}).at("value").at("qty") == 1);
  CHECK(f.get("by_symbol", {{"rowid", "MSFT"}}).at("value").at("qty") == 2);
  Json changes = f.get("by_symbol", {{"since", s0}}).at("value");
  REQUIRE(changes.size() == 2);
  CHECK(changes[0].at("rowid") == "IBM");
  CHECK(changes[0].at("op") == "update");
  CHECK(changes[1].at("rowid") == "MSFT");
  CHECK(changes[1].at("op") == "insert");
  CHECK(changes[1].at("ref") == moved);

  f.set("orders_cancel", {{"id", ids[0]}});
  Json gone = f.get("by_symbol", {{"since", s0 + 2}}).at("value");
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].at("op") == "delete");
  CHECK(gone[0].at("rowid") == "IBM");
  CHECK(f.get("by_symbol", {{"snapshot", true}}).at("rowids") == Json::array({"MSFT"}));
}

}  // namespace test_live
