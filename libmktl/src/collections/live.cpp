#include "collections/live.hpp"
#include "common/thread_name.hpp"
#include "common/text.hpp"

#include "config/logger.hpp"
#include "persist/sqlite.hpp"
#include "persist/tables.hpp"
#include "transport/server.hpp"

#include <mktl/error.hpp>
#include <mktl/expr.hpp>
#include <mktl/reading.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>

namespace mktl::collections {

namespace {
using mktl::detail::shown;

spdlog::logger& log() {
  static const std::shared_ptr<spdlog::logger> logger = mktl::logger("mktl.collections");
  return *logger;
}

std::string random_epoch() {
  std::random_device device;
  std::uint64_t bits = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

// One committed transaction, as the collections thread needs it.
struct Txn {
  std::string ref;
  double time = 0;
  std::vector<persist::Change> changes;
};

// A published change, as a collection keeps it for `since` (its ring or log).
struct Logged {
  std::int64_t seq = 0;
  const char* op = "insert";
  Json ref;
  Json rowid;
  bool exists = true;
  Json value;
  Json time;  // null for a row read from SQLite

  Json to_json() const {
    return Json{{"op", op}, {"seq", seq}, {"ref", ref}, {"rowid", rowid}, {"exists", exists}, {"value", value}, {"time", time}};
  }
};

// A GET waiting for the collections thread.
struct GetTask {
  std::size_t collection;
  Json request;
  transport::Reply reply;
};

}  // namespace

std::string row_topic_id(const Json& rowid) {
  if (!rowid.is_string()) return json::dump(rowid);
  std::string out;
  for (unsigned char c : rowid.get_ref<const std::string&>()) {
    if (c == '.' || c == '%' || c < 0x20) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// One collection's state; only the collections thread touches it (after start()).
struct State {
  const Collection& config;
  std::string topic;       // "store.key."
  std::string row_prefix;  // "row:store.key."
  std::optional<Expression> where;
  std::vector<std::pair<std::string, Expression>> publish;
  std::vector<std::pair<std::string, Expression>> defaults;
  std::string id_column;  // the column naming a row (keyed: the key)
  std::string query;      // every row
  std::string since_query, by_id_query;  // stream: rows after a seq, one row
  bool reread = false;    // follow changes by re-running `query` and comparing
  std::set<std::string> watched;

  std::map<Json, Json> rows;  // keyed, table: rowid -> ROW
  // keyed, when the primary table's key is another column than `key`: the
  // primary key of the row each key holds, so that an update moving a row to
  // another key, or a delete, touches the key only when that row holds it.
  std::string pk_column;
  std::map<Json, Json> pk_of;   // key -> primary key of the row it holds
  std::map<Json, Json> key_of;  // the reverse
  std::deque<Logged> ring;      // stream: CHANGEs in seq order
  std::int64_t ring_floor = 0;  // stream: rows with a seq up to this may exist only in SQLite
  std::deque<Logged> log;       // keyed, table: the last CHANGEs, contiguous in seq
  std::int64_t seq = 0;

  Json last = nullptr;  // keyed, table: the last changed row (a stream's is its ring's last)
  double last_time = 0;
  Json last_ref = nullptr;
  std::uint64_t errors = 0, published = 0, unreported = 0;
  double last_report = -1e9;

  explicit State(const Collection& c) : config(c) {}
  bool stream() const { return config.kind == Kind::stream; }
  std::size_t count() const { return stream() ? ring.size() : rows.size(); }
};

class Live::Impl {
 public:
  Impl(const Config& config, persist::Tables& tables, std::string store, Publisher publisher)
      : config_(config), tables_(tables), publisher_(std::move(publisher)), epoch_(random_epoch()) {
    bus_size_ = static_cast<std::size_t>(std::max(config.change_bus_size, 1));
    for (const Collection& c : config.collections) {
      auto state = std::make_unique<State>(c);
      prepare(*state, store);
      for (auto& t : state->watched) {
        watched_.insert(t);
        last_watcher_[t] = states_.size();
      }
      by_name_[c.name] = states_.size();
      states_.push_back(std::move(state));
    }
  }

  ~Impl() { stop(); }

  void start() {
    for (auto& state : states_) {
      try {
        load(*state);
      } catch (const Error& e) {
        throw ConfigError(config_.source, "/services/" + state->config.name,
                          "the rows of the " + std::string(kind_name(state->config.kind)) +
                              " collection cannot be read: " + e.what());
      }
    }
    {
      std::lock_guard lock(mu_);
      running_ = true;
    }
    thread_ = std::jthread([this] { run(); });
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    {
      std::lock_guard lock(mu_);
      running_ = false;
    }
    idle_.notify_all();
  }

  void committed(const std::vector<persist::Committed*>& transactions) {
    std::vector<Txn> txns;
    std::size_t changes = 0;
    for (persist::Committed* c : transactions) {
      Txn txn{c->ref, c->time, {}};
      for (persist::Change& change : c->changes)
        if (watched_.count(change.table)) txn.changes.push_back(std::move(change));
      if (txn.changes.empty()) continue;
      changes += txn.changes.size();
      txns.push_back(std::move(txn));
    }
    if (txns.empty()) return;
    {
      std::lock_guard lock(mu_);
      if (!running_ || stopping_) return;
      if (overflow_) return;  // already lost track: the reset re-reads everything
      if (queued_ + changes > bus_size_) {
        overflow_ = true;
        ++overflows_;
        log().warn("the collections' change bus is full ({} changes waiting, at most {}): {} change(s) dropped; every "
                   "collection re-reads its rows and publishes a reset",
                   queued_, bus_size_, changes);
      } else {
        queued_ += changes;
        for (auto& txn : txns) txns_.push_back(std::move(txn));
      }
    }
    wake_.notify_one();
  }

  void wait_idle() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return !running_ || (!busy_ && txns_.empty() && gets_.empty() && !overflow_); });
  }

