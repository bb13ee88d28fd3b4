// Durable storage of persistent item values (items with "persist": true).
//
// One SQLite database file per daemon process holds the last value of every
// persistent item of every daemon block it serves, keyed by (block uuid, key).
// This is the only module that includes sqlite3.h.
//
// Durability promise: when save() returns, the value is committed to the
// database with synchronous=FULL in WAL mode, so it survives a kill -9 of the
// daemon at any moment (and also an OS crash or power loss, as far as the disk
// honours fsync). A SET on a persistent item must call save() before its REP
// goes out.
//
// Threading: every member function is safe to call from any thread at once
// (except the destructor, which must not race with other calls). One writer
// thread owns all writes and batches everything queued by all threads into a
// single transaction (group commit), so many concurrent save() calls share one
// fsync.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace mktl::persist {

// One saved value: exactly the wire payload of a GET reply for the item, and
// its bulk frame if it has one. An empty bulk and no bulk are kept apart.
struct Saved {
  // Raw JSON {"value":..,"time":..} or, for bulk items, {"time","shape","dtype"}.
  std::string payload;
  std::optional<std::string> bulk;
};

// The marker next to the database at `path` ("PATH.marker"): a small text
// file, rewritten whenever the number of saved values grows, that records
// that the database was written and how many values it held.
std::string marker_path(const std::string& path);

class Store {
 public:
  // Schema version this build writes (PRAGMA user_version). A file with a
  // newer version is refused rather than misread.
  static constexpr int schema_version = 1;

  // Opens the database file at `path`, creating it and its directory if
  // needed. Throws mktl::RuntimeError naming the file if it cannot be opened
  // (saying "permission denied" when that is why), is not a database, is
  // corrupt or has a newer schema; the way out is to move the file aside
  // (persisted values are never dropped silently). Throws mktl::ConfigError
  // if the file is missing or empty while its marker (marker_path) records
  // that it held values; deleting the marker accepts starting without them.
  static std::unique_ptr<Store> open(const std::string& path);

  // Commits everything still queued, then stops the writer thread.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Blocks until the value is committed. Throws mktl::RuntimeError if the
  // write failed (disk full, I/O error, store closing), so the SET fails
  // visibly.
  void save(const std::string& uuid, const std::string& key, std::string payload, std::optional<std::string> bulk);

  // Queues the value and returns at once: for values published by polls,
  // which carry no durability promise. A failed write is logged.
  void save_async(const std::string& uuid, const std::string& key, std::string payload, std::optional<std::string> bulk);

  // Waits until everything queued so far is committed. Throws
  // mktl::RuntimeError if a value queued by save_async() since the last
  // flush() was not saved (whether its transaction failed before this call
  // or during it).
  void flush();

  // The saved values of one daemon block, key -> last value saved. Sees every
  // value whose save() returned (or flush() returned after save_async()).
  std::map<std::string, Saved> load(const std::string& uuid);

  const std::string& path() const;

  // Commits that reached the disk since open (each one a transaction and an
  // fsync); lets tests and benchmarks see group commit at work.
  std::uint64_t commit_count() const;

  class Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mktl::persist
