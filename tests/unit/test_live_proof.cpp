// The proof of issue 11: a writer runs thousands of transactions (upserts
// and deletes of `items`, each appending to `events`) while CollectionViews
// of a keyed, a table and a stream collection join, leave, stall (their
// callback blocks, their queue overflows; or a blocking subscriber makes the
// Client's own queue overflow) and resume. At the end every view still
// watching equals the database file, read directly, and the changes each
// view applied have no missed and no duplicated seq.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <atomic>
#include <deque>
#include <map>
#include <optional>
#include <random>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_live_proof {

namespace {

using mktl::Json;

Json proof_config() {
  return Json::parse(R"({
    "batch_max_wait_ms": 1,
    "tables": {
      "items": {"columns": {"id": "INTEGER PRIMARY KEY", "grp": "TEXT NOT NULL", "qty": "INTEGER NOT NULL"}},
      "events": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "item": "INTEGER NOT NULL",
                             "what": "TEXT NOT NULL"}}
    },
    "services": {
      "w": {"protocol": "transaction", "ops": {
        "put": [{"table": "items", "op_type": "upsert", "key": ["id"], "fields": ["id", "grp", "qty"]},
                {"table": "events", "op_type": "insert", "defaults": {"what": "put"}, "bind": {"item": "$0.id"}}],
        "del": [{"table": "items", "op_type": "delete", "key": ["id"]},
                {"table": "events", "op_type": "insert", "defaults": {"what": "del"}, "bind": {"item": "$0.id"}}]
      }},
      "keyed": {"protocol": "subpub", "primary_table": "items", "key": "id"},
      "table": {"protocol": "query", "primary_table": "items", "change_log_size": 300},
      "stream": {"protocol": "stream", "primary_table": "events", "buffer_size": 100000}
    }
  })");
}

// Rows of the database file as a view holds them: {rowid: id, value: the row}.
std::vector<mktl::CollectionRow> db_rows(const std::string& path, const std::string& table) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  std::string sql = "SELECT * FROM " + table + " ORDER BY id";
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  std::vector<mktl::CollectionRow> rows;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    Json row = Json::object();
    for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
      const char* name = sqlite3_column_name(stmt, i);
      switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER: row[name] = sqlite3_column_int64(stmt, i); break;
        case SQLITE_FLOAT: row[name] = sqlite3_column_double(stmt, i); break;
        case SQLITE_NULL: row[name] = nullptr; break;
        default: row[name] = std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, i)));
      }
    }
    rows.push_back({row["id"], row});
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

// What one view reported, in order: its snapshot and resets (a new base
// seq) and each change's seq. Checks as it goes that keyed and table changes
// follow their base one by one and that a stream's only go up.
struct Ledger {
  std::string name;
  bool stream = false;
  std::mutex mutex;
  std::int64_t last = -1;
  std::size_t changes = 0, resets = 0;
  std::vector<std::string> faults;  // what broke the rules

  // Optional stall: the first change blocks until released.
  std::mutex* latch = nullptr;
  bool stalled_once = false;

  mktl::CollectionCallbacks callbacks() {
    mktl::CollectionCallbacks cb;
    cb.on_snapshot = [this](const std::vector<mktl::CollectionRow>&, std::int64_t seq) {
      std::lock_guard lock(mutex);
      last = seq;
    };
    cb.on_reset = [this](const std::vector<mktl::CollectionRow>&, std::int64_t seq) {
      std::lock_guard lock(mutex);
      ++resets;
      last = seq;
    };
    cb.on_change = [this](const mktl::CollectionChange& c) {
      {
        std::lock_guard lock(mutex);
        ++changes;
        bool in_order = stream ? c.seq > last : c.seq == last + 1;
        if (!in_order && faults.size() < 10)
          faults.push_back(name + ": seq " + std::to_string(c.seq) + " after " + std::to_string(last));
        last = c.seq;
      }
      if (latch && !stalled_once) {
        stalled_once = true;
        std::lock_guard wait(*latch);
      }
    };
    return cb;
  }
};

struct Watcher {
  std::unique_ptr<Ledger> ledger = std::make_unique<Ledger>();
  std::optional<mktl::CollectionView> view;
};

}  // namespace

