#include "gateway.hpp"
#include "log.hpp"

#include <mktl/collection.hpp>
#include <mktl/error.hpp>
#include <mktl/format.hpp>

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

namespace mkweb {

namespace asio = boost::asio;

namespace {

// The JSON text of an object without its closing brace, so that each browser's
// ,"skipped":N} can follow it.
std::shared_ptr<const std::string> open_object(const mktl::Json& object) {
  std::string text = mktl::json::dump(object);
  text.pop_back();
  return std::make_shared<const std::string>(std::move(text));
}

std::shared_ptr<const std::string> text_of(const mktl::Json& object) {
  return std::make_shared<const std::string>(mktl::json::dump(object));
}

// Browsers' JSON.parse knows no NaN or Infinity: those become null (the
// formatted text still says nan or inf).
mktl::Json web_safe(const mktl::Json& value) {
  if (value.is_number_float()) return std::isfinite(value.get<double>()) ? value : mktl::Json(nullptr);
  if (value.is_array() || value.is_object()) {
    mktl::Json out = value;
    for (auto& element : out) element = web_safe(element);
    return out;
  }
  return value;
}

mktl::Json rows_json(const std::vector<mktl::CollectionRow>& rows) {
  mktl::Json out = mktl::Json::array();
  for (const auto& row : rows) out.push_back({{"rowid", web_safe(row.rowid)}, {"value", web_safe(row.value)}});
  return out;
}

mktl::Json snapshot_json(const std::string& key, const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) {
  return {{"type", "snapshot"}, {"item", key}, {"seq", seq}, {"rows", rows_json(rows)}};
}

bool is_collection(const mktl::Json& description) {
  try {
    return mktl::item_type(description) == mktl::ItemType::collection;
  } catch (const std::exception&) {
    return false;
  }
}

std::pair<std::string, std::string> failure_of(const std::exception& e) {
  if (auto* error = dynamic_cast<const mktl::Error*>(&e)) return {error->type(), error->text()};
  return {"RuntimeError", e.what()};
}

}  // namespace

struct Gateway::Watch {
  std::string key;
  std::map<Sink*, std::weak_ptr<Sink>> sinks;
  bool ready = false;       // upstream subscription in place
  bool released = false;    // the last browser left
  bool collection = false;
  std::shared_ptr<const std::string> last;  // the latest value message (open object)
  bool broadcast_seen = false;  // a broadcast came (the first GET's answer is older)
  mktl::Subscription subscription;
  mktl::CollectionView view;
};

Gateway::Gateway(asio::io_context& io, mktl::Client& client, GatewayOptions options)
    : io_(io), client_(client), options_(std::move(options)) {}

Gateway::~Gateway() {
  // Upstream subscriptions go first, so no callback posts to a dead gateway.
  for (auto& [key, watch] : watches_) {
    watch->subscription.cancel();
    watch->view.cancel();
  }
  watches_.clear();
  pool_.join();
}

void Gateway::run_blocking(std::function<void()> work) { asio::post(pool_, std::move(work)); }
void Gateway::run_io(std::function<void()> work) { asio::post(io_, std::move(work)); }

// ---- stores and catalogs ----------------------------------------------------------

std::vector<std::string> Gateway::stores() {
  if (!options_.stores.empty()) {
    std::set<std::string> sorted(options_.stores.begin(), options_.stores.end());
    return {sorted.begin(), sorted.end()};
  }
  if (options_.connect.empty()) return client_.discover();
  std::lock_guard lock(stores_mutex_);
  for (const auto& endpoint : options_.connect) {
    try {
      for (auto& store : client_.connect(endpoint)) known_stores_[store] = true;
    } catch (const std::exception& e) {
      log()->warn("{}: {}", endpoint, e.what());
    }
  }
  std::vector<std::string> out;
  for (const auto& [store, known] : known_stores_) out.push_back(store);
  return out;
}

mktl::Json Gateway::catalog(const std::string& store) {
  if (!options_.stores.empty() &&
      std::find(options_.stores.begin(), options_.stores.end(), store) == options_.stores.end())
    throw mktl::KeyError("mkweb does not offer the store '" + store + "'");
  if (!options_.connect.empty()) {
    std::unique_lock lock(stores_mutex_);
    if (!known_stores_.count(store)) {
      lock.unlock();
      stores();
      lock.lock();
      if (!known_stores_.count(store)) throw mktl::KeyError("no daemon at --connect serves the store '" + store + "'");
    }
  }
  mktl::Json items = client_.items(store);
  if (!items.is_object() || items.empty()) throw mktl::KeyError("no daemon or registry knows the store '" + store + "'");
  return items;
}

mktl::Json Gateway::description(const std::string& full_key) {
  auto dot = full_key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == full_key.size())
    throw mktl::KeyError("'" + full_key + "' is not STORE.KEY");
  mktl::Json items = catalog(full_key.substr(0, dot));
  auto it = items.find(full_key.substr(dot + 1));
  if (it == items.end()) throw mktl::KeyError("the store '" + full_key.substr(0, dot) + "' has no item '" +
                                              full_key.substr(dot + 1) + "'");
  return *it;
}

