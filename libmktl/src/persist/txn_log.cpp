#include "persist/txn_log.hpp"

#include "json/detail.hpp"
#include "persist/tables_common.hpp"

#include <mktl/json.hpp>

#include <algorithm>
#include <charconv>
#include <utility>

namespace mktl::persist {

namespace {

void append_int(std::string& out, std::int64_t value) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

void bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
  sqlite3_bind_text64(stmt, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

}  // namespace

bool TxnLog::create(sqlite3* db) {
  if (!sql::exec(db,
                 "CREATE TABLE IF NOT EXISTS _mktl_txn_log (seq INTEGER PRIMARY KEY, last INTEGER NOT NULL, "
                 "item TEXT NOT NULL, time REAL NOT NULL, entries TEXT NOT NULL)") ||
      !sql::exec(db, "DROP INDEX IF EXISTS _mktl_txn_log_item"))  // had by an earlier version
    return false;
  // An older version's log, one row per transaction (seq, ref, item, time,
  // result {"rows": ...}): each row becomes a row of one entry. On failure
  // the caller closes the connection, which rolls the conversion back.
  std::string older;
  if (!sql::query_text(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_mktl_log'", older))
    return false;
  if (older.empty()) return true;
  std::string count;
  if (!sql::query_text(db, "SELECT COUNT(*) FROM _mktl_log", count) || !sql::exec(db, "SAVEPOINT convert_log") ||
      !sql::exec(db,
                 "INSERT INTO _mktl_txn_log (seq, last, item, time, entries) SELECT seq, seq, item, time, "
                 "json_array(json_array(seq, ref, json(json_extract(result, '$.rows')))) FROM _mktl_log") ||
      !sql::exec(db, "DROP TABLE _mktl_log") || !sql::exec(db, "RELEASE convert_log"))
    return false;
  tables_log().info("converted the transaction log of an older version ({} entries) to _mktl_txn_log", count);
  return true;
}

TxnLog::TxnLog(sqlite3* writer, sqlite3* reader, const collections::Config& config, std::string path)
    : writer_(writer), reader_(reader), path_(std::move(path)) {
  insert_ = must_prepare(writer_, "INSERT INTO _mktl_txn_log (seq, last, item, time, entries) VALUES (?1, ?2, ?3, ?4, ?5)",
                         path_);
  // The row holding transaction ?2 of item ?1: the item's last row starting
  // at or before it. No index on item: a COMMIT then writes one page less,
  // and the walk back from ?2 passes only the rows of the few other items
  // committed since.
  const char* group = "SELECT time, entries FROM _mktl_txn_log WHERE item = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1";
  group_w_ = must_prepare(writer_, group, path_);
  group_r_ = must_prepare(reader_, group, path_);
  prune_ = must_prepare(writer_, "DELETE FROM _mktl_txn_log WHERE item = ?1 AND seq < ?2 AND last < ?2", path_);
  for (auto& service : config.transactions)
    for (auto& set : service.op_sets) {
      const auto keep = static_cast<std::size_t>(std::max(service.change_log_size, 1));
      kept_.insert_or_assign(set.item, Kept(keep));
      smallest_keep_ = std::min(smallest_keep_, keep);
    }

  // The kept refs, oldest first, and the next seq.
  sql::Stmt rows = must_prepare(writer_, "SELECT item, entries, last FROM _mktl_txn_log ORDER BY seq", path_);
  int rc;
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    next_seq_ = std::max<std::int64_t>(next_seq_, sqlite3_column_int64(rows.get(), 2) + 1);
    auto item = reinterpret_cast<const char*>(sqlite3_column_text(rows.get(), 0));
    auto it = kept_.find(item ? item : "");
    if (it == kept_.end()) continue;  // an item no longer configured: its rows stay, unread
    auto text = reinterpret_cast<const char*>(sqlite3_column_text(rows.get(), 1));
    try {
      for (auto& entry : json::parse(text ? text : ""))
        it->second.push(entry.at(1).get_ref<const std::string&>(), entry.at(0).get<std::int64_t>());
    } catch (const std::exception& e) {
      tables_log().warn("tables database {}: a transaction log row of {} is not readable ({}); its refs are forgotten",
                        path_, it->first, e.what());
    }
  }
  if (rc != SQLITE_DONE) fail_open(path_, "cannot read the transaction log: " + sql::errmsg(writer_));
}

void TxnLog::Kept::push(std::string_view ref, std::int64_t seq) {
  const bool rising = ref.size() <= kShort && (rising_.empty() || ref > rising_.back().ref()) &&
                      (other_.empty() || !other_.count(std::string(ref)));
  if (rising) {
    Rising r{{}, static_cast<std::uint8_t>(ref.size()), seq};
    std::copy(ref.begin(), ref.end(), r.text.begin());
    rising_.push_back(r);
  } else {
    other_.insert_or_assign(std::string(ref), seq);
    other_order_.emplace_back(seq, ref);
  }
  seqs_.push_back(seq);
  if (seqs_.size() <= keep_) return;
  seqs_.pop_front();
  const std::int64_t cutoff = seqs_.front();
  while (!rising_.empty() && rising_.front().seq < cutoff) rising_.pop_front();
  while (!other_order_.empty() && other_order_.front().first < cutoff) {
    auto& [old_seq, old_ref] = other_order_.front();
    if (auto it = other_.find(old_ref); it != other_.end() && it->second == old_seq) other_.erase(it);
    other_order_.pop_front();
  }
}

std::optional<std::int64_t> TxnLog::Kept::find(const std::string& ref) const {
  if (!other_.empty())
    if (auto it = other_.find(ref); it != other_.end()) return it->second;  // pushed again after its rising entry
  auto it = std::lower_bound(rising_.begin(), rising_.end(), std::string_view(ref),
                             [](const Rising& r, std::string_view x) { return r.ref() < x; });
  if (it != rising_.end() && it->ref() == ref) return it->seq;
  return std::nullopt;
}

std::optional<std::int64_t> TxnLog::Kept::oldest() const {
  if (seqs_.empty()) return std::nullopt;
  return seqs_.front();
}

std::optional<std::int64_t> TxnLog::kept_seq(const std::string& ref, const std::string& item) {
  std::lock_guard lock(kept_mu_);
  auto it = kept_.find(item);
  if (it == kept_.end()) return std::nullopt;
  return it->second.find(ref);
}

// Transaction `seq` of `item` (kLast: its last one), read with `stmt` (a group statement) on `db`.
std::optional<Committed> TxnLog::read_entry(sqlite3* db, sqlite3_stmt* stmt, const std::string& item, std::int64_t seq) {
  sqlite3_reset(stmt);
  bind_text(stmt, 1, item);
  sqlite3_bind_int64(stmt, 2, seq);
  int rc = sqlite3_step(stmt);
  std::optional<Committed> out;
  if (rc == SQLITE_ROW) {
    double time = sqlite3_column_double(stmt, 0);
    auto text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
    try {
      Json entries = json::parse(text ? text : "");
      if (seq == kLast && entries.is_array() && !entries.empty()) seq = entries.back().at(0).get<std::int64_t>();
      for (auto& entry : entries) {
        if (entry.at(0).get<std::int64_t>() != seq) continue;
        Committed c;
        c.seq = seq;
        c.time = time;
        c.ref = entry.at(1).get<std::string>();
        c.rows = json::dump(entry.at(2));
        out = std::move(c);
        break;
      }
    } catch (const std::exception& e) {
      sqlite3_reset(stmt);
      throw RuntimeError("tables database " + path_ + ": a transaction log row of " + item + " is not readable: " + e.what());
    }
  } else if (rc != SQLITE_DONE) {
    std::string message = sql::errmsg(db);
    sqlite3_reset(stmt);
    throw RuntimeError("tables database " + path_ + ": cannot read the transaction log: " + message);
  }
  sqlite3_reset(stmt);
  return out;
}

bool TxnLog::find(const std::string& ref, const std::string& item, Committed& result) {
  if (!pending_client_.empty()) {
    auto it = pending_client_.find(item + '\n' + ref);
    if (it != pending_client_.end()) {
      const Placed& placed = it->second;
      const Pending& p = pending_[placed.pending];
      result.ref = ref;
      result.seq = placed.seq;
      result.time = p.time;
      result.rows.assign(p.entries, placed.at, placed.size);
      result.duplicate = true;
      return true;
    }
  }
  auto seq = kept_seq(ref, item);
  if (!seq) return false;
  auto found = read_entry(writer_, group_w_.get(), item, *seq);
  if (!found) return false;
  result = std::move(*found);
  result.duplicate = true;
  return true;
}

TxnLog::Pending& TxnLog::pending_of(const std::string& item) {
  for (std::size_t i = 0; i < pending_used_; ++i)
    if (pending_[i].item == item) return pending_[i];
  if (pending_used_ == pending_.size()) pending_.emplace_back();
  Pending& p = pending_[pending_used_++];
  p.item = item;
  p.entries.clear();
  p.refs.clear();
  return p;
}

std::int64_t TxnLog::add(const std::string& ref, const std::string& item, std::string_view rows, double time,
                         bool client_ref) {
  Pending& p = pending_of(item);
  const std::int64_t seq = next_seq_++;
  if (p.entries.empty()) {
    p.first = seq;
    p.time = time;
    p.entries.push_back('[');
  } else {
    p.entries.push_back(',');
  }
  p.entries.push_back('[');
  append_int(p.entries, seq);
  p.entries.push_back(',');
  json::detail::append_string(p.entries, ref);
  p.entries.push_back(',');
  const std::size_t at = p.entries.size();
  p.entries.append(rows);
  p.entries.push_back(']');
  p.refs.emplace_back(ref, seq);
  ++added_since_prune_;
  if (client_ref)
    pending_client_[item + '\n' + ref] = Placed{static_cast<std::size_t>(&p - pending_.data()), seq, at, rows.size()};
  return seq;
}

void TxnLog::write() {
  sqlite3_stmt* ins = insert_.get();
  for (std::size_t i = 0; i < pending_used_; ++i) {
    Pending& p = pending_[i];
    p.entries.push_back(']');
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, p.first);
    sqlite3_bind_int64(ins, 2, p.refs.back().second);
    bind_text(ins, 3, p.item);
    sqlite3_bind_double(ins, 4, p.time);
    bind_text(ins, 5, p.entries);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc != SQLITE_DONE) throw_db(writer_, "recording the transactions of " + p.item);
  }
}

void TxnLog::committed() {
  {
    std::lock_guard lock(kept_mu_);
    for (std::size_t i = 0; i < pending_used_; ++i) {
      auto it = kept_.find(pending_[i].item);
      if (it == kept_.end()) continue;
      for (auto& [ref, seq] : pending_[i].refs) it->second.push(ref, seq);
    }
  }
  pending_used_ = 0;
  pending_client_.clear();
}

void TxnLog::rolled_back() {
  // The batch's first transaction is the first of the first item it added.
  if (pending_used_ > 0) next_seq_ = pending_[0].first;
  pending_used_ = 0;
  pending_client_.clear();
}

void TxnLog::prune_when_due() {
  if (++batches_since_prune_ < 1024 && added_since_prune_ < smallest_keep_) return;
  batches_since_prune_ = added_since_prune_ = 0;
  prune();
}

void TxnLog::prune() {
  std::vector<std::pair<std::string, std::int64_t>> oldest;  // item, its oldest kept seq
  {
    std::lock_guard lock(kept_mu_);
    for (auto& [item, kept] : kept_)
      if (auto seq = kept.oldest()) oldest.emplace_back(item, *seq);
  }
  sqlite3_stmt* stmt = prune_.get();
  for (auto& [item, seq] : oldest) {
    sqlite3_reset(stmt);
    bind_text(stmt, 1, item);
    sqlite3_bind_int64(stmt, 2, seq);
    if (sqlite3_step(stmt) != SQLITE_DONE) tables_log().warn("pruning the transaction log of {}: {}", item, sql::errmsg(writer_));
    sqlite3_reset(stmt);
  }
}

std::optional<Committed> TxnLog::lookup(const std::string& ref, const std::string& item) {
  std::string owner = item;
  std::optional<std::int64_t> seq;
  if (item.empty()) {
    std::lock_guard lock(kept_mu_);
    for (auto& [name, kept] : kept_)
      if (auto found = kept.find(ref)) {
        owner = name;
        seq = found;
        break;
      }
  } else {
    seq = kept_seq(ref, item);
  }
  if (!seq) return std::nullopt;
  return read_entry(reader_, group_r_.get(), owner, *seq);
}

std::optional<Committed> TxnLog::last(const std::string& item) {
  return read_entry(reader_, group_r_.get(), item, kLast);
}

}  // namespace mktl::persist
