#include "persist/tables.hpp"
#include "common/text.hpp"

#include "config/logger.hpp"
#include "persist/sqlite.hpp"
#include "collections/column.hpp"
#include "json/detail.hpp"

#include <mktl/error.hpp>
#include <mktl/reading.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace mktl::persist {

using collections::Column;
using collections::Op;
using collections::OpSet;
using collections::OpType;
using collections::Table;
using sql::Db;
using sql::errmsg;
using sql::quote;
using sql::Stmt;

namespace {
using mktl::detail::shown;

spdlog::logger& log() {
  static const std::shared_ptr<spdlog::logger> logger = mktl::logger("mktl.tables");
  return *logger;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Upper case, runs of blanks made one space, trimmed: how two declarations are compared.
std::string normal_decl(const std::string& decl) {
  std::string out;
  bool blank = false;
  for (char c : decl) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      blank = true;
      continue;
    }
    if (blank && !out.empty()) out += ' ';
    blank = false;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

// SQLite's type affinity of a declared type (datatype3.html, section 3.1).
enum class Affinity { integer, text, blob, real, numeric };
Affinity affinity(const std::string& type) {
  std::string t = upper(type);
  if (t.find("INT") != std::string::npos) return Affinity::integer;
  if (t.find("CHAR") != std::string::npos || t.find("CLOB") != std::string::npos || t.find("TEXT") != std::string::npos)
    return Affinity::text;
  if (t.empty() || t.find("BLOB") != std::string::npos) return Affinity::blob;
  if (t.find("REAL") != std::string::npos || t.find("FLOA") != std::string::npos || t.find("DOUB") != std::string::npos)
    return Affinity::real;
  return Affinity::numeric;
}

std::optional<Json> number_from_text(const std::string& text) {
  if (text.empty()) return std::nullopt;
  try {
    Json v = json::parse(text);
    if (v.is_number()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// A client's value for COLUMN of TABLE, checked against the column's type
// (numeric text is taken for numbers, as mKTL's numeric items take it).
Json coerce(const Table& table, const Column& column, const Json& value) {
  if (value.is_null()) return value;
  auto fail = [&](const char* expected) -> Json {
    throw TypeError("field '" + column.name + "' (" + table.name + "." + column.name + ", " +
                    (column.type.empty() ? std::string("untyped") : column.type) + ") expects " + expected + "; got " +
                    shown(value));
  };
  switch (affinity(column.type)) {
    case Affinity::integer:
      if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
      if (value.is_number_integer()) return value;
      if (value.is_number_float()) {
        double d = value.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
        return fail("an integer");
      }
      if (value.is_string())
        if (auto n = number_from_text(value.get<std::string>())) return coerce(table, column, *n);
      return fail("an integer");
    case Affinity::real:
    case Affinity::numeric:
      if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
      if (value.is_number()) return value;
      if (value.is_string())
        if (auto n = number_from_text(value.get<std::string>())) return *n;
      return fail("a number");
    case Affinity::text:
      if (value.is_string()) return value;
      if (value.is_object() || value.is_array()) return json::dump(value);  // kept as JSON text
      return fail("a string");
    case Affinity::blob:
      if (value.is_object() || value.is_array()) return json::dump(value);
      return value;
  }
  return value;
}

int bind_value(sqlite3_stmt* stmt, int index, const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return sqlite3_bind_null(stmt, index);
    case Json::value_t::boolean: return sqlite3_bind_int64(stmt, index, value.get<bool>() ? 1 : 0);
    case Json::value_t::number_integer: return sqlite3_bind_int64(stmt, index, value.get<std::int64_t>());
    case Json::value_t::number_unsigned: {
      auto u = value.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(INT64_MAX)) return sqlite3_bind_int64(stmt, index, static_cast<std::int64_t>(u));
      return sqlite3_bind_double(stmt, index, static_cast<double>(u));
    }
    case Json::value_t::number_float: return sqlite3_bind_double(stmt, index, value.get<double>());
    case Json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      return sqlite3_bind_text64(stmt, index, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    default: {
      std::string s = json::dump(value);
      return sqlite3_bind_text64(stmt, index, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
  }
}

Json column_value(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER: return sqlite3_column_int64(stmt, i);
    case SQLITE_FLOAT: return sqlite3_column_double(stmt, i);
    case SQLITE_NULL: return nullptr;
    default: {
      auto data = reinterpret_cast<const char*>(sqlite3_column_blob(stmt, i));
      auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, i));
      return data ? std::string(data, size) : std::string();
    }
  }
}

Json row_of(sqlite3_stmt* stmt) {
  Json row = Json::object();
  int n = sqlite3_column_count(stmt);
  for (int i = 0; i < n; ++i) row[sqlite3_column_name(stmt, i)] = column_value(stmt, i);
  return row;
}

// The rows of a transaction log entry (column i holds {"rows": ROWS}), as JSON text.
std::string logged_rows(sqlite3_stmt* stmt, int i) {
  auto text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
  return json::dump(json::parse(text ? text : "{}").value("rows", Json()));
}

// mkio's ref form, "YYYYMMDD HH:MM:SS.mmmuuunnnppp" in UTC: sortable and
// unique, the last three digits counting refs made in one nanosecond. The
// date and time of day are formatted once per second.
class RefClock {
 public:
  std::string next() {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (ns <= last_) {
      ++counter_;
      if (counter_ == 1000) {  // a thousand in one nanosecond: borrow the next one
        counter_ = 0;
        ++last_;
      }
      ns = last_;
    } else {
      counter_ = 0;
      last_ = ns;
    }
    const std::int64_t secs = ns / 1000000000;
    if (secs != prefix_secs_) {
      std::time_t t = static_cast<std::time_t>(secs);
      std::tm tm{};
      gmtime_r(&t, &tm);
      prefix_len_ = std::strftime(prefix_, sizeof prefix_, "%Y%m%d %H:%M:%S", &tm);
      prefix_secs_ = secs;
    }
    char buf[sizeof prefix_ + 13];
    std::memcpy(buf, prefix_, prefix_len_);
    char* p = buf + prefix_len_;
    *p++ = '.';
    digits(p, static_cast<std::uint64_t>(ns % 1000000000), 9);
    digits(p + 9, static_cast<std::uint64_t>(counter_), 3);
    return std::string(buf, p + 12);
  }

 private:
  static void digits(char* out, std::uint64_t value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[i] = static_cast<char>('0' + value % 10);
  }
  std::int64_t last_ = 0;
  int counter_ = 0;
  std::int64_t prefix_secs_ = -1;
  char prefix_[32] = {};
  std::size_t prefix_len_ = 0;
};

// A result column as JSON text, spelt as mktl::json::dump spells the value
// column_value() makes of it.
void append_column(std::string& out, sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER: {
      char buf[24];
      auto res = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(sqlite3_column_int64(stmt, i)));
      out.append(buf, res.ptr);
      return;
    }
    case SQLITE_FLOAT: json::detail::append_double(out, sqlite3_column_double(stmt, i)); return;
    case SQLITE_NULL: out.append("null"); return;
    default: {
      auto data = reinterpret_cast<const char*>(sqlite3_column_blob(stmt, i));
      auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, i));
      json::detail::append_string(out, data ? std::string_view(data, size) : std::string_view());
      return;
    }
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// ---- schema ---------------------------------------------------------------

bool has_word(const std::string& decl, const char* word) { return normal_decl(decl).find(word) != std::string::npos; }

std::string create_sql(const Table& table, const std::string& name) {
  std::string sql = "CREATE TABLE " + quote(name) + " (";
  bool column_pk = false;
  for (std::size_t i = 0; i < table.columns.size(); ++i) {
    const auto& c = table.columns[i];
    sql += (i ? ", " : "") + quote(c.name) + (c.decl.empty() ? "" : " " + c.decl);
    column_pk = column_pk || has_word(c.decl, "PRIMARY KEY");
  }
  if (!column_pk && !table.primary_key.empty()) {
    std::vector<std::string> quoted;
    for (auto& k : table.primary_key) quoted.push_back(quote(k));
    sql += ", PRIMARY KEY (" + joined(quoted) + ")";
  }
  return sql + ")";
}

struct OldColumn {
  std::string name;
  std::string decl;  // exact when we created the table, else rebuilt from PRAGMA table_info
  std::string type;
  bool exact = false;
};

}  // namespace

