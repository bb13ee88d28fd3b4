// CollectionView: snapshot + broadcasts + catch-up for one collection item.
//
// The Client's subscription callback only queues the broadcast's payload and
// wakes the view's thread, so a view never holds up the Client's callback
// strands; everything else (snapshots, `since` requests, which block, and the
// user's callbacks) runs on the view's own thread.
#include "config/logger.hpp"
#include "common/thread_name.hpp"
#include "common/text.hpp"

#include <mktl/collection.hpp>
#include <mktl/error.hpp>
#include <mktl/expr.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace mktl {

namespace {
using mktl::detail::ascii_lower;

using RowMap = std::map<Json, Json>;  // rowid -> row; Json orders numbers by value, strings by text

std::int64_t seq_of(const Json& answer, const std::string& key, const char* what) {
  auto it = answer.find("seq");
  if (it != answer.end()) {
    if (it->is_number_integer()) return it->get<std::int64_t>();
    if (it->is_number_unsigned() && it->get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX))
      return static_cast<std::int64_t>(it->get<std::uint64_t>());
  }
  throw ValueError(key + ": " + what + " has no integer 'seq'");
}

std::string epoch_of(const Json& payload) {
  auto it = payload.find("epoch");
  if (it == payload.end() || it->is_null()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

bool is_reset(const Json& payload) {
  auto it = payload.find("reset");
  return it != payload.end() && it->is_boolean() && it->get<bool>();
}

std::vector<CollectionRow> to_vector(const RowMap& rows) {
  std::vector<CollectionRow> out;
  out.reserve(rows.size());
  for (const auto& [rowid, row] : rows) out.push_back({rowid, row});
  return out;
}

// Rows of a snapshot (or reset) answer into `rows`: `value` and `rowids`
// are parallel arrays.
void read_rows(const Json& answer, RowMap& rows, const std::string& key) {
  auto value = answer.find("value");
  auto rowids = answer.find("rowids");
  if (value == answer.end() || rowids == answer.end() || !value->is_array() || !rowids->is_array() ||
      value->size() != rowids->size())
    throw ValueError(key + ": a snapshot answer needs 'value' and 'rowids' arrays of one length");
  for (std::size_t i = 0; i < value->size(); ++i) rows[(*rowids)[i]] = (*value)[i];
}

struct Snapshot {
  RowMap rows;
  std::int64_t seq = 0;
  std::string epoch;
};

}  // namespace

struct CollectionView::Impl {
  Client& client;
  std::string key;
  std::string kind;
  bool stream = false;
  std::size_t ring = 0;  // a stream's buffer_size: the view keeps as many rows (0: all)
  CollectionCallbacks callbacks;
  CollectionOptions options;
  std::optional<Expression> filter;

  mutable std::mutex mutex;             // guards everything down to `stopping`
  mutable std::condition_variable cv;   // queue, stop, done_seq
  RowMap rows;                          // written by the view's thread only
  std::int64_t seq = 0;                 // of the state in `rows`
  std::int64_t done_seq = 0;            // callbacks up to here have run
  std::string epoch;
  std::uint64_t gaps = 0, resets = 0, duplicates = 0, filter_errors = 0;
  std::deque<Json> queue;  // broadcast payloads for the view's thread
  bool overflowed = false;
  bool stopping = false;

  // The view's thread only.
  std::set<std::string> old_epochs;  // epochs left behind: their late broadcasts are stale
  bool need_catchup = false;
  std::uint64_t seen_dropped = 0;

  Subscription subscription;
  std::thread worker;
  std::once_flag cancelled;

  Impl(Client& c, std::string k, CollectionCallbacks cb, CollectionOptions o)
      : client(c), key(std::move(k)), callbacks(std::move(cb)), options(std::move(o)) {}

  // ---- any thread ---------------------------------------------------------

  // The subscription callback (a Client worker thread): queue, never block.
  void push(const Json& payload) {
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
      if (queue.size() >= options.queue_limit) {
        overflowed = true;  // caught up with `since`
        return;
      }
      queue.push_back(payload);
    }
    cv.notify_all();
  }

  void cancel() {
    std::call_once(cancelled, [&] {
      {
        std::lock_guard lock(mutex);
        stopping = true;
      }
      cv.notify_all();
      subscription.cancel();
      if (worker.joinable()) {
        if (worker.get_id() == std::this_thread::get_id()) worker.detach();  // a callback destroys its view
        else worker.join();
      }
    });
  }

  // ---- requests -------------------------------------------------------------

  Json get(const Json& payload) {
    Json answer = client.call("GET", key, payload, options.timeout);
    if (!answer.is_object()) throw ValueError(key + ": expected a JSON object as the answer");
    return answer;
  }

  Json since_request(std::int64_t from, const std::string& of_epoch) const {
    Json request = {{"since", from}};
    if (!of_epoch.empty()) request["epoch"] = of_epoch;
    return request;
  }

  // Whether `row` belongs in the view (counts filter failures).
  bool keep(const Json& row) {
    if (!filter) return true;
    try {
      return filter->matches(row);
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex);
      if (filter_errors++ == 0) logger("mktl.client")->warn("{}: the filter fails on a row: {}", key, e.what());
      return false;
    }
  }

  // Applies one change to a map of unfiltered rows (snapshot replay).
  static void apply_raw(RowMap& rows, const Json& change) {
    std::string op = change.value("op", std::string());
    bool exists = change.value("exists", op != "delete");
    const Json& rowid = change.at("rowid");
    if (op == "delete" || !exists) rows.erase(rowid);
    else rows[rowid] = change.value("value", Json());
  }

  // Every page of a snapshot, consistent with one seq: pages answered at
  // different seqs are made consistent by replaying `since` the first.
  Snapshot take_snapshot() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      Snapshot s;
      std::int64_t last_seq = 0;
      bool first = true, epoch_changed = false;
      Json cursor;
      for (std::size_t page = 0;; ++page) {
        Json request = {{"snapshot", true}};
        if (options.page_size > 0) request["maxcount"] = options.page_size;
        if (!cursor.is_null()) request["cursor"] = cursor;
        Json answer = get(request);
        std::int64_t page_seq = seq_of(answer, key, "a snapshot answer");
        if (first) {
          s.seq = last_seq = page_seq;
          s.epoch = epoch_of(answer);
          first = false;
        } else if (epoch_of(answer) != s.epoch) {
          epoch_changed = true;  // the daemon restarted between pages
          break;
        }
        last_seq = std::max(last_seq, page_seq);
        read_rows(answer, s.rows, key);
        if (!answer.value("hasmore", false)) break;
        cursor = answer.value("cursor", Json());
        if (cursor.is_null()) throw ValueError(key + ": a snapshot page says 'hasmore' without a 'cursor'");
        if (page > 10000000) throw ValueError(key + ": a snapshot without end");
      }
      if (epoch_changed) continue;
      if (last_seq > s.seq && !replay(s)) continue;
      return s;
    }
    throw RuntimeError(key + ": no consistent snapshot after 5 attempts (the collection keeps resetting)");
  }

  // Brings a snapshot whose pages came at different seqs to one seq; false
  // when that failed (start again).
  bool replay(Snapshot& s) {
    Json answer = get(since_request(s.seq, s.epoch));
    if (is_reset(answer)) {
      if (answer.value("hasmore", false)) return false;
      s.rows.clear();
      read_rows(answer, s.rows, key);
      s.seq = seq_of(answer, key, "a reset answer");
      s.epoch = epoch_of(answer);
      return true;
    }
    const Json& changes = answer.at("value");
    if (!changes.is_array()) throw ValueError(key + ": a 'since' answer needs a 'value' array");
    for (const auto& change : changes) {
      std::int64_t change_seq = seq_of(change, key, "a change");
      if (change_seq <= s.seq) continue;
      if (!stream && change_seq != s.seq + 1) return false;
      apply_raw(s.rows, change);
      s.seq = change_seq;
    }
    return true;
  }

  // ---- the view's thread ----------------------------------------------------

  template <class F, class... Args>
  void call(const F& callback, const char* name, Args&&... args) {
    if (!callback) return;
    try {
      callback(std::forward<Args>(args)...);
    } catch (const std::exception& e) {
      logger("mktl.client")->warn("{}: the {} callback threw: {}", key, name, e.what());
    } catch (...) {
      logger("mktl.client")->warn("{}: the {} callback threw", key, name);
    }
  }

  void mark_done() {
    {
      std::lock_guard lock(mutex);
      done_seq = seq;
    }
    cv.notify_all();
  }

  // Installs a snapshot (filtered) as the view; `reset`: report it as one.
  // A stream view keeps the newest rows, as many as the daemon's ring.
  void trim(RowMap& map) const {
    while (ring > 0 && map.size() > ring) map.erase(map.begin());
  }

  void install(Snapshot s, bool reset) {
    RowMap kept;
    for (auto& [rowid, row] : s.rows)
      if (keep(row)) kept.emplace(rowid, std::move(row));
    trim(kept);
    std::vector<CollectionRow> list = to_vector(kept);
    {
      std::lock_guard lock(mutex);
      if (!epoch.empty() && s.epoch != epoch) old_epochs.insert(epoch);
      rows = std::move(kept);
      seq = s.seq;
      epoch = s.epoch;
      if (reset) ++resets;
    }
    old_epochs.erase(s.epoch);
    need_catchup = false;
    if (reset) {
      call(callbacks.on_reset, "on_reset", list, s.seq);
      mark_done();
    }
  }

  void resnapshot() { install(take_snapshot(), true); }

  // Applies one change in order (its seq is last + 1, or for a stream above
  // the last) and reports what it did to the view.
  void apply(const Json& change, std::int64_t change_seq, bool caught_up) {
    CollectionChange c;
    c.published_op = change.value("op", std::string());
    c.seq = change_seq;
    c.ref = change.value("ref", Json());
    c.rowid = change.at("rowid");
    c.exists = change.value("exists", c.published_op != "delete");
    c.row = change.value("value", Json());
    if (auto t = change.find("time"); t != change.end() && t->is_number()) c.time = t->get<double>();
    c.caught_up = caught_up;
    bool had = rows.count(c.rowid) > 0;
    bool present = c.published_op != "delete" && c.exists && keep(c.row);
    {
      std::lock_guard lock(mutex);
      if (present) rows[c.rowid] = c.row;
      else if (had) rows.erase(c.rowid);
      trim(rows);
      seq = change_seq;
    }
    if (had || present) {
      c.op = !had ? "insert" : present ? "update" : "delete";
      call(callbacks.on_change, "on_change", c);
    }
    mark_done();
  }

  // GET `since` the last seq: applies the changes missed, or the reset.
  void catch_up() {
    Json answer = get(since_request(seq, epoch));
    {
      std::lock_guard lock(mutex);
      ++gaps;
    }
    need_catchup = false;
    if (is_reset(answer)) {
      if (answer.value("hasmore", false)) return resnapshot();
      Snapshot s;
      read_rows(answer, s.rows, key);
      s.seq = seq_of(answer, key, "a reset answer");
      s.epoch = epoch_of(answer);
      return install(std::move(s), true);
    }
    auto changes = answer.find("value");
    if (changes == answer.end() || !changes->is_array())
      throw ValueError(key + ": a 'since' answer needs a 'value' array");
    for (const auto& change : *changes) {
      std::int64_t change_seq = seq_of(change, key, "a change");
      if (change_seq <= seq) continue;
      if (!stream && change_seq != seq + 1) {
        logger("mktl.client")->warn("{}: the catch-up skips from seq {} to {}; taking a new snapshot", key, seq,
                                    change_seq);
        return resnapshot();
      }
      apply(change, change_seq, true);
    }
    if (answer.contains("seq")) {
      std::int64_t last = seq_of(answer, key, "a 'since' answer");
      if (last > seq) {
        if (!stream) {
          logger("mktl.client")->warn("{}: the catch-up ends at seq {} of {}; taking a new snapshot", key, seq, last);
          return resnapshot();
        }
        // A stream's seq skips where rows were deleted: nothing is missing.
        {
          std::lock_guard lock(mutex);
          seq = last;
        }
        mark_done();
      }
    }
  }

  void skip() {
    std::lock_guard lock(mutex);
    ++duplicates;
  }

  // One broadcast payload.
  void process(const Json& payload) {
    if (!payload.is_object()) return;
    std::string payload_epoch = epoch_of(payload);
    if (old_epochs.count(payload_epoch)) return skip();
    if (is_reset(payload)) {
      // A keyed or table reset has a seq of its own: one at or below ours is
      // in our snapshot already. A stream's keeps its last rowid, which tells
      // nothing: always take a new snapshot.
      if (!stream && payload_epoch == epoch && payload.contains("seq") && seq_of(payload, key, "a reset") <= seq)
        return skip();
      return resnapshot();
    }
    if (payload_epoch != epoch) return resnapshot();  // a restarted daemon
    std::int64_t s = seq_of(payload, key, "a broadcast");
    if (s <= seq) return skip();
    if (s != seq + 1) {
      // keyed and table: a gap. A stream's seq may skip (deleted rows): ask.
      catch_up();
      if (s <= seq) return skip();
      if (!stream && s != seq + 1) return resnapshot();
    }
    apply(payload, s, false);
  }

  void run() {
    mktl::detail::name_this_thread("mktl-view");
    {
      std::vector<CollectionRow> list;
      std::int64_t at;
      {
        std::lock_guard lock(mutex);
        list = to_vector(rows);
        at = seq;
      }
      call(callbacks.on_snapshot, "on_snapshot", list, at);
      mark_done();
    }
    std::deque<Json> pending;
    auto retry_at = std::chrono::steady_clock::time_point::min();
    auto log = logger("mktl.client");
    while (true) {
      {
        std::unique_lock lock(mutex);
        // The timeout notices losses in the Client's queue when nothing else comes.
        cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        for (auto& p : queue) pending.push_back(std::move(p));
        queue.clear();
        if (overflowed) need_catchup = true;
        overflowed = false;
      }
      // Everything lost anywhere is after the last seq applied: `since` covers it.
      std::uint64_t dropped = client.dropped_broadcasts();
      if (dropped != seen_dropped) {
        seen_dropped = dropped;
        need_catchup = true;
      }
      if (pending.size() > options.queue_limit) {
        pending.clear();
        need_catchup = true;
      }
      try {
        if (need_catchup) {
          if (std::chrono::steady_clock::now() < retry_at) continue;
          catch_up();
        }
        while (!pending.empty()) {
          {
            std::lock_guard lock(mutex);
            if (stopping) return;
          }
          Json payload = std::move(pending.front());
          pending.pop_front();
          process(payload);
        }
      } catch (const std::exception& e) {
        // Retried after a pause; what is pending is covered by the catch-up.
        need_catchup = true;
        pending.clear();
        retry_at = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(std::max(options.retry_interval, 0.01)));
        log->warn("{}: catching up failed (retrying): {}", key, e.what());
        call(callbacks.on_error, "on_error", std::string(e.what()));
      }
    }
  }
};

