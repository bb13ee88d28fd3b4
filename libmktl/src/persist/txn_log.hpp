// The transaction log of the collections' tables, the table _mktl_log: one
// row per committed transaction (its ref, record item, time and result rows),
// written in the transaction's own COMMIT. It answers a ref that comes again
// with the result it had (nothing runs twice), lookups by ref and the last
// transaction of a record item; each item keeps its `change_log_size` newest.
//
// Threading: record(), find() and prune() run on the writer's connection,
// on the writer thread only; lookup() and last() on the read connection,
// serialised by the caller (Tables holds its reader mutex).
#pragma once

#include "collections/config.hpp"
#include "persist/sqlite.hpp"
#include "persist/tables.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace mktl::persist {

class TxnLog {
 public:
  // Creates the table and its index when missing (at open, before the
  // migration). False on error: errmsg(db) says why.
  static bool create(sqlite3* db);

  // Prepares the statements on `writer` and `reader` (both outlive the
  // TxnLog); fail_open() on failure. `path` names the file in errors.
  TxnLog(sqlite3* writer, sqlite3* reader, const collections::Config& config, std::string path);

  // Writer thread. The logged transaction `ref` of `item`: fills `result`'s
  // ref, seq, time and rows, marks it a duplicate and returns true; false
  // when there is none. throw_db() when the log cannot be read.
  bool find(const std::string& ref, const std::string& item, Committed& result);
  // Writer thread. Logs a transaction (`text` is {"rows": ...}) and returns
  // its seq; throw_db() on failure.
  std::int64_t record(const std::string& ref, const std::string& item, double time, const std::string& text);
  // Writer thread, inside a transaction. Deletes each item's entries beyond
  // the ones it keeps; a failure is logged, never thrown.
  void prune();

  // Reader. A committed transaction by ref, of `item` (any when empty).
  // RuntimeError for a failed read.
  std::optional<Committed> lookup(const std::string& ref, const std::string& item);
  // Reader. The last committed transaction of `item`.
  std::optional<Committed> last(const std::string& item);

 private:
  std::optional<Committed> read_one(sqlite3_stmt* stmt, const std::string& key, const std::string& second = {});

  sqlite3* writer_;
  sqlite3* reader_;
  std::string path_;
  sql::Stmt insert_, find_, prune_;  // on writer_
  sql::Stmt by_ref_, last_of_;       // on reader_
  std::map<std::string, int> keep_;  // record item -> log entries kept
};

}  // namespace mktl::persist
