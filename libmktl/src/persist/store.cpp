#include "persist/store.hpp"
#include "common/thread_name.hpp"

#include "persist/sqlite.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "config/logger.hpp"
#include "mktl/error.hpp"

namespace mktl::persist {
namespace {

// Looked up once: mktl::logger takes a lock.
spdlog::logger& persist_log() {
  static const std::shared_ptr<spdlog::logger> logger = mktl::logger("mktl.persist");
  return *logger;
}

using sql::Db;
using sql::errmsg;
using sql::exec;
using sql::prepare;
using sql::query_text;
using sql::Stmt;

// Told to whoever finds the file unusable; the store never starts empty on its
// own, since that would silently forget every persisted value.
std::string way_out(const std::string& path) {
  return "; move it aside (with any " + path + "-wal and " + path + "-shm, and delete " + marker_path(path) +
         ") to start without persisted values";
}

// The SQLite error of `db`, saying "permission denied" when that is the cause
// (SQLite's own text for it is "unable to open database file" or "attempt to
// write a readonly database").
std::string problem(sqlite3* db) {
  std::string text = errmsg(db);
  if (!db) return text;
  const int os_error = sqlite3_system_errno(db);
  const int code = sqlite3_extended_errcode(db);
  if (os_error == EACCES || os_error == EPERM || (code & 0xff) == SQLITE_PERM ||
      code == SQLITE_READONLY_DIRECTORY || code == SQLITE_READONLY_CANTINIT || code == SQLITE_READONLY)
    return "permission denied (" + text + ")";
  if (os_error != 0) text += " (" + std::string(std::strerror(os_error)) + ")";
  return text;
}

// ---- the marker ---------------------------------------------------------------
// A database that comes back empty (truncated to 0 bytes, deleted, replaced by
// an empty one) looks exactly like a first start, and the daemon would serve
// the catalog's initial values as if nothing had been saved. The marker, a
// small text file next to the database, remembers that it was written and how
// many values it held, so that such a loss stops the daemon instead.

constexpr const char* kMarkerHeader =
    "mktl persistence marker: the database next to this file has held the saved values\n"
    "counted below. If the database is found empty or missing while this file says\n"
    "it held values, the daemon refuses to start. Delete this file to accept\n"
    "starting without persisted values.\n";

// The count the marker records; 0 when there is no marker. A marker that
// cannot be read still says the database was written.
std::uint64_t read_marker(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(marker_path(path), ec)) return 0;
  std::ifstream in(marker_path(path));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("values ", 0) == 0) {
      const auto count = std::strtoull(line.c_str() + 7, nullptr, 10);
      return count > 0 ? count : 1;
    }
  persist_log().warn("persistence marker {} is unreadable; taking it to mean the database held values",
                     marker_path(path));
  return 1;
}

// Replaces the marker (a private temporary file renamed into place, so it is
// never seen half-written). Returns "" or what went wrong.
std::string write_marker(const std::string& path, std::uint64_t count) {
  const std::string marker = marker_path(path);
  const std::string temporary = marker + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return temporary + ": " + std::strerror(errno);
  const std::string text = std::string(kMarkerHeader) + "values " + std::to_string(count) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  if (ok && ::rename(temporary.c_str(), marker.c_str()) == 0) return {};
  const std::string why = std::strerror(ok ? errno : error);
  ::unlink(temporary.c_str());
  return marker + ": " + why;
}

[[noreturn]] void refuse_lost(const std::string& path, std::uint64_t marked, const std::string& found) {
  const std::string problem = "the persistence database is " + found + ", but " + marker_path(path) +
                              " records that it held " + std::to_string(marked) +
                              " saved value(s): it was truncated, deleted or replaced, and starting now would bring "
                              "back the catalog's initial values unnoticed. Restore the database (with any -wal "
                              "file) from a backup, or delete " +
                              marker_path(path) + " to start without persisted values";
  persist_log().error("{}: {}", path, problem);
  throw ConfigError(path, "", problem);
}

// Values queued together and committed in one transaction. Every save() caller
// whose value went into it waits on `done`.
struct Batch {
  std::map<std::pair<std::string, std::string>, Saved> values;  // (uuid, key): last wins
  bool done = false;
  bool async = false;  // holds a value of save_async(): flush() reports its failure
  std::string error;   // empty on success
};

}  // namespace