BulkFrame Gateway::bulk(const std::string& full_key) {
  {
    std::lock_guard lock(bulk_mutex_);
    auto it = bulk_frames_.find(full_key);
    if (it != bulk_frames_.end()) return it->second;
  }
  mktl::Json description = this->description(full_key);
  mktl::Reading reading = client_.get(full_key);
  if (!reading.bulk) throw mktl::TypeError("'" + full_key + "' is not a bulk item");
  return BulkFrame{*reading.bulk, 0, reading.time};
}

std::uint64_t Gateway::note_bulk(const std::string& full_key, const mktl::Reading& reading) {
  std::lock_guard lock(bulk_mutex_);
  std::uint64_t seq = ++bulk_seq_;
  bulk_frames_[full_key] = BulkFrame{*reading.bulk, seq, reading.time};
  return seq;
}

// ---- messages ---------------------------------------------------------------------

mktl::Json Gateway::value_fields(const std::string& full_key, const mktl::Json& description,
                                 const mktl::Reading& reading, std::uint64_t bulk_seq) {
  mktl::Json out = {{"type", "value"}, {"item", full_key}};
  if (reading.bulk) {
    mktl::Json shape = reading.bulk->shape();
    out["value"] = nullptr;
    std::string url = "/api/items/" + full_key + "/bulk";
    if (bulk_seq) url += "?v=" + std::to_string(bulk_seq);
    out["bulk"] = {{"shape", shape}, {"dtype", reading.bulk->dtype()}, {"url", url}};
    std::string dims;
    for (auto d : reading.bulk->shape()) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    out["formatted"] = dims + " " + reading.bulk->dtype();
  } else {
    out["value"] = web_safe(reading.value);
    out["formatted"] = mktl::format_value(description, reading.value);
  }
  out["units"] = mktl::display_units(description);
  out["time"] = reading.time;
  return out;
}

std::string Gateway::error_text(const std::string& full_key, const std::string& type, const std::string& text) {
  return mktl::json::dump({{"type", "error"}, {"item", full_key}, {"error", {{"type", type}, {"text", text}}}});
}

// ---- watching ---------------------------------------------------------------------

void Gateway::subscribe(const std::shared_ptr<Sink>& sink, const std::string& full_key) {
  auto& mine = by_sink_[sink.get()];
  if (mine.count(full_key)) return;  // already watching: nothing new to say
  if (mine.size() >= options_.max_items_per_browser) {
    sink->deliver({full_key, MessageKind::other,
                   std::make_shared<const std::string>(error_text(
                       full_key, "ValueError",
                       "too many items watched by one browser (at most " +
                           std::to_string(options_.max_items_per_browser) + ")"))});
    return;
  }
  mine.emplace(full_key, sink);
  auto& watch = watches_[full_key];
  if (!watch) {
    watch = std::make_shared<Watch>();
    watch->key = full_key;
    watch->sinks.emplace(sink.get(), sink);
    start_watch(watch);
    return;
  }
  watch->sinks.emplace(sink.get(), sink);
  if (!watch->ready) return;  // the first message comes when it is
  if (watch->collection) {
    if (auto text = collection_snapshot(full_key)) sink->deliver({full_key, MessageKind::snapshot, text});
  } else if (watch->last) {
    sink->deliver({full_key, MessageKind::value, watch->last});
  }
}

