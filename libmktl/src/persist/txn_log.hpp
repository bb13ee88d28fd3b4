// The transaction log of the collections' tables: the results of committed
// transactions, for GET by ref, for a ref that comes again (it gets the
// result it had; nothing runs twice) and for a record item's last value.
//
// On disk, the table _mktl_txn_log holds one row per record item and COMMIT:
// the transactions of that item in that batch as one JSON array of
// [seq, ref, rows] entries, written in the batch's own COMMIT. One insert per
// COMMIT instead of one per transaction keeps the log's share of a batch to
// a few pages (the per-transaction row with its two indexes used to cost as
// much as the user's own insert).
//
// In memory, each record item keeps the refs of its `change_log_size` newest
// transactions with their seq (loaded at open), which is what finds a ref;
// the row that holds it is then read for the result. Rows whose entries have
// all left that window are pruned from time to time.
//
// Threading: find(), add(), write(), committed(), rolled_back() and prune()
// run on the writer's connection, on the writer thread only; lookup() and
// last() on the read connection, serialised by the caller (Tables holds its
// reader mutex). The refs in memory have their own mutex.
#pragma once

#include "collections/config.hpp"
#include "persist/sqlite.hpp"
#include "persist/tables.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mktl::persist {

class TxnLog {
 public:
  // Creates the table when missing, and converts the log of an
  // older version (table _mktl_log, one row per transaction) in one
  // transaction. At open, before the migration. False on error: errmsg(db)
  // says why.
  static bool create(sqlite3* db);

  // Prepares the statements on `writer` and `reader` (both outlive the
  // TxnLog) and loads the kept refs; fail_open() on failure. `path` names
  // the file in errors.
  TxnLog(sqlite3* writer, sqlite3* reader, const collections::Config& config, std::string path);

  // Writer thread. The transaction `ref` of `item`, committed or added in
  // this batch: fills `result`'s ref, seq, time and rows, marks it a
  // duplicate and returns true; false when there is none. throw_db() when
  // the log cannot be read.
  bool find(const std::string& ref, const std::string& item, Committed& result);
  // Writer thread, in a batch. Logs a transaction that ran (`rows` is its
  // result rows, JSON text) and returns its seq. `client_ref`: the ref came
  // from the client (a generated one cannot come again within its batch).
  std::int64_t add(const std::string& ref, const std::string& item, std::string_view rows, double time, bool client_ref);
  // Writer thread, before the batch's COMMIT: writes what add() logged.
  // throw_db() on failure (the batch must then be rolled back).
  void write();
  // Writer thread: the batch committed (its refs become findable by
  // lookup()), or was rolled back (what add() logged is forgotten).
  void committed();
  void rolled_back();
  // Writer thread, inside a batch's transaction. Every 1024 batches, or
  // once the smallest window (change_log_size) has been added since the last
  // time, deletes the rows that hold no kept transaction; a failure is
  // logged, never thrown.
  void prune_when_due();

  // Reader. A committed transaction by ref, of `item` (any when empty).
  // RuntimeError for a failed read.
  std::optional<Committed> lookup(const std::string& ref, const std::string& item);
  // Reader. The last committed transaction of `item`.
  std::optional<Committed> last(const std::string& item);

 private:
  // The refs of one record item's last `keep` transactions, and their seqs.
  // The daemon's own refs are made from the clock, fixed width, so each is
  // greater than the one before: such a ref (one greater than every ref
  // kept before it, of at most kShort bytes) is kept in a ring in seq order
  // and found by binary search, with no allocation or hashing per
  // transaction. Any other ref (a client's) goes into a map.
  class Kept {
   public:
    explicit Kept(std::size_t keep = 1) : keep_(std::max<std::size_t>(keep, 1)) {}
    std::size_t keep() const { return keep_; }
    void push(std::string_view ref, std::int64_t seq);
    std::optional<std::int64_t> find(const std::string& ref) const;
    // The seq of the oldest kept transaction.
    std::optional<std::int64_t> oldest() const;

   private:
    static constexpr std::size_t kShort = 32;
    struct Rising {
      std::array<char, kShort> text;
      std::uint8_t size;
      std::int64_t seq;
      std::string_view ref() const { return {text.data(), size}; }
    };
    std::size_t keep_;
    std::deque<std::int64_t> seqs_;  // the kept transactions, oldest first
    std::deque<Rising> rising_;      // ascending by ref and by seq
    std::unordered_map<std::string, std::int64_t> other_;
    std::deque<std::pair<std::int64_t, std::string>> other_order_;  // seq, ref; oldest first
  };
  // One record item's transactions of the running batch.
  struct Pending {
    std::string item;
    std::int64_t first = 0;  // the seq of its first transaction
    double time = 0;
    std::string entries;  // [seq,"ref",rows],... without the outer brackets
    std::vector<std::pair<std::string, std::int64_t>> refs;  // ref, seq; in order
  };

  static constexpr std::int64_t kLast = INT64_MAX;  // read_entry(): the row's last transaction
  std::optional<std::int64_t> kept_seq(const std::string& ref, const std::string& item);
  void prune();
  std::optional<Committed> read_entry(sqlite3* db, sqlite3_stmt* stmt, const std::string& item, std::int64_t seq);
  Pending& pending_of(const std::string& item);

  sqlite3* writer_;
  sqlite3* reader_;
  std::string path_;
  sql::Stmt insert_, group_w_, prune_;  // on writer_
  sql::Stmt group_r_;                   // on reader_

  std::mutex kept_mu_;
  std::unordered_map<std::string, Kept> kept_;  // by record item; its keys fixed at construction

  // The writer's: the next seq, and the running batch.
  std::int64_t next_seq_ = 1;
  std::vector<Pending> pending_;
  std::size_t pending_used_ = 0;  // pending_[0, used) hold this batch's items
  std::size_t smallest_keep_ = SIZE_MAX, batches_since_prune_ = 0, added_since_prune_ = 0;
  // A client's refs in the running batch, by item '\n' ref: where their rows are.
  struct Placed {
    std::size_t pending;
    std::int64_t seq;
    std::size_t at, size;  // the rows in pending_[pending].entries
  };
  std::unordered_map<std::string, Placed> pending_client_;
  std::string scratch_;
};

}  // namespace mktl::persist