class Store::Impl {
 public:
  Impl(std::string path, Db db, std::uint64_t marked) : path_(std::move(path)), db_(std::move(db)) {
    upsert_ = prepare(db_.get(),
                      "INSERT INTO saved(uuid, key, payload, bulk) VALUES(?1, ?2, ?3, ?4) "
                      "ON CONFLICT(uuid, key) DO UPDATE SET payload = excluded.payload, bulk = excluded.bulk");
    select_ = prepare(db_.get(), "SELECT key, payload, bulk FROM saved WHERE uuid = ?1");
    Stmt all = prepare(db_.get(), "SELECT uuid, key FROM saved");
    if (!upsert_ || !select_ || !all)
      throw RuntimeError("persistence database " + path_ + ": cannot prepare statements: " + problem(db_.get()) +
                         way_out(path_));
    int rc;
    while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
      auto text = [&](int i) {
        auto data = reinterpret_cast<const char*>(sqlite3_column_text(all.get(), i));
        return data ? std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(all.get(), i))) : std::string();
      };
      saved_.emplace(text(0), text(1));
    }
    if (rc != SQLITE_DONE)
      throw RuntimeError("persistence database " + path_ + ": cannot read saved values: " + problem(db_.get()) +
                         way_out(path_));
    if (saved_.empty() && marked > 0) refuse_lost(path_, marked, "empty (no saved value)");
    if (saved_.size() < marked)
      persist_log().warn("persistence database {} holds {} saved value(s), fewer than the {} recorded in {}", path_,
                         saved_.size(), marked, marker_path(path_));
    // Also marks a database written before markers existed.
    if (!saved_.empty() && saved_.size() != marked) update_marker();
    writer_ = std::jthread([this] { run_writer(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_.notify_all();
    if (writer_.joinable()) writer_.join();
  }

  // Caller holds mu_.
  std::shared_ptr<Batch> enqueue(const std::string& uuid, const std::string& key, std::string payload,
                                 std::optional<std::string> bulk) {
    if (stopping_) throw RuntimeError("persistence database " + path_ + " is closing; value of " + key + " not saved");
    auto batch = pending_;
    batch->values.insert_or_assign(std::make_pair(uuid, key), Saved{std::move(payload), std::move(bulk)});
    work_.notify_one();
    return batch;
  }

  void wait(const std::shared_ptr<Batch>& batch, std::unique_lock<std::mutex>& lock) {
    done_.wait(lock, [&] { return batch->done; });
    if (!batch->error.empty()) throw RuntimeError(batch->error);
  }

  void save(const std::string& uuid, const std::string& key, std::string payload, std::optional<std::string> bulk) {
    std::unique_lock lock(mu_);
    auto batch = enqueue(uuid, key, std::move(payload), std::move(bulk));
    wait(batch, lock);
  }

  void save_async(const std::string& uuid, const std::string& key, std::string payload,
                  std::optional<std::string> bulk) {
    std::unique_lock lock(mu_);
    enqueue(uuid, key, std::move(payload), std::move(bulk))->async = true;
  }

  void flush() {
    std::unique_lock lock(mu_);
    // Batches commit in order, so the newest one covers everything before it.
    auto batch = !pending_->values.empty() ? pending_ : inflight_;
    if (batch) done_.wait(lock, [&] { return batch->done; });
    // A batch of save_async() values may have failed before this call, with
    // nobody waiting on it: its error waits here.
    if (!async_failure_.empty()) throw RuntimeError(std::exchange(async_failure_, {}));
    if (batch && !batch->error.empty()) throw RuntimeError(batch->error);
  }

  std::map<std::string, Saved> load(const std::string& uuid) {
    std::lock_guard lock(db_mu_);
    sqlite3_stmt* stmt = select_.get();
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    std::map<std::string, Saved> out;
    int rc = sqlite3_bind_text64(stmt, 1, uuid.data(), uuid.size(), SQLITE_STATIC, SQLITE_UTF8);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
      rc = sqlite3_step(stmt);
      if (rc != SQLITE_ROW) break;
      auto column = [&](int i) {
        auto data = static_cast<const char*>(sqlite3_column_blob(stmt, i));
        auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, i));
        return data ? std::string(data, size) : std::string();
      };
      Saved saved{column(1), std::nullopt};
      if (sqlite3_column_type(stmt, 2) != SQLITE_NULL) saved.bulk = column(2);
      out.insert_or_assign(column(0), std::move(saved));
    }
    if (rc != SQLITE_DONE) {
      std::string message = "persistence database " + path_ + ": cannot read saved values of " + uuid + ": " +
                            errmsg(db_.get());
      sqlite3_reset(stmt);
      persist_log().error("{}", message);
      throw RuntimeError(message + way_out(path_));
    }
    sqlite3_reset(stmt);
    return out;
  }

  const std::string& path() const { return path_; }
  std::uint64_t commit_count() const { return commits_.load(); }

 private:
  void run_writer() {
    mktl::detail::name_this_thread("mktl-persist");
    std::unique_lock lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return stopping_ || !pending_->values.empty(); });
      if (pending_->values.empty()) return;  // stopping, and everything is committed
      auto batch = std::exchange(pending_, std::make_shared<Batch>());
      inflight_ = batch;
      lock.unlock();
      // Whatever queues up while this commits becomes the next batch: that is
      // the group commit.
      std::string error = commit(*batch);
      lock.lock();
      batch->error = std::move(error);
      if (!batch->error.empty() && batch->async) async_failure_ = batch->error;
      batch->done = true;
      if (inflight_ == batch) inflight_.reset();
      done_.notify_all();
    }
  }

  // Returns "" on success, else the error text (already logged).
  std::string commit(const Batch& batch) noexcept {
    std::lock_guard lock(db_mu_);
    sqlite3* db = db_.get();
    std::string failed;
    try {
      if (!exec(db, "BEGIN IMMEDIATE")) {
        failed = "begin";
      } else {
        sqlite3_stmt* stmt = upsert_.get();
        for (const auto& [id, saved] : batch.values) {
          sqlite3_reset(stmt);
          sqlite3_clear_bindings(stmt);
          int rc = sqlite3_bind_text64(stmt, 1, id.first.data(), id.first.size(), SQLITE_STATIC, SQLITE_UTF8);
          if (rc == SQLITE_OK)
            rc = sqlite3_bind_text64(stmt, 2, id.second.data(), id.second.size(), SQLITE_STATIC, SQLITE_UTF8);
          if (rc == SQLITE_OK)
            rc = sqlite3_bind_text64(stmt, 3, saved.payload.data(), saved.payload.size(), SQLITE_STATIC,
                                     SQLITE_UTF8);
          if (rc == SQLITE_OK) {
            if (!saved.bulk)
              rc = sqlite3_bind_null(stmt, 4);
            else if (saved.bulk->empty())
              rc = sqlite3_bind_zeroblob(stmt, 4, 0);  // an empty bulk frame, not an absent one
            else
              rc = sqlite3_bind_blob64(stmt, 4, saved.bulk->data(), saved.bulk->size(), SQLITE_STATIC);
          }
          if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
          sqlite3_reset(stmt);
          if (rc != SQLITE_DONE) {
            failed = "write of " + id.second;
            break;
          }
        }
        if (failed.empty() && !exec(db, "COMMIT")) failed = "commit";
      }
    } catch (const std::exception& e) {
      failed = std::string("write (") + e.what() + ")";
    }
    if (failed.empty()) {
      commits_.fetch_add(1);
      // Rows are never deleted: the count only grows, with each new key.
      bool grew = false;
      for (const auto& [id, saved] : batch.values) grew = saved_.insert(id).second || grew;
      if (grew) update_marker();
      return {};
    }
    std::string message = "persistence database " + path_ + ": " + failed + " failed: " + errmsg(db) + "; " +
                          std::to_string(batch.values.size()) + " value(s) not saved";
    if (!sqlite3_get_autocommit(db)) exec(db, "ROLLBACK");
    persist_log().error("{}", message);
    return message;
  }

  // The value is committed whatever happens to the marker: a failure to
  // write it is logged (it only weakens the check at the next start).
  void update_marker() noexcept {
    try {
      if (auto error = write_marker(path_, saved_.size()); !error.empty())
        persist_log().warn("cannot write the persistence marker {}", error);
    } catch (const std::exception& e) {
      persist_log().warn("cannot write the persistence marker of {}: {}", path_, e.what());
    }
  }

  const std::string path_;
  Db db_;
  std::set<std::pair<std::string, std::string>> saved_;  // (uuid, key) in the file; under db_mu_
  std::mutex db_mu_;  // the connection: writer thread and load()
  Stmt upsert_;
  Stmt select_;

  std::mutex mu_;  // the queue below
  std::condition_variable work_;
  std::condition_variable done_;
  std::shared_ptr<Batch> pending_ = std::make_shared<Batch>();
  std::shared_ptr<Batch> inflight_;
  std::string async_failure_;  // the last failure of a save_async() batch not yet reported by flush()
  bool stopping_ = false;
  std::atomic<std::uint64_t> commits_{0};

  std::jthread writer_;  // last: starts after everything it uses exists
};