  void get(const std::string& name, Json request, transport::Reply reply) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      reply.error("KeyError", "no collection '" + name + "'");
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (!running_ || stopping_) {
        reply.error("RuntimeError", "the daemon is stopping; the collection does not answer any more");
        return;
      }
      gets_.push_back(GetTask{it->second, std::move(request), std::move(reply)});
    }
    wake_.notify_one();
  }

 private:
  // ---- set-up ----------------------------------------------------------------

  void prepare(State& s, const std::string& store) {
    const Collection& c = s.config;
    s.topic = store + "." + c.name + ".";
    s.row_prefix = "row:" + s.topic;
    s.watched.insert(c.watch_tables.begin(), c.watch_tables.end());
    s.watched.insert(c.primary_table);
    if (!c.where.empty()) s.where = Expression::parse(c.where);
    for (auto& [field, text] : c.publish) s.publish.emplace_back(field, Expression::parse(text));
    for (auto& [field, text] : c.defaults.items()) s.defaults.emplace_back(field, Expression::parse(text.get<std::string>()));
    const Table& primary = *config_.table(c.primary_table);
    const Column* pk = primary.primary_key.size() == 1 ? primary.column(primary.primary_key.front()) : nullptr;
    bool sqlite_rowid = false;
    if (c.kind == Kind::keyed) {
      s.id_column = c.key;
      if (pk && pk->name != c.key && !c.custom_sql) s.pk_column = pk->name;
    } else if (c.kind == Kind::stream ? (pk && pk->autoincrement) : pk != nullptr) {
      s.id_column = pk->name;
    } else {
      s.id_column = "rowid";
      sqlite_rowid = true;
    }
    s.query = c.custom_sql ? c.sql
              : sqlite_rowid ? "SELECT rowid AS rowid, * FROM " + persist::sql::quote(c.primary_table)
                             : "SELECT * FROM " + persist::sql::quote(c.primary_table);
    // Rows changed by a JOIN, or named by SQLite's rowid (which a change's
    // row does not carry), are found by reading the query again.
    s.reread = c.custom_sql || sqlite_rowid;
    if (s.stream()) {
      std::string id = persist::sql::quote(s.id_column);
      s.since_query = "SELECT * FROM (" + s.query + ") WHERE " + id + " > ?1 ORDER BY " + id;
      s.by_id_query = "SELECT * FROM (" + s.query + ") WHERE " + id + " = ?1";
    }
  }

  // Every row from SQLite, without publishing (start, and a reset).
  void load(State& s) {
    if (s.stream()) {
      std::string id = persist::sql::quote(s.id_column);
      auto rows = tables_.select("SELECT * FROM (" + s.query + ") ORDER BY " + id + " DESC LIMIT ?1",
                                 {Json(s.config.buffer_size)});
      std::reverse(rows.begin(), rows.end());
      s.ring.clear();
      s.ring_floor = 0;
      if (!rows.empty() && rows.size() >= static_cast<std::size_t>(s.config.buffer_size)) {
        auto first = rows.front().find(s.id_column);
        if (first != rows.front().end() && first->is_number_integer()) s.ring_floor = first->get<std::int64_t>() - 1;
      }
      for (auto& raw : rows) append(s, std::move(raw), Json(nullptr), Json(nullptr), false);
      auto top = tables_.select("SELECT MAX(" + id + ") AS top FROM (" + s.query + ")");
      if (!top.empty() && top[0]["top"].is_number_integer()) s.seq = std::max(s.seq, top[0]["top"].get<std::int64_t>());
      return;
    }
    s.rows = read_rows(s);
  }

  // ---- rows ------------------------------------------------------------------

  void row_error(State& s, const Json& rowid, const char* what, const std::string& message) {
    ++s.errors;
    double t = now();
    if (t - s.last_report < 1.0) {
      ++s.unreported;
      return;
    }
    s.last_report = t;
    std::string more = s.unreported ? fmt::format(" ({} more since the last report)", s.unreported) : "";
    s.unreported = 0;
    log().warn("{}: row {}: {} failed, the row is left out: {}{}", s.config.name, shown(rowid), what, message, more);
  }

  // The row as served (after where and publish), or nullopt when it is left out.
  std::optional<Json> shape(State& s, Json raw, const Json& rowid) {
    if (s.where) {
      try {
        if (!s.where->matches(raw)) return std::nullopt;
      } catch (const std::exception& e) {
        row_error(s, rowid, "where", e.what());
        return std::nullopt;
      }
    }
    if (s.publish.empty()) return raw;
    Json out = Json::object();
    for (auto& [field, expression] : s.publish) {
      try {
        out[field] = expression.evaluate(raw);
      } catch (const std::exception& e) {
        row_error(s, rowid, ("publish of '" + field + "'").c_str(), e.what());
        return std::nullopt;
      }
    }
    return out;
  }

  std::optional<Json> id_of(State& s, const Json& raw) {
    auto it = raw.find(s.id_column);
    if (it == raw.end() || it->is_null()) {
      row_error(s, raw, "its id", "the row has no '" + s.id_column + "'");
      return std::nullopt;
    }
    if (s.stream() && !it->is_number_integer()) {
      row_error(s, raw, "its id", "a stream's '" + s.id_column + "' must be an integer, got " + shown(*it));
      return std::nullopt;
    }
    return *it;
  }

  std::map<Json, Json> read_rows(State& s) {
    std::map<Json, Json> out;
    s.pk_of.clear();
    s.key_of.clear();
    for (auto& raw : tables_.select(s.query)) {
      auto id = id_of(s, raw);
      if (!id) continue;
      if (auto row = shape(s, raw, *id)) {
        out[*id] = std::move(*row);
        if (!s.pk_column.empty()) hold(s, *id, raw.value(s.pk_column, Json(nullptr)));
      }
    }
    return out;
  }

  // Whether the row with primary key `pk` is the one key `id` holds (always
  // when keys are primary keys).
  bool holds(State& s, const Json& id, const Json& pk) {
    if (s.pk_column.empty()) return true;
    auto it = s.pk_of.find(id);
    return it != s.pk_of.end() && it->second == pk;
  }

  void hold(State& s, const Json& id, const Json& pk) {
    auto [it, fresh] = s.pk_of.try_emplace(id, pk);
    if (!fresh && it->second != pk) {
      if (auto k = s.key_of.find(it->second); k != s.key_of.end() && k->second == id) s.key_of.erase(k);
      it->second = pk;
    }
    s.key_of[pk] = id;
  }

  void release(State& s, const Json& id) {
    auto it = s.pk_of.find(id);
    if (it == s.pk_of.end()) return;
    if (auto k = s.key_of.find(it->second); k != s.key_of.end() && k->second == id) s.key_of.erase(k);
    s.pk_of.erase(it);
  }

  void drop(State& s, std::map<Json, Json>::iterator it, const Json& ref, double time) {
    emit(s, "delete", it->first, it->second, false, ref, time);
    release(s, it->first);
    s.rows.erase(it);
  }

  // ---- publishing ------------------------------------------------------------

  // Publishes `message` (an object without "epoch") with the collection's
  // epoch, spliced into the encoded text so that the message (which a
  // change's caller keeps in its ring or log) is neither copied nor changed.
  void send(State& s, const Json& message) {
    std::string text;
    json::dump_to(text, message);
    text.pop_back();  // the closing brace
    if (!message.empty()) text += ',';
    finish(s, std::move(text), nullptr);
  }

  // A change's message, written field by field (the members in name order,
  // as json::dump writes an object) instead of built as a JSON object first.
  void send(State& s, const Logged& change) {
    std::string text;
    text.reserve(160);
    text += "{\"exists\":";
    text += change.exists ? "true" : "false";
    text += ",\"op\":\"";
    text += change.op;
    text += "\",\"ref\":";
    json::dump_to(text, change.ref);
    text += ",\"rowid\":";
    json::dump_to(text, change.rowid);
    text += ",\"seq\":";
    text += std::to_string(change.seq);
    text += ",\"time\":";
    json::dump_to(text, change.time);
    text += ",\"value\":";
    json::dump_to(text, change.value);
    text += ',';
    finish(s, std::move(text), &change.rowid);
  }

  // `text`, a message's members and a comma, closed with the epoch and
  // published; a keyed collection's change (`rowid` given) also on its row's topic.
  void finish(State& s, std::string text, const Json* rowid) {
    text += "\"epoch\":";
    text += s.stream() ? std::string_view("\"\"") : std::string_view(epoch_text_);
    text += '}';
    auto payload = std::make_shared<const std::string>(std::move(text));
    publisher_(s.topic, payload);
    if (s.config.kind == Kind::keyed && rowid) publisher_(s.row_prefix + row_topic_id(*rowid) + ".", payload);
  }

  // A change: numbered, logged, published.
  void emit(State& s, const char* op, const Json& rowid, Json value, bool exists, const Json& ref, double time) {
    if (!s.stream()) ++s.seq;
    Logged change{s.stream() ? rowid.get<std::int64_t>() : s.seq, op, ref, rowid, exists, std::move(value), Json(time)};
    if (!s.stream()) s.last = change.value;
    s.last_time = time;
    s.last_ref = ref;
    ++s.published;
    send(s, change);
    if (s.stream()) {
      s.ring.push_back(std::move(change));
      while (s.ring.size() > static_cast<std::size_t>(s.config.buffer_size)) {
        s.ring_floor = s.ring.front().seq;
        s.ring.pop_front();
      }
    } else {
      s.log.push_back(std::move(change));
      while (s.log.size() > static_cast<std::size_t>(s.config.change_log_size)) s.log.pop_front();
    }
  }

  void publish_reset(State& s) {
    if (!s.stream()) ++s.seq;  // a client that missed the reset sees a gap, and `since` answers with a reset
    s.log.clear();
    Json message = Json::object();
    message["value"] = nullptr;
    message["reset"] = true;
    message["seq"] = s.seq;
    message["time"] = now();
    send(s, message);
  }

  // A stream row: appended (and published when `announce`) if it is newer than seq.
  void append(State& s, Json raw, const Json& ref, const Json& time, bool announce) {
    auto id = id_of(s, raw);
    if (!id) return;
    std::int64_t n = id->get<std::int64_t>();
    if (n <= s.seq && announce) return;  // already held
    s.seq = std::max(s.seq, n);
    auto row = shape(s, std::move(raw), *id);
    if (!row) return;
    if (announce) {
      emit(s, "insert", *id, std::move(*row), true, ref, time.is_number() ? time.get<double>() : now());
      return;
    }
    s.ring.push_back(Logged{n, "insert", ref, *id, true, std::move(*row), time});
  }

  // The rows re-read from SQLite, compared with the cache; differences published.
  void resync(State& s, const Json& ref, double time) {
    if (s.stream()) {
      for (auto& raw : tables_.select(s.since_query, {Json(s.seq)})) append(s, std::move(raw), ref, Json(time), true);
      return;
    }
    std::map<Json, Json> fresh = read_rows(s);
    auto a = s.rows.begin();
    auto b = fresh.begin();
    while (a != s.rows.end() || b != fresh.end()) {
      if (b == fresh.end() || (a != s.rows.end() && a->first < b->first)) {
        emit(s, "delete", a->first, a->second, false, ref, time);
        ++a;
      } else if (a == s.rows.end() || b->first < a->first) {
        emit(s, "insert", b->first, b->second, true, ref, time);
        ++b;
      } else {
        if (a->second != b->second) emit(s, "update", b->first, b->second, true, ref, time);
        ++a;
        ++b;
      }
    }
    s.rows = std::move(fresh);
  }

  // One changed row of the primary table, applied to a keyed or table cache;
  // false when the row cannot be placed (then the query is read again).
  bool apply_row(State& s, const persist::Change& change, const Json& ref, double time) {
    auto idit = change.row.find(s.id_column);
    if (idit == change.row.end() || idit->is_null()) return false;
    const Json& id = *idit;
    // Several rows may share a key (the last written holds it). A key that
    // loses its row (moved to another key, deleted, no longer passing
    // `where`) may fall to another row: then the query is read again.
    const bool shared = !s.pk_column.empty();
    Json pk = shared ? change.row.value(s.pk_column, Json(nullptr)) : Json(nullptr);
    if (shared && pk.is_null()) return false;
    if (shared && change.op != OpType::delete_)
      if (auto k = s.key_of.find(pk); k != s.key_of.end() && k->second != id) return false;
    auto it = s.rows.find(id);
    if (change.op == OpType::delete_) {
      if (it != s.rows.end() && holds(s, id, pk)) {
        if (shared) return false;
        drop(s, it, ref, time);
      }
      return true;
    }
    auto row = shape(s, change.row, id);
    if (row) {
      if (shared) hold(s, id, pk);
      if (it == s.rows.end()) {
        emit(s, "insert", id, *row, true, ref, time);
        s.rows.emplace(id, std::move(*row));
      } else if (it->second != *row) {
        it->second = std::move(*row);
        emit(s, "update", id, it->second, true, ref, time);
      }
    } else if (it != s.rows.end() && holds(s, id, pk)) {
      // It stopped passing `where` (or its publish failed): it is gone for subscribers.
      if (shared) return false;
      drop(s, it, ref, time);
    }
    return true;
  }

  // `s` is states_[index]. A stream takes its rows out of `txn` when no
  // later state watches their table (each txn goes to the states in order).
  void apply(State& s, std::size_t index, Txn& txn) {
    Json ref(txn.ref);
    bool again = false;
    for (persist::Change& change : txn.changes) {
      if (!s.watched.count(change.table)) continue;
      if (s.stream()) {
        if (change.table != s.config.primary_table) continue;
        if (change.op == OpType::delete_) continue;  // a stream follows appends only
        if (s.reread) {
          again = true;
          continue;
        }
        const bool last_user = last_watcher_.at(change.table) == index;
        append(s, last_user ? std::move(change.row) : Json(change.row), ref, Json(txn.time), true);
        continue;
      }
      if (s.reread || change.table != s.config.primary_table || !apply_row(s, change, ref, txn.time)) again = true;
    }
    if (again) resync(s, ref, txn.time);
  }

  // ---- the collections thread ---------------------------------------------------

  void run() {
    mktl::detail::name_this_thread("mktl-live");
    for (;;) {
      std::deque<Txn> txns;
      std::deque<GetTask> gets;
      bool reset = false;
      {
        std::unique_lock lock(mu_);
        if (busy_) {  // what the last turn took is done
          busy_ = false;
          idle_.notify_all();
        }
        wake_.wait(lock, [&] { return stopping_ || overflow_ || !txns_.empty() || !gets_.empty(); });
        if (overflow_) {
          // What is queued is incomplete: start again from SQLite.
          txns_.clear();
          queued_ = 0;
          overflow_ = false;
          reset = true;
        }
        txns.swap(txns_);
        gets.swap(gets_);
        queued_ = 0;
        if (stopping_ && txns.empty() && gets.empty() && !reset) return;
        busy_ = true;
      }
      if (reset)
        for (auto& s : states_) {
          guarded(*s, "re-reading after the change bus overflowed", [&] { load(*s); });
          publish_reset(*s);
        }
      for (auto& txn : txns)
        for (std::size_t i = 0; i < states_.size(); ++i)
          guarded(*states_[i], "following a change", [&] { apply(*states_[i], i, txn); });
      for (auto& task : gets) answer(task);
    }
  }

  template <class Work>
  void guarded(State& s, const char* what, Work&& work) {
    try {
      work();
    } catch (const std::exception& e) {
      ++s.errors;
      log().error("{}: {}: {}", s.config.name, what, e.what());
    }
  }

  void answer(GetTask& task) {
    State& s = *states_[task.collection];
    try {
      Json out = respond(s, task.request);
      if (!out.contains("time")) out["time"] = now();
      task.reply.send(json::dump(out));
    } catch (const Error& e) {
      task.reply.error(e.type(), e.what());
    } catch (const Json::exception& e) {
      task.reply.error("TypeError", e.what());
    } catch (const std::exception& e) {
      task.reply.error("RuntimeError", e.what());
    }
  }

  // ---- GET ---------------------------------------------------------------------

  Json respond(State& s, const Json& request) {
    if (request.is_null()) return plain(s);
    if (!request.is_object())
      throw ValueError("a GET of collection " + s.config.name + " takes an object (snapshot, since, rowid, refresh or stats), got " + shown(request));
    auto flag = [&](const char* name) {
      auto it = request.find(name);
      if (it == request.end() || it->is_null()) return false;
      if (!it->is_boolean()) throw TypeError(std::string(name) + " must be true or false, got " + shown(*it));
      return it->get<bool>();
    };
    if (flag("stats"))
      return Json{{"value",
                   {{"seq", s.seq}, {"count", s.count()}, {"errors", s.errors}, {"overflows", overflows_.load()},
                    {"published", s.published}}}};
    if (flag("refresh")) {
      resync(s, Json(nullptr), now());
      return plain(s);
    }
    if (flag("snapshot")) return snapshot(s, request);
    if (auto it = request.find("since"); it != request.end() && !it->is_null()) return since(s, *it, request);
    if (auto it = request.find("rowid"); it != request.end()) return by_rowid(s, *it);
    return plain(s);
  }

  Json plain(State& s) {
    const Json& last = !s.stream() ? s.last : s.ring.empty() ? null_ : s.ring.back().value;
    return Json{{"value", last}, {"time", s.last_time ? s.last_time : now()}, {"seq", s.seq}, {"ref", s.last_ref},
                {"count", s.count()}, {"epoch", s.stream() ? "" : epoch_}};
  }

  // Calls `each(rowid, row)` in rowid order for every row held.
  template <class Each>
  void for_rows(State& s, Each&& each) {
    if (s.stream()) {
      for (auto& change : s.ring) each(change.rowid, change.value);
    } else {
      for (auto& [id, row] : s.rows) each(id, row);
    }
  }

  Json snapshot(State& s, const Json& request) {
    std::optional<Expression> filter;
    if (auto it = request.find("filter"); it != request.end() && !it->is_null()) {
      if (!it->is_string()) throw ValueError("filter must be an expression (a string), got " + shown(*it));
      try {
        filter = Expression::parse(it->get<std::string>());
      } catch (const Error& e) {
        throw ValueError(std::string("filter: ") + e.what());
      }
      const auto& allowed = s.config.filterable;
      if (!allowed.empty())
        for (auto& field : filter->fields())
          if (std::find(allowed.begin(), allowed.end(), field) == allowed.end()) {
            std::string list;
            for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
            throw ValueError("filter: field '" + field + "' is not filterable in " + s.config.name + " (filterable: " + list + ")");
          }
    }
    std::size_t maxcount = SIZE_MAX;
    if (auto it = request.find("maxcount"); it != request.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<std::int64_t>() <= 0)
        throw ValueError("maxcount must be a positive integer, got " + shown(*it));
      maxcount = static_cast<std::size_t>(it->get<std::int64_t>());
    }
    std::optional<Json> cursor;
    if (auto it = request.find("cursor"); it != request.end() && !it->is_null()) {
      bool ok = s.stream() ? it->is_number_integer() : (it->is_string() || it->is_number());
      if (!ok)
        throw ValueError("cursor must be the cursor of the previous page (" +
                         std::string(s.stream() ? "an integer" : "a string or a number") + "), got " + shown(*it));
      cursor = *it;
    }
    Json values = Json::array(), rowids = Json::array();
    std::size_t total = 0, errors = 0;
    bool hasmore = false;
    for_rows(s, [&](const Json& id, const Json& row) {
      if (filter) {
        try {
          if (!filter->matches(row)) return;
        } catch (const std::exception&) {
          ++errors;
          return;
        }
      }
      ++total;
      if (cursor && !(*cursor < id)) return;
      if (values.size() < maxcount) {
        values.push_back(row);
        rowids.push_back(id);
      } else {
        hasmore = true;
      }
    });
    Json out{{"value", std::move(values)}, {"seq", s.seq}, {"count", total}, {"hasmore", hasmore},
             {"epoch", s.stream() ? "" : epoch_}};
    if (hasmore) out["cursor"] = rowids.back();
    out["rowids"] = std::move(rowids);
    if (errors) out["errors"] = errors;
    return out;
  }

  Json reset_answer(State& s) {
    Json out = snapshot(s, Json::object());
    out["reset"] = true;
    out.erase("hasmore");
    out.erase("count");
    return out;
  }

  Json since(State& s, const Json& since, const Json& request) {
    Json changes = Json::array();
    auto done = [&] { return Json{{"value", std::move(changes)}, {"seq", s.seq}, {"epoch", s.stream() ? "" : epoch_}}; };
    const std::deque<Logged>& held = s.stream() ? s.ring : s.log;
    if (since.is_string()) {
      // A transaction ref: the changes after that transaction's.
      auto it = std::find_if(held.begin(), held.end(), [&](const Logged& c) { return c.ref == since; });
      if (it == held.end()) return reset_answer(s);
      while (it != held.end() && it->ref == since) ++it;
      for (; it != held.end(); ++it) changes.push_back(it->to_json());
      return done();
    }
    if (!since.is_number_integer())
      throw TypeError("since must be a seq (an integer) or a transaction ref (a string), got " + shown(since));
    std::int64_t from = since.get<std::int64_t>();
    if (auto e = request.find("epoch"); e != request.end() && !e->is_null()) {
      if (!e->is_string()) throw TypeError("epoch must be a string, got " + shown(*e));
      if (!s.stream() && *e != epoch_) return reset_answer(s);
    }
    if (from > s.seq || from < 0) return reset_answer(s);
    if (from == s.seq) return done();
    if (s.stream()) {
      if (from >= s.ring_floor) {
        for (auto& c : s.ring)
          if (c.seq > from) changes.push_back(c.to_json());
        return done();
      }
      // Older than the ring buffer: the rows still in the table.
      for (auto& raw : tables_.select(s.since_query, {Json(from)})) {
        auto id = id_of(s, raw);
        if (!id || id->get<std::int64_t>() > s.seq) continue;
        auto row = shape(s, raw, *id);
        if (!row) continue;
        changes.push_back(Json{{"op", "insert"}, {"seq", *id}, {"ref", nullptr}, {"rowid", *id}, {"exists", true},
                               {"value", std::move(*row)}, {"time", nullptr}});
      }
      return done();
    }
    if (s.log.empty() || s.log.front().seq > from + 1) return reset_answer(s);
    for (auto& c : s.log)
      if (c.seq > from) changes.push_back(c.to_json());
    return done();
  }

  Json by_rowid(State& s, const Json& id) {
    Json out{{"value", nullptr}, {"exists", false}, {"seq", s.seq}, {"epoch", s.stream() ? "" : epoch_}};
    if (!(id.is_string() || id.is_number()))
      throw ValueError("rowid must be a string or a number, got " + shown(id));
    if (s.stream()) {
      if (!id.is_number_integer()) throw ValueError("a stream's rowid is an integer, got " + shown(id));
      for (auto& c : s.ring)
        if (c.rowid == id) {
          out["value"] = c.value;
          out["exists"] = true;
          return out;
        }
      for (auto& raw : tables_.select(s.by_id_query, {id}))
        if (auto row = shape(s, raw, id)) {
          out["value"] = std::move(*row);
          out["exists"] = true;
        }
      return out;
    }
    auto it = s.rows.find(id);
    if (it != s.rows.end()) {
      out["value"] = it->second;
      out["exists"] = true;
    } else if (!s.defaults.empty()) {
      // mkio's row for a key with no row.
      Json row = Json::object();
      for (auto& [field, expression] : s.defaults) {
        try {
          row[field] = expression.evaluate(Json::object());
        } catch (const std::exception& e) {
          row[field] = nullptr;
          row_error(s, id, ("default of '" + field + "'").c_str(), e.what());
        }
      }
      out["value"] = std::move(row);
    }
    return out;
  }

  const Config& config_;
  persist::Tables& tables_;
  Publisher publisher_;
  const std::string epoch_;
  const std::string epoch_text_ = json::dump(Json(epoch_));  // as JSON text
  const Json null_;
  std::size_t bus_size_ = 100000;
  std::vector<std::unique_ptr<State>> states_;
  std::map<std::string, std::size_t> by_name_;
  std::set<std::string> watched_;  // by any collection
  std::map<std::string, std::size_t> last_watcher_;  // by table: the last of states_ watching it

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Txn> txns_;
  std::deque<GetTask> gets_;
  std::size_t queued_ = 0;  // changes in txns_
  bool overflow_ = false;
  bool busy_ = false;  // the collections thread works on what it took, until its next turn (wait_idle)
  std::condition_variable idle_;
  bool running_ = false;
  bool stopping_ = false;
  std::atomic<std::uint64_t> overflows_{0};
  std::jthread thread_;
};

Live::Live(const Config& config, persist::Tables& tables, std::string store, Publisher publisher)
    : impl_(std::make_unique<Impl>(config, tables, std::move(store), std::move(publisher))) {}
Live::~Live() = default;
void Live::start() { impl_->start(); }
void Live::stop() { impl_->stop(); }
void Live::wait_idle() { impl_->wait_idle(); }
void Live::committed(const std::vector<persist::Committed*>& transactions) { impl_->committed(transactions); }
void Live::get(const std::string& name, Json request, transport::Reply reply) {
  impl_->get(name, std::move(request), std::move(reply));
}

}  // namespace mktl::collections
