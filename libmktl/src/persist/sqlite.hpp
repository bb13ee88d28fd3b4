// RAII and small helpers over SQLite's C API, shared by the persistence store
// and the collections' tables (the only two users of sqlite3.h).
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>

namespace mktl::persist::sql {

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Db = std::unique_ptr<sqlite3, DbClose>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

inline std::string errmsg(sqlite3* db) { return db ? sqlite3_errmsg(db) : "out of memory"; }

// A prepared statement, or null (the connection's errmsg says why).
inline Stmt prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return nullptr;
  }
  return Stmt(stmt);
}

inline bool exec(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK; }
inline bool exec(sqlite3* db, const std::string& sql) { return exec(db, sql.c_str()); }

// Runs a statement that returns at most one row and gives its first column as
// text ("" if no row). Returns false on error.
inline bool query_text(sqlite3* db, const char* sql, std::string& out) {
  Stmt stmt = prepare(db, sql);
  if (!stmt) return false;
  int rc = sqlite3_step(stmt.get());
  out.clear();
  if (rc == SQLITE_ROW) {
    if (auto text = sqlite3_column_text(stmt.get(), 0)) out = reinterpret_cast<const char*>(text);
    rc = sqlite3_step(stmt.get());
    while (rc == SQLITE_ROW) rc = sqlite3_step(stmt.get());
  }
  return rc == SQLITE_DONE;
}

// "name" quoted as an SQL identifier.
inline std::string quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace mktl::persist::sql