namespace {

// Checks the file and brings it to the current schema. Throws RuntimeError
// naming the file and the way out.
void prepare_database(sqlite3* db, const std::string& path) {
  auto fail = [&](const std::string& what) -> void {
    std::string message = "persistence database " + path + " is not usable: " + what;
    persist_log().error("{}", message);
    throw RuntimeError(message + way_out(path));
  };
  // Waiting a little beats failing when another process holds the file briefly.
  sqlite3_busy_timeout(db, 5000);

  // The first read of the file: a file that is not a database fails here.
  std::string text;
  if (!query_text(db, "PRAGMA user_version", text)) fail(problem(db));
  int version = std::atoi(text.c_str());
  if (version > Store::schema_version)
    fail("it has schema version " + std::to_string(version) + ", newer than the " +
         std::to_string(Store::schema_version) + " this mktl understands");

  // Corruption found now is an error at start-up, not a lost SET later.
  if (!query_text(db, "PRAGMA quick_check", text)) fail(problem(db));
  if (text != "ok") {
    // The report lists every damaged cell; its start is enough to recognise it.
    for (char& c : text)
      if (c == '\n') c = ';';
    if (text.size() > 300) text = text.substr(0, 300) + "...";
    fail("integrity check failed: " + text);
  }

  // WAL: a commit appends to the log, readers do not block the writer.
  // synchronous=FULL fsyncs the log at every commit, so an answered SET
  // survives power loss as well as kill -9; group commit keeps that cheap.
  if (!query_text(db, "PRAGMA journal_mode=WAL", text)) fail(problem(db));
  if (text != "wal") fail("cannot switch to WAL journal mode (got '" + text + "')");
  if (!exec(db, "PRAGMA synchronous=FULL")) fail(problem(db));

  if (version < Store::schema_version) {
    bool ok = exec(db, "BEGIN IMMEDIATE") &&
              exec(db,
                   "CREATE TABLE IF NOT EXISTS saved("
                   "uuid TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL, bulk BLOB, "
                   "PRIMARY KEY(uuid, key)) WITHOUT ROWID") &&
              exec(db, ("PRAGMA user_version=" + std::to_string(Store::schema_version)).c_str()) &&
              exec(db, "COMMIT");
    if (!ok) {
      std::string message = problem(db);
      if (!sqlite3_get_autocommit(db)) exec(db, "ROLLBACK");
      fail("cannot create the schema: " + message);
    }
  }
}

}  // namespace