CollectionView::CollectionView(Client& client, const std::string& full_key, CollectionCallbacks callbacks,
                               CollectionOptions options) {
  if (options.queue_limit == 0) throw ValueError("a collection view needs a queue_limit of at least 1");
  auto impl = std::make_shared<Impl>(client, ascii_lower(full_key), std::move(callbacks), std::move(options));
  Json description = client.description(impl->key);
  std::string type = description.value("type", std::string());
  if (type != "collection")
    throw TypeError(impl->key + " is not a collection item (its type is " + (type.empty() ? "none" : type) + ")");
  auto detail = description.find("collection");
  if (detail != description.end() && detail->is_object()) impl->kind = detail->value("kind", std::string());
  if (impl->kind != "keyed" && impl->kind != "stream" && impl->kind != "table")
    throw TypeError(impl->key + ": unknown collection kind '" + impl->kind + "' (expected keyed, stream or table)");
  impl->stream = impl->kind == "stream";
  if (impl->stream) {
    auto size = detail->find("buffer_size");
    if (size != detail->end() && size->is_number_integer() && size->get<std::int64_t>() > 0)
      impl->ring = static_cast<std::size_t>(size->get<std::int64_t>());
  }
  if (!impl->options.filter.empty()) impl->filter = Expression::parse(impl->options.filter);

  // Subscribed before the snapshot, so no change falls between the two.
  impl->seen_dropped = client.dropped_broadcasts();
  std::weak_ptr<Impl> weak = impl;
  impl->subscription = client.subscribe_payload(impl->key, [weak](const std::string&, const Json& payload) {
    if (auto self = weak.lock()) self->push(payload);
  });
  impl->install(impl->take_snapshot(), false);
  impl->worker = std::thread([self = impl] { self->run(); });
  impl_ = std::move(impl);
}