void Gateway::start_watch(const std::shared_ptr<Watch>& watch) {
  std::weak_ptr<Watch> weak = watch;
  std::string key = watch->key;
  run_blocking([this, weak, key] {
    mktl::Subscription subscription;
    mktl::CollectionView view;
    try {
      mktl::Json description = this->description(key);
      if (is_collection(description)) {
        mktl::CollectionCallbacks callbacks;
        callbacks.on_change = [this, weak, key](const mktl::CollectionChange& c) {
          mktl::Json message = {{"type", "change"}, {"item", key}, {"seq", c.seq},   {"op", c.op},
                                {"rowid", web_safe(c.rowid)},  {"row", web_safe(c.row)},  {"exists", c.exists}, {"time", c.time}};
          auto text = text_of(message);
          run_io([this, weak, key, text] {
            auto w = weak.lock();
            if (w && w->ready && !w->released) publish(w, {key, MessageKind::change, text});
          });
        };
        callbacks.on_reset = [this, weak, key](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) {
          auto text = text_of(snapshot_json(key, rows, seq));
          run_io([this, weak, key, text] {
            auto w = weak.lock();
            if (w && w->ready && !w->released) publish(w, {key, MessageKind::snapshot, text});
          });
        };
        // A failed catch-up (the daemon away) is retried by the view; browsers
        // are told, beside the item.
        callbacks.on_error = [this, weak, key](const std::string& text) {
          auto message = std::make_shared<const std::string>(error_text(key, "RuntimeError", text));
          run_io([this, weak, key, message] {
            auto w = weak.lock();
            if (w && w->ready && !w->released) publish(w, {key, MessageKind::other, message});
          });
        };
        view = client_.watch_collection(key, std::move(callbacks));
      } else {
        // `initial`: the GET's answer, which loses to any broadcast already
        // seen (broadcasts are in the daemon's order; their times need not be).
        auto on_value = [this, weak, key, description](const mktl::Reading& reading, bool initial) {
          std::uint64_t seq = reading.bulk ? note_bulk(key, reading) : 0;
          auto text = open_object(value_fields(key, description, reading, seq));
          run_io([this, weak, key, text, initial] {
            auto w = weak.lock();
            if (!w || w->released || (initial && w->broadcast_seen)) return;
            w->broadcast_seen = w->broadcast_seen || !initial;
            w->last = text;
            if (w->ready) publish(w, {key, MessageKind::value, text});
          });
        };
        subscription =
            client_.subscribe(key, [on_value](const std::string&, const mktl::Reading& r) { on_value(r, false); });
        // The current value: broadcasts may only come on a change.
        on_value(client_.get(key), true);
      }
    } catch (const std::exception& e) {
      auto [type, text] = failure_of(e);
      auto message = std::make_shared<const std::string>(error_text(key, type, text));
      run_io([this, weak, key, message] {
        auto w = weak.lock();
        if (!w || w->released) return;
        w->released = true;
        for (auto& [raw, sink] : w->sinks) {
          if (auto mine = by_sink_.find(raw); mine != by_sink_.end()) mine->second.erase(key);
          if (auto s = sink.lock()) s->deliver({key, MessageKind::other, message});
        }
        watches_.erase(key);
      });
      return;
    }
    // Hand the upstream side to the I/O thread (or drop it if no one is left).
    auto holder = std::make_shared<std::pair<mktl::Subscription, mktl::CollectionView>>(std::move(subscription),
                                                                                         std::move(view));
    run_io([this, weak, holder] {
      auto w = weak.lock();
      if (!w || w->released) {
        run_blocking([holder] {
          holder->first.cancel();
          holder->second.cancel();
        });
        return;
      }
      w->subscription = std::move(holder->first);
      w->view = std::move(holder->second);
      w->collection = static_cast<bool>(w->view);
      w->ready = true;
      if (w->collection) {
        if (auto text = collection_snapshot(w->key)) publish(w, {w->key, MessageKind::snapshot, text});
      } else if (w->last) {
        publish(w, {w->key, MessageKind::value, w->last});
      }
    });
  });
}

void Gateway::publish(const std::shared_ptr<Watch>& watch, OutMessage message) {
  for (auto it = watch->sinks.begin(); it != watch->sinks.end();) {
    if (auto sink = it->second.lock()) {
      sink->deliver(message);
      ++it;
    } else {
      it = watch->sinks.erase(it);
    }
  }
}

std::shared_ptr<const std::string> Gateway::collection_snapshot(const std::string& full_key) {
  auto it = watches_.find(full_key);
  if (it == watches_.end() || !it->second->view) return nullptr;
  const auto& view = it->second->view;
  // seq before rows: the rows are at least as new as the seq, and a change
  // the browser gets twice (seq above it) sets a row to what it already is.
  std::int64_t seq = view.seq();
  return text_of(snapshot_json(full_key, view.rows(), seq));
}

void Gateway::unsubscribe(Sink* sink, const std::string& full_key) {
  auto mine = by_sink_.find(sink);
  if (mine == by_sink_.end() || !mine->second.erase(full_key)) return;
  if (mine->second.empty()) by_sink_.erase(mine);
  auto it = watches_.find(full_key);
  if (it == watches_.end()) return;
  it->second->sinks.erase(sink);
  // A copy: release() erases the map's own shared_ptr, which would free the Watch under it.
  if (it->second->sinks.empty()) release(std::shared_ptr<Watch>(it->second));
}

void Gateway::drop(Sink* sink) {
  auto mine = by_sink_.find(sink);
  if (mine == by_sink_.end()) return;
  std::vector<std::string> keys;
  for (const auto& [key, weak] : mine->second) keys.push_back(key);
  for (const auto& key : keys) unsubscribe(sink, key);
  by_sink_.erase(sink);
}

void Gateway::release(const std::shared_ptr<Watch>& watch) {
  watch->released = true;
  watches_.erase(watch->key);
  {
    std::lock_guard lock(bulk_mutex_);
    bulk_frames_.erase(watch->key);
  }
  // Unsubscribing may wait for a callback in progress: not on the I/O thread.
  auto holder = std::make_shared<std::pair<mktl::Subscription, mktl::CollectionView>>(
      std::move(watch->subscription), std::move(watch->view));
  run_blocking([holder] {
    holder->first.cancel();
    holder->second.cancel();
  });
  log()->debug("{}: no browser watches it any more", watch->key);
}

std::size_t Gateway::watched() const { return watches_.size(); }

}  // namespace mkweb