std::string marker_path(const std::string& path) { return path + ".marker"; }

std::unique_ptr<Store> Store::open(const std::string& path) {
  std::filesystem::path file(path);
  // Before SQLite creates a missing file or writes a schema into an empty one.
  const std::uint64_t marked = read_marker(path);
  if (marked > 0) {
    std::error_code ec;
    const bool exists = std::filesystem::exists(file, ec);
    if (!exists && !ec) refuse_lost(path, marked, "missing");
    // Unless a -wal file holds what the main file has not received yet.
    auto empty = [](const std::string& name) {
      std::error_code error;
      return !std::filesystem::exists(name, error) || std::filesystem::file_size(name, error) == 0;
    };
    if (exists && empty(path) && empty(path + "-wal")) refuse_lost(path, marked, "empty (0 bytes)");
  }
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec)
      throw RuntimeError("persistence database " + path + ": cannot create directory " +
                         file.parent_path().string() + ": " + ec.message());
  }
  sqlite3* raw = nullptr;
  // NOMUTEX: the Impl serializes use of the connection itself.
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  Db db(raw);
  if (rc == SQLITE_OK && sqlite3_db_readonly(db.get(), "main") == 1) {
    // SQLite falls back to read-only when it may not write the file.
    std::string message = "persistence database " + path + " cannot be opened for writing: permission denied";
    persist_log().error("{}", message);
    throw RuntimeError(message + way_out(path));
  }
  if (rc != SQLITE_OK) {
    std::string message = "persistence database " + path + " cannot be opened: " + problem(db.get());
    persist_log().error("{}", message);
    throw RuntimeError(message + way_out(path));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  prepare_database(db.get(), path);
  persist_log().debug("persistence database {} open", path);
  return std::unique_ptr<Store>(new Store(std::make_unique<Impl>(path, std::move(db), marked)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

void Store::save(const std::string& uuid, const std::string& key, std::string payload,
                 std::optional<std::string> bulk) {
  impl_->save(uuid, key, std::move(payload), std::move(bulk));
}

void Store::save_async(const std::string& uuid, const std::string& key, std::string payload,
                       std::optional<std::string> bulk) {
  impl_->save_async(uuid, key, std::move(payload), std::move(bulk));
}

void Store::flush() { impl_->flush(); }
std::map<std::string, Saved> Store::load(const std::string& uuid) { return impl_->load(uuid); }
const std::string& Store::path() const { return impl_->path(); }
std::uint64_t Store::commit_count() const { return impl_->commit_count(); }

}  // namespace mktl::persist
