// The collections' database: the configured SQLite tables, the schema
// migration that brings a file to the configuration, and the one writer
// thread that runs transactions (record item SETs) in batches.
//
// Durability promise: a transaction's `done` callback reports success only
// after the COMMIT that holds it returned and the WAL was then synced to
// disk (fdatasync), so an answered transaction survives kill -9 and power
// loss, as far as the disk honours fsync: what synchronous=FULL promises.
// The connection runs with synchronous=NORMAL and the completion thread does
// the sync, one for every batch committed since its last one, so the writer
// runs the next batch while the disk works. (A GET by ref, or a collection's
// read of SQLite, may see a transaction in that short interval before it is
// synced; its REP and its broadcasts never come before.)
//
// Batching (group commit): requests that arrive while the writer is busy
// share the next COMMIT, up to `batch_max`, each of several ops in its own
// SAVEPOINT, so one failing transaction never disturbs the others (a one-op
// transaction needs none: SQLite undoes a failed statement; only a failure to
// log the batch, an I/O error, rolls back the whole batch). The writer never
// waits for a batch to fill: while it commits one batch, the clients send the
// next. Only a request that finds itself alone after a batch that had company
// waits, at most `batch_wait_ms`, for a second one; a lone client is never
// delayed. Only the arrival the writer waits for wakes it.
//
// Threading: submit(), lookup(), last(), select() and stats() may be called
// from any thread at once. The commit listener and the `done` callbacks run
// on the tables' completion thread, in commit order, while the writer goes on
// with the next batch: they must not block.
#pragma once

#include "collections/config.hpp"

#include <mktl/json.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mktl::persist {

// One row changed by a committed transaction (for the collections' change bus).
struct Change {
  std::string table;
  collections::OpType op;
  Json row;  // after the change; for a delete, the row as it was
};

struct Committed {
  std::string ref;
  std::int64_t seq = 0;  // position in the transaction log (+1 per committed transaction)
  double time = 0;
  // JSON text, encoded once on the writer: an array with, per op, its
  // RETURNING row, an array when it changed several, null for none.
  std::string rows;
  bool duplicate = false;  // the ref had committed before: this is that result, nothing ran again
  // The rows changed, for the change listener only (empty when none is set).
  std::vector<Change> changes;

  // {"ref", "rows", "seq", "time"} (+ "duplicate"): the REP value and the
  // broadcast, as JSON text (built from `rows` without parsing it) or parsed.
  // `time_text`: `time` as JSON text, when the caller has it already.
  std::string value_json() const;
  void append_value_json(std::string& out, std::string_view time_text) const;
  Json to_json() const;
};

struct TablesOptions {
  std::string path;        // the database file (its directory is created)
  std::string source;      // the configuration file, named in errors
  double batch_wait_ms = 2.0;
  int batch_max = 500;
  bool migrate = false;    // apply changes that can lose data
};

// What a migration plan found: applied, or refused.
struct SchemaChange {
  std::string table;
  std::string what;        // "new table", "column price: type REAL -> INTEGER", ...
  bool lossy = false;      // can lose data: needs --migrate or auto_migrate
  std::int64_t rows = 0;   // rows affected, for lossy changes
  std::string text() const;
};

class Tables {
 public:
  // Opens (creating) the file, compares its tables with the configuration
  // and migrates: safe changes are applied and logged; changes that can lose
  // data only with options.migrate, else ConfigError listing each with its
  // impact and the way forward. The migration is one transaction.
  // RuntimeError for a file that cannot be used.
  static std::unique_ptr<Tables> open(const collections::Config& config, TablesOptions options);
  // Commits what is queued, then stops the writer.
  ~Tables();
  Tables(const Tables&) = delete;
  Tables& operator=(const Tables&) = delete;

  // The changes the last open() applied (for logs and tests).
  const std::vector<SchemaChange>& applied() const;

  using Done = std::function<void(std::exception_ptr error, const Committed* result)>;

  // Checks `data` against the op set (unknown, missing or mistyped fields
  // throw ValueError/TypeError/KeyError here, before anything is queued),
  // then queues the transaction; `done` runs after its COMMIT with the
  // result, or with the error that rolled it back. An empty `ref` gets a new
  // one; a ref that already committed returns that result (duplicate).
  // `set` must outlive the Tables.
  void submit(const collections::OpSet& set, Json data, std::string ref, Done done);

  // A committed transaction by ref, of record item `item` (any item when
  // empty); null when unknown or no longer kept.
  std::optional<Committed> lookup(const std::string& ref, const std::string& item = {});
  // The last committed transaction of a record item, if any is kept.
  std::optional<Committed> last(const std::string& item);

  // Called on the completion thread after each successful COMMIT, before the
  // transactions' `done` callbacks, with the transactions it committed
  // (duplicates left out) in commit order: the collections' change feed.
  // Must not block. Set it before the first submit(): the writer records
  // each transaction's `changes` only while a listener is set.
  // It may move each transaction's `changes` out (nothing reads them after).
  using Listener = std::function<void(const std::vector<Committed*>& committed)>;
  void on_commit(Listener listener);
  // Waits until every transaction submitted so far has been answered (its
  // `done` has run). For the fuzzer's in-process exchange (tests/fuzz/).
  void wait_idle();

  // Runs one SELECT on a read connection with `params` bound to ?1, ?2, ...
  // and returns its rows as objects {column: value}. It sees every COMMIT
  // that returned before it started. ValueError for SQL that does not
  // prepare, RuntimeError for a failed read. Any thread (reads are serialised).
  std::vector<Json> select(const std::string& sql, const std::vector<Json>& params = {});

  struct Stats {
    std::uint64_t commits = 0;
    std::uint64_t transactions = 0;  // committed
    std::uint64_t failed = 0;        // rolled back
  };
  Stats stats() const;
  const std::string& path() const;

  class Impl;

 private:
  explicit Tables(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mktl::persist
