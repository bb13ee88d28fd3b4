#include "persist/txn_log.hpp"

#include "persist/tables_common.hpp"

#include <mktl/json.hpp>

#include <algorithm>
#include <utility>

namespace mktl::persist {

namespace {

// The rows of a transaction log entry (column i holds {"rows": ROWS}), as JSON text.
std::string logged_rows(sqlite3_stmt* stmt, int i) {
  auto text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return json::dump(json::parse(text ? text : "{}").value("rows", Json()));
}

}  // namespace

bool TxnLog::create(sqlite3* db) {
  return sql::exec(db,
                   "CREATE TABLE IF NOT EXISTS _mktl_log (seq INTEGER PRIMARY KEY, ref TEXT NOT NULL, "
                   "item TEXT NOT NULL, time REAL NOT NULL, result TEXT NOT NULL, UNIQUE (item, ref))") &&
         sql::exec(db, "CREATE INDEX IF NOT EXISTS _mktl_log_item ON _mktl_log (item, seq)");
}

TxnLog::TxnLog(sqlite3* writer, sqlite3* reader, const collections::Config& config, std::string path)
    : writer_(writer), reader_(reader), path_(std::move(path)) {
  insert_ = must_prepare(writer_, "INSERT INTO _mktl_log(ref, item, time, result) VALUES (?1, ?2, ?3, ?4)", path_);
  find_ = must_prepare(writer_, "SELECT seq, time, result FROM _mktl_log WHERE item = ?2 AND ref = ?1", path_);
  prune_ = must_prepare(writer_,
                        "DELETE FROM _mktl_log WHERE item = ?1 AND seq <= (SELECT seq FROM _mktl_log WHERE item = ?1 "
                        "ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                        path_);
  by_ref_ = must_prepare(reader_, "SELECT seq, time, result, ref FROM _mktl_log WHERE ref = ?1 AND (?2 IS NULL OR item = ?2)",
                         path_);
  last_of_ = must_prepare(reader_, "SELECT seq, time, result, ref FROM _mktl_log WHERE item = ?1 ORDER BY seq DESC LIMIT 1",
                          path_);
  for (auto& service : config.transactions)
    for (auto& set : service.op_sets) keep_[set.item] = service.change_log_size;
}

bool TxnLog::find(const std::string& ref, const std::string& item, Committed& result) {
  sqlite3_stmt* find = find_.get();
  sqlite3_reset(find);
  sqlite3_bind_text64(find, 1, ref.data(), ref.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  sqlite3_bind_text64(find, 2, item.data(), item.size(), SQLITE_STATIC, SQLITE_UTF8);
  int rc = sqlite3_step(find);
  if (rc == SQLITE_ROW) {
    result.ref = ref;
    result.seq = sqlite3_column_int64(find, 0);
    result.time = sqlite3_column_double(find, 1);
    result.rows = logged_rows(find, 2);
    result.duplicate = true;
    sqlite3_reset(find);
    return true;
  }
  sqlite3_reset(find);
  if (rc != SQLITE_DONE) throw_db(writer_, "reading the transaction log");
  return false;
}

std::int64_t TxnLog::record(const std::string& ref, const std::string& item, double time, const std::string& text) {
  sqlite3_stmt* ins = insert_.get();
  sqlite3_reset(ins);
  sqlite3_bind_text64(ins, 1, ref.data(), ref.size(), SQLITE_STATIC, SQLITE_UTF8);
  sqlite3_bind_text64(ins, 2, item.data(), item.size(), SQLITE_STATIC, SQLITE_UTF8);
  sqlite3_bind_double(ins, 3, time);
  sqlite3_bind_text64(ins, 4, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
  int rc = sqlite3_step(ins);
  sqlite3_reset(ins);
  if (rc != SQLITE_DONE) throw_db(writer_, "recording transaction " + ref);
  return sqlite3_last_insert_rowid(writer_);
}

void TxnLog::prune() {
  for (auto& [item, keep] : keep_) {
    sqlite3_stmt* stmt = prune_.get();
    sqlite3_reset(stmt);
    sqlite3_bind_text64(stmt, 1, item.data(), item.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    sqlite3_bind_int64(stmt, 2, std::max(keep, 1));
    if (sqlite3_step(stmt) != SQLITE_DONE) tables_log().warn("pruning the transaction log of {}: {}", item, sql::errmsg(writer_));
    sqlite3_reset(stmt);
  }
}

std::optional<Committed> TxnLog::lookup(const std::string& ref, const std::string& item) {
  return read_one(by_ref_.get(), ref, item);
}

std::optional<Committed> TxnLog::last(const std::string& item) { return read_one(last_of_.get(), item); }

// The log entry the statement finds for ?1 (and ?2, when `second` is not empty; else ?2 is NULL).
std::optional<Committed> TxnLog::read_one(sqlite3_stmt* stmt, const std::string& key, const std::string& second) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  sqlite3_bind_text64(stmt, 1, key.data(), key.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (!second.empty()) sqlite3_bind_text64(stmt, 2, second.data(), second.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  int rc = sqlite3_step(stmt);
  std::optional<Committed> out;
  if (rc == SQLITE_ROW) {
    Committed c;
    c.seq = sqlite3_column_int64(stmt, 0);
    c.time = sqlite3_column_double(stmt, 1);
    c.rows = logged_rows(stmt, 2);
    c.ref = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
    out = std::move(c);
  } else if (rc != SQLITE_DONE) {
    std::string message = sql::errmsg(reader_);
    sqlite3_reset(stmt);
    throw RuntimeError("tables database " + path_ + ": cannot read the transaction log: " + message);
  }
  sqlite3_reset(stmt);
  return out;
}

}  // namespace mktl::persist
