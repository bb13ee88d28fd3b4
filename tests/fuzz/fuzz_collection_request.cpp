// Fuzz target: requests to a daemon's tables and collections, through its
// whole request path in-process (detail::Runtime::exchange): SETs of record
// items (checked, committed by the writer, answered after the COMMIT) and
// GETs of a keyed, a table and a stream collection in every mode (snapshot
// with filter, maxcount and cursor; since; rowid; refresh; stats), with
// `where` and `publish` expressions. Input and checks: request_harness.hpp.
#include "request_harness.hpp"

namespace {

const char* const kCatalog = R"({"temp": {"type": "numeric", "initial": 1}})";

// Tables and services: record items (w_put, w_del) and a keyed, a table
// and a stream collection, with the expressions and GET modes they take.
const char* const kCollections = R"json({
  "batch_max_wait_ms": 0,
  "tables": {
    "rows": {"columns": {"id": "INTEGER PRIMARY KEY", "grp": "TEXT NOT NULL", "qty": "INTEGER NOT NULL",
                         "price": "REAL", "note": "TEXT"}},
    "log": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "row": "INTEGER NOT NULL", "what": "TEXT NOT NULL"}}
  },
  "services": {
    "w": {"protocol": "transaction", "ops": {
      "put": [{"table": "rows", "op_type": "upsert", "key": ["id"], "fields": ["id", "grp", "qty", "price", "note"]},
              {"table": "log", "op_type": "insert", "defaults": {"what": "put"}, "bind": {"row": "$0.id"}}],
      "del": [{"table": "rows", "op_type": "delete", "key": ["id"]},
              {"table": "log", "op_type": "insert", "defaults": {"what": "del"}, "bind": {"row": "$0.id"}}]
    }},
    "keyed": {"protocol": "subpub", "primary_table": "rows", "key": "id", "where": "qty > 0",
              "publish": {"value": "qty * coalesce(price, 0)"}, "filterable": ["grp", "qty"]},
    "table": {"protocol": "query", "primary_table": "rows", "change_log_size": 50},
    "stream": {"protocol": "stream", "primary_table": "log", "buffer_size": 100}
  }
})json";

// Every kRenewEvery inputs the daemon starts again from an empty home: its
// tables and the collections' rows would otherwise grow with every input
// (1,365 executions a second at first, 84 after 16,000, with 640 MB).
constexpr int kRenewEvery = 256;

mktl::fuzz::RequestTarget target(kCatalog, kCollections, kRenewEvery);

}  // namespace

MKTL_FUZZ_REQUEST_ENTRY_POINTS(target)
