// mktl::CollectionView: a live copy of a collection item (a keyed, stream or
// table service of a daemon's tables), kept up to date without gaps.
//
//   mktl::CollectionCallbacks cb;
//   cb.on_snapshot = [](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) { ... };
//   cb.on_change = [](const mktl::CollectionChange& c) { ... c.op, c.seq, c.rowid, c.row ... };
//   cb.on_reset = [](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) { ... };  // replaced
//   mktl::CollectionView view = client.watch_collection("book.positions", cb, "qty > 0");
//   auto rows = view.rows();   // a copy, any time, any thread
//
// How it stays exact (the daemon's side: docs/collections.md, "Collections
// on the wire"): it subscribes to the item's broadcasts first, then takes the snapshot (every
// page), drops the broadcasts the snapshot already holds (seq <= its seq, same
// epoch) and applies the rest by rowid. Every change carries the collection's
// seq: for keyed and table collections a seq other than last + 1 is a gap,
// for a stream (whose seq is the row's rowid and may skip) a seq at or below
// the last is a duplicate and a jump is checked with the daemon. A gap, a
// broadcast lost in the client's callback queue (Client::dropped_broadcasts())
// or in this view's own queue is caught up with a GET `since` the last seq; a
// reset (broadcast, or the answer to `since`, or a new daemon epoch) replaces
// the view with a new snapshot. A failed catch-up (daemon away) is reported to
// on_error and retried.
//
// A stream's view keeps its newest rows, at most the stream's buffer_size
// (from the item's description) as the daemon's ring does; older rows leave
// it silently.
//
// The `filter` (an mktl::Expression, see expr.hpp) is evaluated here, on each
// row: the view holds the rows that match it. A row that stops matching
// leaves the view (reported as a "delete"), one that starts matching enters it
// (an "insert"); a row the filter fails on (a missing field, a type error)
// is left out and counted in filter_errors().
//
// Threading promise: the constructor (Client::watch_collection) takes the
// first snapshot on the calling thread and throws there (KeyError for an
// unknown key, TypeError for an item that is not a collection, ValueError for
// a bad filter, the daemon's error or TimeoutError). Afterwards every
// callback runs on this view's own thread, one at a time, on_snapshot first,
// then changes in seq order; a callback that blocks holds up this view only
// (broadcasts for it queue up to `queue_limit`, then are dropped and caught
// up later), never the Client's other subscriptions. Callbacks may call any
// accessor and may destroy the view. Accessors may be called from any thread.
// A view must be destroyed before its Client; destruction (or cancel())
// unsubscribes and waits for a callback in progress, unless called from one.
#pragma once

#include <mktl/client.hpp>
#include <mktl/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mktl {

// One row of a collection: its identity (the key column for a keyed
// collection, the primary key or SQLite rowid otherwise) and its value (a JSON
// object, after the daemon's `where` and `publish`).
struct CollectionRow {
  Json rowid;
  Json value;
  bool operator==(const CollectionRow&) const = default;
};

// One change as it affected a view.
struct CollectionChange {
  // What it did to this view: "insert" (the row entered it), "update" (it
  // changed there) or "delete" (it left: deleted, or no longer matching the
  // filter).
  std::string op;
  // The daemon's op as published (insert, update, delete).
  std::string published_op;
  std::int64_t seq = 0;
  Json ref;            // the transaction that made the change (null if none)
  Json rowid;
  bool exists = true;  // whether the row exists in the collection after it
  Json row;            // the row after the change (a delete: the last known row)
  double time = 0;
  bool caught_up = false;  // came from a `since` answer rather than a broadcast
};

struct CollectionCallbacks {
  // The first snapshot's rows (in rowid order) and the seq they are
  // consistent with, before any change.
  std::function<void(const std::vector<CollectionRow>& rows, std::int64_t seq)> on_snapshot;
  // Each change that altered the view, in seq order.
  std::function<void(const CollectionChange& change)> on_change;
  // The view was replaced by a new snapshot (the daemon reset, restarted, or
  // no longer held the changes missed); `rows` is the whole new view, at `seq`.
  std::function<void(const std::vector<CollectionRow>& rows, std::int64_t seq)> on_reset;
  // A catch-up failed (it is retried); `text` says why.
  std::function<void(const std::string& text)> on_error;
};

struct CollectionOptions {
  // Keep only rows that match this expression (evaluated in the client).
  std::string filter;
  // Broadcasts waiting for this view's thread, at most; more are dropped and
  // caught up with `since`.
  std::size_t queue_limit = 100000;
  // Rows per snapshot page asked of the daemon (0: the daemon's default).
  std::size_t page_size = 0;
  // Seconds to wait for each snapshot or catch-up reply (unset: the Client's).
  std::optional<double> timeout;
  // Seconds between retries of a failed catch-up.
  double retry_interval = 0.5;
};

class CollectionView {
 public:
  CollectionView() = default;
  // Subscribes to `full_key` (a collection item) and takes its snapshot;
  // see the header comment for what it throws.
  CollectionView(Client& client, const std::string& full_key, CollectionCallbacks callbacks = {},
                 CollectionOptions options = {});
  CollectionView(CollectionView&&) noexcept;
  CollectionView& operator=(CollectionView&&) noexcept;
  ~CollectionView();

  // Unsubscribes and stops the view's thread; no callback runs afterwards
  // (except the one calling cancel(), if any). The rows stay readable.
  void cancel();
  explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

  const std::string& full_key() const;
  // "keyed", "stream" or "table", from the item's description.
  const std::string& kind() const;

  // The rows in rowid order (a copy, made under the view's lock).
  std::vector<CollectionRow> rows() const;
  // One row by rowid, if the view holds it.
  std::optional<Json> row(const Json& rowid) const;
  std::size_t size() const;
  // The seq of the last change applied (or of the snapshot), and its epoch.
  std::int64_t seq() const;
  std::string epoch() const;

  // Catch-ups made with `since` (gaps found, losses caught up).
  std::uint64_t gaps() const;
  // Times the view was replaced by a new snapshot after the first.
  std::uint64_t resets() const;
  // Broadcasts skipped as already applied (duplicates or in a snapshot).
  std::uint64_t duplicates() const;
  // Rows the filter failed on (left out of the view).
  std::uint64_t filter_errors() const;

  // Waits until seq() >= `seq` (true) or `timeout_seconds` pass (false).
  bool wait_for_seq(std::int64_t seq, double timeout_seconds) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace mktl