CollectionView::CollectionView(CollectionView&& other) noexcept = default;

CollectionView& CollectionView::operator=(CollectionView&& other) noexcept {
  if (this != &other) {
    cancel();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

CollectionView::~CollectionView() { cancel(); }

void CollectionView::cancel() {
  if (impl_) impl_->cancel();
}

namespace {
const std::string kNone;
}

const std::string& CollectionView::full_key() const { return impl_ ? impl_->key : kNone; }
const std::string& CollectionView::kind() const { return impl_ ? impl_->kind : kNone; }

std::vector<CollectionRow> CollectionView::rows() const {
  if (!impl_) return {};
  std::lock_guard lock(impl_->mutex);
  return to_vector(impl_->rows);
}

std::optional<Json> CollectionView::row(const Json& rowid) const {
  if (!impl_) return std::nullopt;
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->rows.find(rowid);
  if (it == impl_->rows.end()) return std::nullopt;
  return it->second;
}

namespace {
// A member of the view's state, read under its lock (`none` without a view).
template <class Impl, class F, class T>
T read_locked(const std::shared_ptr<Impl>& impl, F read, T none) {
  if (!impl) return none;
  std::lock_guard lock(impl->mutex);
  return read(*impl);
}
}  // namespace

std::size_t CollectionView::size() const {
  return read_locked(impl_, [](const Impl& i) { return i.rows.size(); }, std::size_t{0});
}
std::int64_t CollectionView::seq() const {
  return read_locked(impl_, [](const Impl& i) { return i.seq; }, std::int64_t{0});
}
std::string CollectionView::epoch() const {
  return read_locked(impl_, [](const Impl& i) { return i.epoch; }, std::string());
}
std::uint64_t CollectionView::gaps() const {
  return read_locked(impl_, [](const Impl& i) { return i.gaps; }, std::uint64_t{0});
}
std::uint64_t CollectionView::resets() const {
  return read_locked(impl_, [](const Impl& i) { return i.resets; }, std::uint64_t{0});
}
std::uint64_t CollectionView::duplicates() const {
  return read_locked(impl_, [](const Impl& i) { return i.duplicates; }, std::uint64_t{0});
}
std::uint64_t CollectionView::filter_errors() const {
  return read_locked(impl_, [](const Impl& i) { return i.filter_errors; }, std::uint64_t{0});
}

bool CollectionView::wait_for_seq(std::int64_t target, double timeout_seconds) const {
  if (!impl_) return false;
  std::unique_lock lock(impl_->mutex);
  return impl_->cv.wait_for(lock, std::chrono::duration<double>(std::max(timeout_seconds, 0.0)),
                            [&] { return impl_->done_seq >= target; });
}

CollectionView Client::watch_collection(const std::string& full_key, CollectionCallbacks callbacks,
                                        std::string filter) {
  CollectionOptions options;
  options.filter = std::move(filter);
  return CollectionView(*this, full_key, std::move(callbacks), std::move(options));
}

}  // namespace mktl
