// What the files of the collections' tables share (tables.cpp, migration.cpp,
// txn_log.cpp): the "mktl.tables" logger, the two ways they report a failed
// SQLite call, and two text helpers. Any thread.
#pragma once

#include "common/text.hpp"
#include "config/logger.hpp"
#include "persist/sqlite.hpp"

#include <mktl/error.hpp>

#include <string>
#include <vector>

namespace mktl::persist {

inline spdlog::logger& tables_log() {
  static const std::shared_ptr<spdlog::logger> logger = mktl::logger("mktl.tables");
  return *logger;
}

// While opening: the file at `path` cannot be used. Logs the error, then
// throws it as RuntimeError.
[[noreturn]] inline void fail_open(const std::string& path, const std::string& what) {
  std::string message = "tables database " + path + " is not usable: " + what;
  tables_log().error("{}", message);
  throw RuntimeError(message);
}

// A statement prepared while opening; fail_open() when it does not prepare.
inline sql::Stmt must_prepare(sqlite3* db, const std::string& text, const std::string& path) {
  sql::Stmt stmt = sql::prepare(db, text.c_str());
  if (!stmt) fail_open(path, "cannot prepare \"" + text + "\": " + sql::errmsg(db));
  return stmt;
}

// A transaction's statement failed on `db`: ValueError when the data is at
// fault (a constraint, a type, a size), else RuntimeError; "WHAT: SQLite's message".
[[noreturn]] inline void throw_db(sqlite3* db, const std::string& what) {
  int code = sqlite3_extended_errcode(db) & 0xff;
  std::string text = what + ": " + sql::errmsg(db);
  if (code == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH || code == SQLITE_TOOBIG || code == SQLITE_RANGE)
    throw ValueError(text);
  throw RuntimeError(text);
}

// "a, b, c"
inline std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace mktl::persist