TEST_CASE("live proof: views of keyed, table and stream collections equal the database after thousands of "
          "transactions, with joins, leaves and stalls",
          "[live-proof]") {
  constexpr int kTransactions = 3000;
  constexpr int kInFlight = 32;
  constexpr int kIds = 200;

  test::TempDir home;
  auto options = test::isolated(home);
  options.collections = proof_config();
  options.collections_source = "proof.json";
  mktl::Daemon daemon("proof", "proof1", Json::object(), options);
  daemon.start();
  const std::string db = home.str() + "/daemon/collections/proof/proof1.sqlite3";

  mktl::Client writer(test::client_options(home));
  writer.connect(daemon.rep_endpoint(), "proof");
  mktl::Client readers(test::client_options(home));
  readers.connect(daemon.rep_endpoint(), "proof");
  // A client whose callback queue is tiny, with a subscriber that blocks:
  // the client drops broadcasts (Client::dropped_broadcasts).
  auto small = test::client_options(home);
  small.callback_queue = 16;
  mktl::Client crowded(small);
  crowded.connect(daemon.rep_endpoint(), "proof");

  const std::vector<std::string> kinds = {"keyed", "table", "stream"};
  std::mutex stall;  // held while the stalled views' callbacks block
  std::mutex block;  // held while the crowded client's plain subscriber blocks
  std::atomic<bool> blocking{false};
  std::map<std::string, std::vector<std::unique_ptr<Watcher>>> watchers;  // by kind; kept to the end
  auto watch = [&](mktl::Client& client, const std::string& kind, const std::string& name, std::size_t queue_limit,
                   std::mutex* latch) -> Watcher& {
    auto w = std::make_unique<Watcher>();
    w->ledger->name = kind + "/" + name;
    w->ledger->stream = kind == "stream";
    w->ledger->latch = latch;
    mktl::CollectionOptions o;
    o.queue_limit = queue_limit;
    w->view.emplace(client, "proof." + kind, w->ledger->callbacks(), o);
    CHECK(w->view->kind() == kind);
    watchers[kind].push_back(std::move(w));
    return *watchers[kind].back();
  };

  std::unique_lock stalled(stall);  // released (at the latest) before the views go
  for (const auto& kind : kinds) {
    watch(readers, kind, "from-start", 100000, nullptr);
    watch(readers, kind, "stalled", 20, &stall);
    watch(crowded, kind, "crowded", 100000, nullptr);
  }
  auto blocker = crowded.subscribe("proof.table", [&](const std::string&, const mktl::Reading&) {
    if (blocking) std::lock_guard wait(block);
  });
  std::unique_lock blocked(block);  // released (at the latest) before the blocker goes

  std::mt19937 random(11);
  std::deque<mktl::Future<void>> in_flight;
  std::size_t failed = 0;
  auto settle = [&](std::size_t keep) {
    while (in_flight.size() > keep) {
      try {
        in_flight.front().get();
      } catch (const mktl::Error& e) {
        if (e.type() != "ValueError") throw;
        ++failed;  // a delete of an id not there: the transaction rolls back as a whole
      }
      in_flight.pop_front();
    }
  };
  for (int i = 1; i <= kTransactions; ++i) {
    int id = static_cast<int>(random() % kIds) + 1;
    if (random() % 10 < 6) {
      Json data = {{"id", id}, {"grp", "g" + std::to_string(random() % 5)}, {"qty", static_cast<int>(random() % 1000)}};
      in_flight.push_back(writer.set_async("proof.w_put", mktl::Reading(data)));
    } else {
      in_flight.push_back(writer.set_async("proof.w_del", mktl::Reading(Json{{"id", id}})));
    }
    settle(kInFlight);
    // Views join and leave while the writer runs; the stalled ones resume.
    if (i == kTransactions / 5) {
      blocking = true;
    } else if (i == kTransactions / 4) {
      for (const auto& kind : kinds) watch(readers, kind, "joined-25", 100000, nullptr);
    } else if (i == kTransactions * 3 / 10) {
      for (const auto& kind : kinds) watch(readers, kind, "left-70", 100000, nullptr);
    } else if (i == kTransactions / 2) {
      for (const auto& kind : kinds) watch(readers, kind, "joined-50", 50, nullptr);
    } else if (i == kTransactions * 6 / 10) {
      stalled.unlock();
      blocking = false;
      blocked.unlock();
    } else if (i == kTransactions * 7 / 10) {
      for (const auto& kind : kinds)
        for (auto& w : watchers[kind])
          if (w->ledger->name == kind + "/left-70") w->view.reset();
    }
  }
  settle(0);
  CHECK(failed < static_cast<std::size_t>(kTransactions) / 2);
  // Every committed transaction appended one event.
  CHECK(db_rows(db, "events").size() == kTransactions - failed);
  CHECK(crowded.dropped_broadcasts() > 0);

  for (const auto& kind : kinds) {
    const auto expected = db_rows(db, kind == "stream" ? "events" : "items");
    const auto final_seq = readers.call("GET", "proof." + kind).at("seq").get<std::int64_t>();
    INFO(kind << " at seq " << final_seq << ", " << expected.size() << " rows");
    CHECK(expected.size() > 0);
    for (auto& w : watchers[kind]) {
      auto& ledger = *w->ledger;
      INFO(ledger.name);
      {
        std::lock_guard lock(ledger.mutex);
        CHECK(ledger.faults.empty());
        for (const auto& fault : ledger.faults) UNSCOPED_INFO(fault);
      }
      if (!w->view) continue;  // left: its changes were checked as they came
      REQUIRE(w->view->wait_for_seq(final_seq, 30));
      CHECK(w->view->seq() == final_seq);
      CHECK(w->view->rows() == expected);
      if (ledger.name == kind + "/stalled") CHECK(w->view->gaps() + w->view->resets() > 0);
      if (ledger.name == kind + "/crowded" && kind == "table") CHECK(w->view->gaps() > 0);
    }
  }
  // The views must go before their clients.
  watchers.clear();
  blocker.cancel();
}

}  // namespace test_live_proof