std::string SchemaChange::text() const {
  std::string out = table + ": " + what;
  if (lossy) out += " (" + std::to_string(rows) + " row" + (rows == 1 ? "" : "s") + " affected)";
  return out;
}

Json Committed::to_json() const { return json::parse(value_json()); }

std::string Committed::value_json() const {
  // The members in name order, as json::dump writes an object.
  std::string out;
  out.reserve(rows.size() + ref.size() + 64);
  out.append(duplicate ? "{\"duplicate\":true,\"ref\":" : "{\"ref\":");
  json::detail::append_string(out, ref);
  out.append(",\"rows\":");
  out.append(rows.empty() ? std::string_view("null") : std::string_view(rows));
  out.append(",\"seq\":");
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, seq).ptr);
  out.append(",\"time\":");
  json::detail::append_double(out, time);
  out.push_back('}');
  return out;
}

// ---------------------------------------------------------------------------

class Tables::Impl {
 public:
  Impl(const collections::Config& config, TablesOptions options) : config_(config), options_(std::move(options)) {}

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_.notify_all();
    if (writer_.joinable()) writer_.join();
  }

  void open() {
    namespace fs = std::filesystem;
    fs::path file(options_.path);
    if (file.has_parent_path()) {
      std::error_code ec;
      fs::create_directories(file.parent_path(), ec);
      if (ec) throw RuntimeError("tables database " + options_.path + ": cannot create its directory: " + ec.message());
    }
    db_ = open_connection(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    std::string text;
    if (!sql::query_text(db_.get(), "PRAGMA journal_mode=WAL", text) || text != "wal")
      fail_open("cannot switch to WAL journal mode: " + errmsg(db_.get()));
    if (!sql::exec(db_.get(), "PRAGMA synchronous=FULL")) fail_open(errmsg(db_.get()));
    if (!sql::query_text(db_.get(), "PRAGMA quick_check", text)) fail_open(errmsg(db_.get()));
    if (text != "ok") fail_open("integrity check failed: " + text.substr(0, 300));
    migrate();
    reader_ = open_connection(SQLITE_OPEN_READONLY);
    prepare_statements();
    writer_ = std::jthread([this] { run_writer(); });
  }

  const std::vector<SchemaChange>& applied() const { return applied_; }
  const std::string& path() const { return options_.path; }

  Stats stats() const { return Stats{commits_.load(), transactions_.load(), failed_.load()}; }

  // ---- requests -------------------------------------------------------------

  struct Job {
    const OpSet* set;
    Json data;
    std::string ref;
    Done done;
    std::exception_ptr error;
    Committed result;
  };

  void submit(const OpSet& set, Json data, std::string ref, Done done) {
    check(set, data);
    std::unique_lock lock(mu_);
    if (stopping_) throw RuntimeError("the tables database is closing; transaction not run");
    queue_.push_back(Job{&set, std::move(data), std::move(ref), std::move(done), nullptr, {}});
    // Only the arrival the writer waits for wakes it: the first one when it
    // is idle, the one that completes its batch while it collects; none while
    // it works (it looks at the queue when it is done).
    bool wake = queue_.size() == wake_at_;
    lock.unlock();
    if (wake) work_.notify_one();
  }

  std::optional<Committed> lookup(const std::string& ref, const std::string& item) {
    std::lock_guard lock(reader_mu_);
    return read_one(by_ref_.get(), ref, item);
  }

  std::optional<Committed> last(const std::string& item) {
    std::lock_guard lock(reader_mu_);
    return read_one(last_of_.get(), item);
  }

  void on_commit(Listener listener) {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
  }

  std::vector<Json> select(const std::string& text, const std::vector<Json>& params) {
    std::lock_guard lock(reader_mu_);
    sqlite3* db = reader_.get();
    auto it = selects_.find(text);
    if (it == selects_.end()) {
      Stmt stmt = sql::prepare(db, text.c_str());
      if (!stmt) throw ValueError("cannot prepare \"" + text + "\": " + errmsg(db));
      if (selects_.size() >= 256) selects_.clear();  // custom queries are few; never grow without bound
      it = selects_.emplace(text, std::move(stmt)).first;
    }
    sqlite3_stmt* stmt = it->second.get();
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (std::size_t i = 0; i < params.size(); ++i)
      if (bind_value(stmt, static_cast<int>(i + 1), params[i]) != SQLITE_OK)
        throw ValueError("cannot bind parameter " + std::to_string(i + 1) + " of \"" + text + "\": " + errmsg(db));
    std::vector<Json> rows;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) rows.push_back(row_of(stmt));
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) throw RuntimeError("tables database " + options_.path + ": reading \"" + text + "\": " + errmsg(db));
    return rows;
  }

 private:
  [[noreturn]] void fail_open(const std::string& what) const {
    std::string message = "tables database " + options_.path + " is not usable: " + what;
    log().error("{}", message);
    throw RuntimeError(message);
  }

  Db open_connection(int flags) {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(options_.path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    Db db(raw);
    if (rc != SQLITE_OK) fail_open("cannot open it: " + errmsg(db.get()));
    sqlite3_extended_result_codes(db.get(), 1);
    sqlite3_busy_timeout(db.get(), 5000);
    return db;
  }

  Stmt must_prepare(sqlite3* db, const std::string& text) {
    Stmt stmt = sql::prepare(db, text.c_str());
    if (!stmt) fail_open("cannot prepare \"" + text + "\": " + errmsg(db));
    return stmt;
  }

  void prepare_statements() {
    sqlite3* db = db_.get();
    begin_ = must_prepare(db, "BEGIN IMMEDIATE");
    commit_ = must_prepare(db, "COMMIT");
    savepoint_ = must_prepare(db, "SAVEPOINT txn");
    release_ = must_prepare(db, "RELEASE txn");
    rollback_to_ = must_prepare(db, "ROLLBACK TO txn");
    log_insert_ = must_prepare(db, "INSERT INTO _mktl_log(ref, item, time, result) VALUES (?1, ?2, ?3, ?4)");
    log_find_ = must_prepare(db, "SELECT seq, time, result FROM _mktl_log WHERE item = ?2 AND ref = ?1");
    prune_ = must_prepare(db,
                          "DELETE FROM _mktl_log WHERE item = ?1 AND seq <= (SELECT seq FROM _mktl_log WHERE item = ?1 "
                          "ORDER BY seq DESC LIMIT 1 OFFSET ?2)");
    by_ref_ = must_prepare(reader_.get(), "SELECT seq, time, result, ref FROM _mktl_log WHERE ref = ?1 AND (?2 IS NULL OR item = ?2)");
    last_of_ = must_prepare(reader_.get(),
                            "SELECT seq, time, result, ref FROM _mktl_log WHERE item = ?1 ORDER BY seq DESC LIMIT 1");
    for (auto& service : config_.transactions)
      for (auto& set : service.op_sets) keep_[set.item] = service.change_log_size;
  }

  // The log entry the statement finds for ?1 (and ?2, when `second` is not empty; else ?2 is NULL).
  std::optional<Committed> read_one(sqlite3_stmt* stmt, const std::string& key, const std::string& second = {}) {
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
      std::string message = errmsg(reader_.get());
      sqlite3_reset(stmt);
      throw RuntimeError("tables database " + options_.path + ": cannot read the transaction log: " + message);
    }
    sqlite3_reset(stmt);
    return out;
  }

  // ---- checks before queueing ---------------------------------------------

  // The columns an op takes from the client's data.
  static bool takes(const Op& op, const Table& table, const std::string& column) {
    if (!table.column(column)) return false;
    if (std::find(op.fields.begin(), op.fields.end(), column) != op.fields.end()) return true;
    if (op.defaults.contains(column)) return true;  // client data overrides op defaults
    return op.type != OpType::insert && std::find(op.key.begin(), op.key.end(), column) != op.key.end();
  }

  static bool bound(const Op& op, const std::string& column) {
    return std::any_of(op.bind.begin(), op.bind.end(), [&](auto& b) { return b.column == column; });
  }

  void check(const OpSet& set, Json& data) const {
    if (!data.is_object())
      throw TypeError("a transaction's value is a JSON object of fields (" + set.item + "), got " + shown(data));
    // Every field must be one some op takes.
    for (auto& [field, value] : data.items()) {
      bool used = false;
      std::vector<std::string> known;
      for (auto& op : set.ops) {
        const Table* table = config_.table(op.table);
        if (!table) continue;
        if (takes(op, *table, field)) {
          used = true;
          data[field] = coerce(*table, *table->column(field), value);
          break;
        }
        for (auto& c : table->columns)
          if (takes(op, *table, c.name)) known.push_back(c.name);
      }
      if (used) continue;
      std::sort(known.begin(), known.end());
      known.erase(std::unique(known.begin(), known.end()), known.end());
      std::string message = "unknown field '" + field + "' for " + set.item + collections::detail::suggestion(field, known);
      message += " (fields: " + (known.empty() ? std::string("none") : joined(known)) + ")";
      throw ValueError(message);
    }
    // Required fields and keys.
    for (std::size_t i = 0; i < set.ops.size(); ++i) {
      const Op& op = set.ops[i];
      const Table* table = config_.table(op.table);
      if (!table) throw RuntimeError("op " + std::to_string(i) + " of " + set.item + " names unknown table " + op.table);
      auto given = [&](const std::string& column) {
        return (takes(op, *table, column) && data.contains(column)) || op.defaults.contains(column) || bound(op, column);
      };
      if (op.type == OpType::insert || op.type == OpType::upsert) {
        for (auto& c : table->columns) {
          if (given(c.name) || c.autoincrement || c.generated || c.default_sql || !c.not_null) continue;
          throw ValueError("missing field '" + c.name + "' for " + set.item + " (" + table->name + "." + c.name +
                           " is NOT NULL without a default)");
        }
      }
      if (op.type != OpType::insert) {
        for (auto& k : op.key)
          if (!given(k))
            throw ValueError("missing field '" + k + "' for " + set.item + ": the " +
                             collections::op_type_name(op.type) + " of " + table->name + " finds its row by " +
                             joined(op.key));
      }
    }
  }

  // ---- the writer ----------------------------------------------------------

  void run_writer() {
    std::vector<Job> batch;
    std::size_t previous = 0;
    Listener listener;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        wake_at_ = 1;
        work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and nothing is left
        listener = listener_;
        // Requests arriving concurrently: wait for as many as the previous
        // batch held (the concurrency seen), at most batch_wait_ms. A lone
        // client (previous batch of one) is never delayed.
        const std::size_t want = std::min(previous, static_cast<std::size_t>(std::max(options_.batch_max, 1)));
        if (want > 1 && queue_.size() < want && options_.batch_wait_ms > 0 && !stopping_) {
          auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double, std::milli>(options_.batch_wait_ms));
          wake_at_ = want;
          work_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= want; });
        }
        wake_at_ = 0;  // working: arrivals queue without waking the writer
        take(batch);
      }
      previous = batch.size();
      execute(batch, static_cast<bool>(listener));
      if (listener) {
        std::vector<const Committed*> committed;
        for (auto& job : batch)
          if (!job.error && !job.result.duplicate) committed.push_back(&job.result);
        if (!committed.empty()) {
          try {
            listener(committed);
          } catch (const std::exception& e) {
            log().error("the change listener failed: {}", e.what());
          }
        }
      }
      for (auto& job : batch) {
        try {
          job.done(job.error, job.error ? nullptr : &job.result);
        } catch (const std::exception& e) {
          log().error("a transaction's completion failed: {}", e.what());
        }
      }
      batch.clear();
    }
  }

  // Caller holds mu_.
  void take(std::vector<Job>& batch) {
    while (!queue_.empty() && static_cast<int>(batch.size()) < options_.batch_max) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }

  bool step_done(sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE;
  }

  [[noreturn]] void throw_db(const std::string& what) {
    sqlite3* db = db_.get();
    int code = sqlite3_extended_errcode(db) & 0xff;
    std::string text = what + ": " + errmsg(db);
    if (code == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH || code == SQLITE_TOOBIG || code == SQLITE_RANGE)
      throw ValueError(text);
    throw RuntimeError(text);
  }

  void execute(std::vector<Job>& batch, bool with_changes) {
    sqlite3* db = db_.get();
    double time = now();
    if (!step_done(begin_.get())) {
      auto error = std::make_exception_ptr(RuntimeError("tables database " + options_.path + ": cannot begin: " + errmsg(db)));
      for (auto& job : batch) job.error = error;
      failed_ += batch.size();
      return;
    }
    std::exception_ptr fatal;
    for (auto& job : batch) {
      if (fatal) {
        job.error = fatal;
        continue;
      }
      // A one-op transaction needs no SAVEPOINT: a statement that fails
      // leaves nothing behind (SQLite undoes it), and should its log entry
      // fail after it, the whole batch is rolled back (below).
      const bool savepoint = job.set->ops.size() > 1;
      bool unclean = false;
      try {
        if (savepoint && !step_done(savepoint_.get())) throw_db("savepoint");
        try {
          run(job, time, with_changes, unclean);
          if (savepoint && !step_done(release_.get())) throw_db("release");
        } catch (...) {
          if (savepoint && !sqlite3_get_autocommit(db)) {
            step_done(rollback_to_.get());
            step_done(release_.get());
            unclean = false;
          }
          throw;
        }
      } catch (...) {
        job.error = std::current_exception();
        // Some errors (disk full, I/O) end the whole transaction.
        if (unclean || sqlite3_get_autocommit(db)) fatal = job.error;
      }
    }
    if (fatal) {
      if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
      for (auto& job : batch) job.error = fatal;
      failed_ += batch.size();
      return;
    }
    if (++since_prune_ >= 1024) {
      since_prune_ = 0;
      prune();
    }
    if (!step_done(commit_.get())) {
      auto error = std::make_exception_ptr(
          RuntimeError("tables database " + options_.path + ": commit failed, transaction not applied: " + errmsg(db)));
      if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
      for (auto& job : batch) job.error = error;
      failed_ += batch.size();
      log().error("commit of {} transaction(s) failed: {}", batch.size(), errmsg(db));
      return;
    }
    commits_.fetch_add(1);
    for (auto& job : batch) (job.error ? failed_ : transactions_).fetch_add(1);
  }

  void prune() {
    for (auto& [item, keep] : keep_) {
      sqlite3_stmt* stmt = prune_.get();
      sqlite3_reset(stmt);
      sqlite3_bind_text64(stmt, 1, item.data(), item.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      sqlite3_bind_int64(stmt, 2, std::max(keep, 1));
      if (sqlite3_step(stmt) != SQLITE_DONE) log().warn("pruning the transaction log of {}: {}", item, errmsg(db_.get()));
      sqlite3_reset(stmt);
    }
  }

  // ---- running one transaction ----------------------------------------------

  // An op's statement for one set of written columns, prepared once.
  struct Prepared {
    Stmt stmt;
    std::vector<int> params;  // the table column bound to ?1, ?2, ...
    std::vector<std::pair<std::string, int>> returned;  // RETURNING columns in name order, with their index
  };

  // How an op writes its table, worked out once per op: which column takes
  // the client's value, an op default (coerced) or an earlier op's field.
  struct OpPlan {
    const Table* table = nullptr;
    std::vector<char> takes;                    // per table column: taken from the client's data
    std::vector<std::optional<Json>> defaults;  // per table column: the op default
    std::vector<int> bind;                      // per table column: index into op.bind, else -1
    std::vector<int> key;                       // op.key as table columns
    bool bound_to = false;                      // a later op binds to its RETURNING row
    std::unordered_map<std::string, Prepared> statements;  // by written columns ('1' per written one)
  };

  std::vector<OpPlan>& plan_of(const OpSet& set) {
    auto it = plans_.find(&set);
    if (it != plans_.end()) return it->second;
    std::vector<OpPlan> plans(set.ops.size());
    for (std::size_t i = 0; i < set.ops.size(); ++i) {
      const Op& op = set.ops[i];
      OpPlan& plan = plans[i];
      plan.table = config_.table(op.table);
      if (!plan.table) throw RuntimeError("op " + std::to_string(i) + " of " + set.item + " names unknown table " + op.table);
      const auto& columns = plan.table->columns;
      auto index = [&](const std::string& name) {
        for (std::size_t j = 0; j < columns.size(); ++j)
          if (columns[j].name == name) return static_cast<int>(j);
        throw RuntimeError("op " + std::to_string(i) + " of " + set.item + ": table " + op.table + " has no column " + name);
      };
      plan.takes.assign(columns.size(), 0);
      plan.defaults.assign(columns.size(), std::nullopt);
      plan.bind.assign(columns.size(), -1);
      for (std::size_t j = 0; j < columns.size(); ++j) plan.takes[j] = takes(op, *plan.table, columns[j].name);
      for (auto& [column, value] : op.defaults.items()) {
        int j = index(column);
        plan.defaults[static_cast<std::size_t>(j)] = coerce(*plan.table, columns[static_cast<std::size_t>(j)], value);
      }
      for (std::size_t b = 0; b < op.bind.size(); ++b) {
        plan.bind[static_cast<std::size_t>(index(op.bind[b].column))] = static_cast<int>(b);
        if (op.bind[b].op >= 0 && static_cast<std::size_t>(op.bind[b].op) < i)
          plans[static_cast<std::size_t>(op.bind[b].op)].bound_to = true;
      }
      for (auto& k : op.key) plan.key.push_back(index(k));
    }
    return plans_.emplace(&set, std::move(plans)).first->second;
  }

  // The statement of `op` writing the columns marked in `written`.
  Prepared& prepared(const OpSet& set, const Op& op, OpPlan& plan, const std::string& written) {
    auto it = plan.statements.find(written);
    if (it != plan.statements.end()) return it->second;
    const Table& table = *plan.table;
    auto name = [&](int j) { return quote(table.columns[static_cast<std::size_t>(j)].name); };
    auto is_key = [&](int j) { return std::find(plan.key.begin(), plan.key.end(), j) != plan.key.end(); };
    Prepared p;
    std::string text;
    std::string where;
    if (op.type == OpType::update || op.type == OpType::delete_)
      for (int k : plan.key) where += (where.empty() ? " WHERE " : " AND ") + name(k) + " IS ?";
    switch (op.type) {
      case OpType::insert:
      case OpType::upsert: {
        std::string columns, marks, updates;
        for (std::size_t j = 0; j < written.size(); ++j) {
          if (written[j] != '1') continue;
          int c = static_cast<int>(j);
          columns += (columns.empty() ? "" : ", ") + name(c);
          marks += marks.empty() ? "?" : ", ?";
          p.params.push_back(c);
          if (op.type == OpType::upsert && !is_key(c)) updates += (updates.empty() ? "" : ", ") + name(c) + " = excluded." + name(c);
        }
        if (p.params.empty()) {
          text = "INSERT INTO " + quote(table.name) + " DEFAULT VALUES RETURNING *";
          break;
        }
        text = "INSERT INTO " + quote(table.name) + " (" + columns + ") VALUES (" + marks + ")";
        if (op.type == OpType::upsert) {
          std::vector<std::string> keys;
          for (auto& k : op.key) keys.push_back(quote(k));
          if (updates.empty()) updates = quote(op.key.front()) + " = excluded." + quote(op.key.front());
          text += " ON CONFLICT (" + joined(keys) + ") DO UPDATE SET " + updates;
        }
        text += " RETURNING *";
        break;
      }
      case OpType::update: {
        std::string sets;
        for (std::size_t j = 0; j < written.size(); ++j) {
          int c = static_cast<int>(j);
          if (written[j] != '1' || is_key(c)) continue;
          sets += (sets.empty() ? "" : ", ") + name(c) + " = ?";
          p.params.push_back(c);
        }
        if (sets.empty())
          throw ValueError(set.item + ": the update of " + table.name + " has no field to change (it takes " +
                           (op.fields.empty() ? std::string("any column") : joined(op.fields)) + ")");
        p.params.insert(p.params.end(), plan.key.begin(), plan.key.end());
        text = "UPDATE " + quote(table.name) + " SET " + sets + where + " RETURNING *";
        break;
      }
      case OpType::delete_: {
        p.params = plan.key;
        text = "DELETE FROM " + quote(table.name) + where + " RETURNING *";
        break;
      }
    }
    p.stmt = sql::prepare(db_.get(), text.c_str());
    if (!p.stmt) throw_db("cannot prepare \"" + text + "\"");
    int n = sqlite3_column_count(p.stmt.get());
    for (int i = 0; i < n; ++i) p.returned.emplace_back(sqlite3_column_name(p.stmt.get(), i), i);
    std::sort(p.returned.begin(), p.returned.end());  // a JSON object's members in name order, as json::dump writes them
    return plan.statements.emplace(written, std::move(p)).first->second;
  }

  // `unclean` is set while the transaction's changes stand without their log
  // entry (a failure then can only be undone with the whole batch, unless
  // the caller holds a SAVEPOINT).
  void run(Job& job, double time, bool with_changes, bool& unclean) {
    const OpSet& set = *job.set;
    Committed& result = job.result;
    if (!job.ref.empty()) {
      sqlite3_stmt* find = log_find_.get();
      sqlite3_reset(find);
      sqlite3_bind_text64(find, 1, job.ref.data(), job.ref.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      sqlite3_bind_text64(find, 2, set.item.data(), set.item.size(), SQLITE_STATIC, SQLITE_UTF8);
      int rc = sqlite3_step(find);
      if (rc == SQLITE_ROW) {
        result.ref = job.ref;
        result.seq = sqlite3_column_int64(find, 0);
        result.time = sqlite3_column_double(find, 1);
        result.rows = logged_rows(find, 2);
        result.duplicate = true;
        sqlite3_reset(find);
        return;
      }
      sqlite3_reset(find);
      if (rc != SQLITE_DONE) throw_db("reading the transaction log");
    }
    result.ref = job.ref.empty() ? refs_.next() : job.ref;
    result.time = time;
    // The log entry {"rows": [...]}; its inner array is the result's rows.
    std::string& text = log_text_;
    text.assign("{\"rows\":[");
    auto& plans = plan_of(set);
    first_rows_.assign(set.ops.size(), Json());
    for (std::size_t i = 0; i < set.ops.size(); ++i) {
      if (i) text.push_back(',');
      run_op(set, i, plans, job.data, result, text, with_changes);
    }
    text.append("]}");
    unclean = true;
    sqlite3_stmt* ins = log_insert_.get();
    sqlite3_reset(ins);
    sqlite3_bind_text64(ins, 1, result.ref.data(), result.ref.size(), SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text64(ins, 2, set.item.data(), set.item.size(), SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_double(ins, 3, time);
    sqlite3_bind_text64(ins, 4, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc != SQLITE_DONE) throw_db("recording transaction " + result.ref);
    unclean = false;
    result.seq = sqlite3_last_insert_rowid(db_.get());
    result.rows.assign(text, 8, text.size() - 9);  // without {"rows": and }
  }

  // Runs op `index` of `set`, appending its RETURNING row(s) to `text` as
  // JSON; keeps its first row as JSON when a later op binds to it, and each
  // row as a Change when `with_changes`.
  void run_op(const OpSet& set, std::size_t index, std::vector<OpPlan>& plans, const Json& data, Committed& result,
              std::string& text, bool with_changes) {
    const Op& op = set.ops[index];
    OpPlan& plan = plans[index];
    const Table& table = *plan.table;
    const std::size_t n = table.columns.size();
    // Values: a bind, else the client's, else the op default.
    values_.assign(n, nullptr);
    for (std::size_t j = 0; j < n; ++j) {
      if (int b = plan.bind[j]; b >= 0) {
        const collections::Bind& bind = op.bind[static_cast<std::size_t>(b)];
        const Json& row = first_rows_.at(static_cast<std::size_t>(bind.op));
        if (!row.is_object())
          throw ValueError(set.item + ": op " + std::to_string(index) + " binds " + bind.column + " to $" +
                           std::to_string(bind.op) + "." + bind.field + ", but op " + std::to_string(bind.op) +
                           " returned no row");
        auto f = row.find(bind.field);
        if (f == row.end())
          throw ValueError(set.item + ": op " + std::to_string(index) + " binds " + bind.column + " to $" +
                           std::to_string(bind.op) + "." + bind.field + ", but that row has no field " + bind.field);
        values_[j] = &*f;
        continue;
      }
      if (plan.takes[j]) {
        auto f = data.find(table.columns[j].name);
        if (f != data.end()) {
          values_[j] = &*f;
          continue;
        }
      }
      if (plan.defaults[j]) values_[j] = &*plan.defaults[j];
    }
    for (int k : plan.key)
      if (op.type != OpType::insert && !values_[static_cast<std::size_t>(k)])
        throw ValueError("missing field '" + table.columns[static_cast<std::size_t>(k)].name + "' for " + set.item);
    written_.assign(n, '0');
    if (op.type != OpType::delete_)
      for (std::size_t j = 0; j < n; ++j)
        if (values_[j]) written_[j] = '1';
    Prepared& p = prepared(set, op, plan, written_);
    sqlite3_stmt* stmt = p.stmt.get();
    for (std::size_t i = 0; i < p.params.size(); ++i)
      if (bind_value(stmt, static_cast<int>(i + 1), *values_[static_cast<std::size_t>(p.params[i])]) != SQLITE_OK) {
        sqlite3_reset(stmt);
        throw_db("binding " + table.name);
      }
    const bool keep_json = with_changes || plan.bound_to;
    const std::size_t start = text.size();
    std::size_t rows = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (rows++) text.push_back(',');
      text.push_back('{');
      bool first = true;
      for (auto& [column, i] : p.returned) {
        if (!first) text.push_back(',');
        first = false;
        json::detail::append_string(text, column);
        text.push_back(':');
        append_column(text, stmt, i);
      }
      text.push_back('}');
      if (keep_json) {
        Json row = row_of(stmt);
        if (rows == 1) first_rows_[index] = row;
        if (with_changes) result.changes.push_back(Change{table.name, op.type, std::move(row)});
      }
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) throw_db(set.item + ": " + collections::op_type_name(op.type) + " of " + table.name);
    if (rows == 0 && op.type != OpType::insert) {
      std::string match;
      for (int k : plan.key)
        match += (match.empty() ? "" : " and ") + table.columns[static_cast<std::size_t>(k)].name + " = " +
                 shown(*values_[static_cast<std::size_t>(k)]);
      throw ValueError(set.item + ": the " + collections::op_type_name(op.type) + " of " + table.name +
                       " matched no row (" + match + ")");
    }
    if (rows == 0) {
      text.append("null");
    } else if (rows > 1) {
      text.insert(start, 1, '[');
      text.push_back(']');
    }
  }

  // ---- schema migration ----------------------------------------------------

  std::int64_t count(const std::string& text) {
    Stmt stmt = sql::prepare(db_.get(), text.c_str());
    if (!stmt) fail_open("cannot count rows (" + text + "): " + errmsg(db_.get()));
    std::int64_t n = 0;
    if (sqlite3_step(stmt.get()) == SQLITE_ROW) n = sqlite3_column_int64(stmt.get(), 0);
    return n;
  }

  std::vector<std::string> existing_tables() {
    std::vector<std::string> out;
    Stmt stmt = sql::prepare(db_.get(), "SELECT name FROM sqlite_master WHERE type = 'table'");
    if (!stmt) fail_open(errmsg(db_.get()));
    while (sqlite3_step(stmt.get()) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
    return out;
  }

  // Columns as recorded when we created the table, else as SQLite reports them.
  std::vector<OldColumn> old_columns(const std::string& table, std::vector<std::string>& pk) {
    std::vector<OldColumn> out;
    {
      Stmt stmt = sql::prepare(db_.get(), "SELECT columns, primary_key FROM _mktl_schema WHERE name = ?1");
      if (!stmt) fail_open(errmsg(db_.get()));
      sqlite3_bind_text64(stmt.get(), 1, table.data(), table.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      if (sqlite3_step(stmt.get()) == SQLITE_ROW) {
        Json columns = json::parse(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
        Json keys = json::parse(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1)));
        for (auto& c : columns) {
          OldColumn oc{c.at(0).get<std::string>(), c.at(1).get<std::string>(), c.at(2).get<std::string>(), true};
          out.push_back(std::move(oc));
        }
        for (auto& k : keys) pk.push_back(k.get<std::string>());
        return out;
      }
    }
    Stmt stmt = sql::prepare(db_.get(), ("PRAGMA table_info(" + quote(table) + ")").c_str());
    if (!stmt) fail_open(errmsg(db_.get()));
    std::vector<std::pair<int, std::string>> keys;
    while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
      OldColumn c;
      c.name = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1));
      auto type = sqlite3_column_text(stmt.get(), 2);
      c.type = type ? reinterpret_cast<const char*>(type) : "";
      c.decl = c.type;
      if (sqlite3_column_int(stmt.get(), 3)) c.decl += " NOT NULL";
      if (auto d = sqlite3_column_text(stmt.get(), 4)) c.decl += std::string(" DEFAULT ") + reinterpret_cast<const char*>(d);
      if (int k = sqlite3_column_int(stmt.get(), 5)) keys.emplace_back(k, c.name);
      out.push_back(std::move(c));
    }
    std::sort(keys.begin(), keys.end());
    for (auto& k : keys) pk.push_back(k.second);
    return out;
  }

  struct Plan {
    std::vector<SchemaChange> changes;
    std::vector<std::string> create;                                  // new tables
    std::vector<std::pair<std::string, const Column*>> add_columns;  // table, column
    std::vector<std::string> rebuild;                                 // tables copied into a new definition
    std::vector<std::string> drop;                                    // tables no longer configured
  };

  Plan plan() {
    Plan p;
    auto existing = existing_tables();
    std::set<std::string> present(existing.begin(), existing.end());
    for (const Table& table : config_.tables) {
      if (!present.count(table.name)) {
        p.create.push_back(table.name);
        p.changes.push_back({table.name, "new table", false, 0});
        continue;
      }
      std::vector<std::string> old_pk;
      auto old = old_columns(table.name, old_pk);
      bool rebuild = false;
      std::int64_t rows = -1;
      auto rows_now = [&] {
        if (rows < 0) rows = count("SELECT COUNT(*) FROM " + quote(table.name));
        return rows;
      };
      for (const Column& c : table.columns) {
        auto it = std::find_if(old.begin(), old.end(), [&](auto& o) { return o.name == c.name; });
        if (it == old.end()) {
          // ALTER TABLE ADD COLUMN takes neither an expression nor CURRENT_TIME/DATE/TIMESTAMP as default.
          bool constant_default = c.default_sql && c.default_sql->find('(') == std::string::npos &&
                                  upper(*c.default_sql).find("CURRENT_") == std::string::npos;
          bool simple = !c.primary_key && !has_word(c.decl, "UNIQUE") && (!c.not_null || constant_default) &&
                        (!c.default_sql || constant_default);
          if (simple) {
            p.add_columns.emplace_back(table.name, &c);
            p.changes.push_back({table.name, "new column " + c.name + " " + c.decl, false, 0});
          } else {
            rebuild = true;
            p.changes.push_back({table.name, "new column " + c.name + " " + c.decl + " (needs the table rebuilt)", true, rows_now()});
          }
          continue;
        }
        if (normal_decl(it->type) != normal_decl(c.type)) {
          rebuild = true;
          p.changes.push_back({table.name, "column " + c.name + ": type " + (it->type.empty() ? "(none)" : it->type) + " -> " +
                                               (c.type.empty() ? "(none)" : c.type),
                               true,
                               count("SELECT COUNT(*) FROM " + quote(table.name) + " WHERE " + quote(c.name) + " IS NOT NULL")});
        } else if (it->exact && normal_decl(it->decl) != normal_decl(c.decl)) {
          rebuild = true;
          p.changes.push_back({table.name, "column " + c.name + ": " + it->decl + " -> " + c.decl, true, rows_now()});
        }
      }
      for (auto& o : old) {
        if (table.column(o.name) || o.name.rfind("_mkio_", 0) == 0) continue;
        rebuild = true;
        p.changes.push_back({table.name, "dropped column " + o.name, true,
                             count("SELECT COUNT(*) FROM " + quote(table.name) + " WHERE " + quote(o.name) + " IS NOT NULL")});
      }
      if (old_pk != table.primary_key) {
        rebuild = true;
        p.changes.push_back({table.name, "primary key (" + joined(old_pk) + ") -> (" + joined(table.primary_key) + ")", true,
                             rows_now()});
      }
      if (rebuild) p.rebuild.push_back(table.name);
    }
    for (auto& name : existing) {
      if (name.rfind("sqlite_", 0) == 0 || name.rfind("_mktl_", 0) == 0 || config_.table(name)) continue;
      p.drop.push_back(name);
      p.changes.push_back({name, "dropped table", true, count("SELECT COUNT(*) FROM " + quote(name))});
    }
    return p;
  }

  void migrate() {
    sqlite3* db = db_.get();
    if (!sql::exec(db,
                   "CREATE TABLE IF NOT EXISTS _mktl_log (seq INTEGER PRIMARY KEY, ref TEXT NOT NULL, "
                   "item TEXT NOT NULL, time REAL NOT NULL, result TEXT NOT NULL, UNIQUE (item, ref))") ||
        !sql::exec(db, "CREATE INDEX IF NOT EXISTS _mktl_log_item ON _mktl_log (item, seq)") ||
        !sql::exec(db,
                   "CREATE TABLE IF NOT EXISTS _mktl_schema (name TEXT PRIMARY KEY, columns TEXT NOT NULL, "
                   "primary_key TEXT NOT NULL)"))
      fail_open("cannot create its own tables: " + errmsg(db));
    Plan p = plan();
    bool lossy = std::any_of(p.changes.begin(), p.changes.end(), [](auto& c) { return c.lossy; });
    bool allowed = options_.migrate || config_.auto_migrate;
    if (lossy && !allowed) {
      std::string text = "the tables in " + options_.path + " need changes that can lose data:";
      for (auto& c : p.changes)
        if (c.lossy) text += "\n  - " + c.text();
      text += "\nback up the file, then run markd with --migrate (or set auto_migrate = true) to apply them; or change "
              "the configuration back";
      throw ConfigError(options_.source, "/tables", text);
    }
    if (!p.changes.empty()) {
      if (!sql::exec(db, "BEGIN IMMEDIATE")) fail_open("cannot begin the migration: " + errmsg(db));
      try {
        auto run_sql = [&](const std::string& text) {
          if (!sql::exec(db, text)) throw RuntimeError(text + ": " + errmsg(db));
        };
        for (auto& name : p.drop) run_sql("DROP TABLE " + quote(name));
        for (auto& name : p.create) run_sql(create_sql(*config_.table(name), name));
        for (auto& [name, column] : p.add_columns)
          if (std::find(p.rebuild.begin(), p.rebuild.end(), name) == p.rebuild.end())
            run_sql("ALTER TABLE " + quote(name) + " ADD COLUMN " + quote(column->name) + " " + column->decl);
        for (auto& name : p.rebuild) {
          const Table& table = *config_.table(name);
          std::vector<std::string> pk;
          auto old = old_columns(name, pk);
          std::string common;
          for (auto& c : table.columns)
            if (std::any_of(old.begin(), old.end(), [&](auto& o) { return o.name == c.name; }))
              common += (common.empty() ? "" : ", ") + quote(c.name);
          std::string fresh = "_mktl_new_" + name;
          run_sql(create_sql(table, fresh));
          if (!common.empty())
            run_sql("INSERT INTO " + quote(fresh) + " (" + common + ") SELECT " + common + " FROM " + quote(name));
          run_sql("DROP TABLE " + quote(name));
          run_sql("ALTER TABLE " + quote(fresh) + " RENAME TO " + quote(name));
        }
        for (auto& name : p.drop) run_sql("DELETE FROM _mktl_schema WHERE name = '" + name + "'");
        if (!sql::exec(db, "COMMIT")) throw RuntimeError("commit: " + errmsg(db));
      } catch (const std::exception& e) {
        if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
        fail_open(std::string("the migration failed and was rolled back, the file is as it was: ") + e.what());
      }
      for (auto& c : p.changes) log().info("{}: {}", options_.path, c.text());
    }
    record_schema();
    applied_ = std::move(p.changes);
  }

  // What each configured table is, for the next start's comparison.
  void record_schema() {
    Stmt stmt = sql::prepare(db_.get(),
                             "INSERT INTO _mktl_schema (name, columns, primary_key) VALUES (?1, ?2, ?3) ON CONFLICT (name) "
                             "DO UPDATE SET columns = excluded.columns, primary_key = excluded.primary_key");
    if (!stmt) fail_open(errmsg(db_.get()));
    for (const Table& table : config_.tables) {
      Json columns = Json::array();
      for (auto& c : table.columns) columns.push_back(Json::array({c.name, c.decl, c.type}));
      std::string cols = json::dump(columns), keys = json::dump(Json(table.primary_key));
      sqlite3_reset(stmt.get());
      sqlite3_bind_text64(stmt.get(), 1, table.name.data(), table.name.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      sqlite3_bind_text64(stmt.get(), 2, cols.data(), cols.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      sqlite3_bind_text64(stmt.get(), 3, keys.data(), keys.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      if (sqlite3_step(stmt.get()) != SQLITE_DONE) fail_open("cannot record the schema: " + errmsg(db_.get()));
    }
  }

  const collections::Config& config_;
  TablesOptions options_;
  Db db_;      // the writer's connection: open() and then the writer thread only
  Db reader_;  // lookups, under reader_mu_
  std::mutex reader_mu_;
  Stmt begin_, commit_, savepoint_, release_, rollback_to_, log_insert_, log_find_, prune_, by_ref_, last_of_;
  // The writer's: op plans by op set, and scratch space reused by every transaction.
  std::unordered_map<const OpSet*, std::vector<OpPlan>> plans_;
  std::vector<const Json*> values_;
  std::string written_, log_text_;
  std::vector<Json> first_rows_;  // per op of the running transaction, when a later op binds to it
  std::unordered_map<std::string, Stmt> selects_;     // select(), by text, on reader_ under reader_mu_
  std::map<std::string, int> keep_;                   // record item -> log entries kept
  std::vector<SchemaChange> applied_;
  RefClock refs_;
  int since_prune_ = 0;

  std::mutex mu_;
  std::condition_variable work_;
  std::deque<Job> queue_;
  std::size_t wake_at_ = 0;  // the queue size whose arrival notifies the writer (0: none)
  bool stopping_ = false;
  Listener listener_;  // under mu_
  std::atomic<std::uint64_t> commits_{0}, transactions_{0}, failed_{0};
  std::jthread writer_;
};

std::unique_ptr<Tables> Tables::open(const collections::Config& config, TablesOptions options) {
  auto impl = std::make_unique<Impl>(config, std::move(options));
  impl->open();
  return std::unique_ptr<Tables>(new Tables(std::move(impl)));
}

Tables::Tables(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tables::~Tables() = default;
const std::vector<SchemaChange>& Tables::applied() const { return impl_->applied(); }
void Tables::submit(const OpSet& set, Json data, std::string ref, Done done) {
  impl_->submit(set, std::move(data), std::move(ref), std::move(done));
}
std::optional<Committed> Tables::lookup(const std::string& ref, const std::string& item) {
  return impl_->lookup(ref, item);
}
std::optional<Committed> Tables::last(const std::string& item) { return impl_->last(item); }
void Tables::on_commit(Listener listener) { impl_->on_commit(std::move(listener)); }
std::vector<Json> Tables::select(const std::string& sql, const std::vector<Json>& params) {
  return impl_->select(sql, params);
}
Tables::Stats Tables::stats() const { return impl_->stats(); }
const std::string& Tables::path() const { return impl_->path(); }

}  // namespace mktl::persist
