#include "runtime/runtime.hpp"

#include "config/logger.hpp"
#include "persist/store.hpp"
#include "model/python.hpp"
#include "protocol/codec.hpp"

#include <mktl/catalog.hpp>
#include <mktl/error.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace mktl::detail {

namespace {

// Runs `work` and answers with its payload, or with the error it threw.
template <class Reply, class Work>
void answer(Reply& reply, Work&& work) {
  try {
    work();
  } catch (const Error& e) {
    reply.error(e.type(), e.what());
  } catch (const Json::exception& e) {
    reply.error("TypeError", e.what());
  } catch (const std::exception& e) {
    reply.error("RuntimeError", e.what());
  } catch (...) {
    reply.error("RuntimeError", "unknown exception in item code");
  }
}

void check_bulk(const Bulk& b) {
  auto unit = dtype_size(b.dtype());
  if (unit == 0) throw TypeError("unknown dtype " + python::repr(b.dtype()));
  for (auto d : b.shape())
    if (d < 0) throw ValueError("negative dimension in bulk shape");
  // The shape comes from the peer: its product may not fit in 64 bits.
  const std::int64_t count = b.element_count();
  std::uint64_t need = 0;
  if (count < 0 || __builtin_mul_overflow(static_cast<std::uint64_t>(count), unit, &need))
    throw ValueError("bulk data has " + std::to_string(b.size()) + " bytes, but shape " +
                     python::str(Json(b.shape())) + " and dtype " + b.dtype() + " describe more than 2**64 bytes");
  if (need != b.size())
    throw ValueError("bulk data has " + std::to_string(b.size()) + " bytes, but shape and dtype " + b.dtype() +
                     " need " + std::to_string(need));
}

}  // namespace

std::string encode_reading(const Reading& reading) {
  if (reading.bulk) return protocol::bulk_payload(*reading.bulk, reading.time);
  return protocol::value_payload(reading.value, reading.time);
}

Runtime::Runtime(Daemon& daemon, const DaemonOptions& options) : daemon_(daemon), options_(options) {}

Runtime::~Runtime() { stop(); }

void Runtime::open_persistence() {
  std::string dir = options_.persist_dir;
  if (dir.empty()) {
    std::string home = options_.home.empty() ? mktl_home() : options_.home;
    dir = home + "/daemon/persist/" + daemon_.store();
  }
  persist_ = persist::Store::open(dir + "/" + daemon_.alias() + ".sqlite3");
}

void Runtime::start(std::unordered_map<std::string, std::unique_ptr<Item>>& items) {
  auto log = logger("mktl.runtime");
  start_time_ = now();
  pool_ = std::make_unique<WorkerPool>(options_.workers);
  watchdog_ = std::make_unique<HookWatchdog>(*pool_, options_.hook_timeout);
  scheduler_ = std::make_unique<Scheduler>();
  std::uint64_t next_id = 1;
  bool any_persist = false;
  for (auto& [key, item] : items) {
    auto& core = item->core_;
    core->runtime = this;
    core->id = next_id++;
    core->strand = std::make_shared<Strand>(*pool_);
    core->fast_get = !overrides_req_get(*item);
    // A SET of a plain caching item is cheap and cannot block: with nothing
    // of the item's queued, the I/O thread applies it at once. Persistent
    // items wait on the disk, so they go to a worker.
    core->inline_set = !core->persist && !overrides_set_hooks(*item) && core->type != ItemType::bulk;
    any_persist = any_persist || core->persist;
    by_target_[core->full_key] = core;
  }

  if (any_persist && options_.persistence) {
    open_persistence();
    auto saved = persist_->load(daemon_.uuid());
    for (auto& [key, value] : saved) {
      auto it = items.find(key);
      if (it == items.end() || !it->second->core_->persist) continue;
      Item& item = *it->second;
      try {
        Json payload = protocol::parse_payload(value.payload);
        std::optional<Bulk> bulk;
        if (value.bulk) bulk = Bulk::from_bytes(*value.bulk, {}, {});
        Reading r = protocol::reading_from_payload(payload, std::move(bulk), now());
        if (!r.bulk) r.value = validate_type(item.description(), r.value);
        // Not running yet: publish() only caches; the value is broadcast below.
        item.publish(item.validate(std::move(r)));
      } catch (const std::exception& e) {
        log->warn("{}.{}: the persisted value was not restored, it failed validation: {}", daemon_.store(), key,
                  e.what());
      }
    }
  }

  transport::ServerOptions so;
  so.rep_endpoint = options_.rep_endpoint;
  so.pub_endpoint = options_.pub_endpoint;
  so.max_request_bytes = options_.max_request_bytes;
  so.subscriber_grace = std::chrono::milliseconds(
      std::llround(std::clamp(options_.subscriber_grace, 0.0, 86400.0) * 1000.0));
  so.security = security_;
  server_ = std::make_unique<transport::Server>(
      so, [this](transport::Incoming&& request, transport::Reply reply) { dispatch(std::move(request), std::move(reply)); });
  server_->start();
  running_ = true;

  // Broadcast what every item holds, and start the polls.
  for (auto& [key, item] : items) {
    auto& core = *item->core_;
    std::shared_ptr<const std::string> encoded;
    std::optional<Bulk> bulk;
    double period;
    {
      std::lock_guard lock(core.mutex);
      if (core.has_value) {
        encoded = core.encoded;
        bulk = core.current.bulk;
      }
      period = core.poll_period;
    }
    if (encoded) server_->publish(core.topic, encoded, bulk);
    if (period > 0) {
      set_poll(core, period);
      // The first poll now, not one period after start: a GET right after
      // start should see the hardware's value, not null.
      post_poll(item->core_);
    }
  }
}

void Runtime::stop() {
  if (!running_.exchange(false)) return;
  if (server_) server_->stop_receiving();
  if (scheduler_) scheduler_->stop();
  // Finishes requests in flight, waiting at most the hook timeout for item
  // code; the watchdog runs meanwhile and answers those that miss it.
  if (pool_)
    pool_->shutdown(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::duration<double>(std::max(0.0, options_.hook_timeout))));
  if (watchdog_) watchdog_->stop();
  for (auto it = drains_.rbegin(); it != drains_.rend(); ++it) {
    try {
      (*it)();
    } catch (const std::exception& e) {
      logger("mktl.runtime")->error("stopping: {}", e.what());
    }
  }
  drains_.clear();
  if (persist_) {
    try {
      persist_->flush();
    } catch (const std::exception& e) {
      logger("mktl.runtime")->error("flushing persistent values failed: {}", e.what());
    }
  }
  if (server_) server_->stop();
}

void Runtime::set_direct_set(Item& item, std::function<void(transport::Incoming&&, transport::Reply)> handler) {
  item.core_->direct_set = std::move(handler);
}

void Runtime::add_drain(std::function<void()> drain) { drains_.push_back(std::move(drain)); }
void Runtime::add_settle(std::function<void()> settle) { settles_.push_back(std::move(settle)); }

void Runtime::set_direct_get(Item& item, std::function<void(transport::Incoming&&, transport::Reply)> handler) {
  item.core_->direct_get = std::move(handler);
}

void Runtime::publish_raw(std::string topic, std::shared_ptr<const std::string> payload) {
  // running_ is set after server_ exists and cleared before it stops.
  if (running_ && server_) server_->publish(std::move(topic), std::move(payload));
}

void Runtime::notify_watchers(Item& item) {
  std::vector<std::weak_ptr<ItemCore>> watchers;
  {
    std::lock_guard lock(item.core_->mutex);
    if (item.core_->watchers.empty()) return;
    watchers = item.core_->watchers;
  }
  for (auto& w : watchers)
    if (auto watcher = w.lock()) post_poll(watcher);
}

void Runtime::publish(ItemCore& core, Reading reading, bool repeat, bool durable) {
  std::shared_ptr<const std::string> encoded;
  std::vector<std::weak_ptr<ItemCore>> watchers;
  const std::optional<Bulk> bulk = reading.bulk;  // shared, not copied
  const bool save = core.persist && persist_;
  auto bytes = [&] {
    std::optional<std::string> b;
    if (bulk) {
      auto view = bulk->bytes();
      b.emplace(reinterpret_cast<const char*>(view.data()), view.size());
    }
    return b;
  };
  // A SET's value (durable) is committed before the item takes it: a value
  // that cannot be saved (disk full, I/O error) fails the SET and leaves the
  // item, its subscribers and the database as they were.
  if (save && durable) {
    {
      std::lock_guard lock(core.mutex);
      if (core.has_value && !repeat && core.current.same_value(reading)) return;
      encoded = std::make_shared<const std::string>(encode_reading(reading));
    }
    try {
      persist_->save(daemon_.uuid(), core.full_key.substr(daemon_.store().size() + 1), *encoded, bytes());
    } catch (const Error& e) {
      throw RuntimeError(core.full_key + " keeps its previous value: the new one could not be saved (" + e.what() +
                         ")");
    }
  }
  {
    std::lock_guard lock(core.mutex);
    if (!encoded) {
      if (core.has_value && !repeat && core.current.same_value(reading)) return;
      encoded = std::make_shared<const std::string>(encode_reading(reading));
    }
    core.encoded = encoded;
    core.current = std::move(reading);
    core.has_value = true;
    watchers = core.watchers;
  }
  if (server_) server_->publish(core.topic, encoded, bulk);
  if (save && !durable)
    persist_->save_async(daemon_.uuid(), core.full_key.substr(daemon_.store().size() + 1), *encoded, bytes());
  for (auto& w : watchers)
    if (auto watcher = w.lock()) post_poll(watcher);
}

void Runtime::post_poll(const std::shared_ptr<ItemCore>& core) {
  if (!running_ || !core->strand) return;
  // At most one poll queued per item: polls never pile up or overlap.
  if (core->poll_queued.exchange(true)) return;
  core->strand->post([core] {
    core->poll_queued = false;
    Item* item;
    {
      std::lock_guard lock(core->mutex);
      item = core->item;
    }
    if (!item) return;
    try {
      item->req_poll();
    } catch (const std::exception& e) {
      logger("mktl.runtime")->warn("{}: poll failed: {}", core->full_key, e.what());
    }
  });
}

void Runtime::set_poll(ItemCore& core, double period) {
  if (!scheduler_) return;
  if (period <= 0) {
    scheduler_->cancel(core.id);
    return;
  }
  auto self = by_target_.find(core.full_key);
  if (self == by_target_.end()) return;
  std::weak_ptr<ItemCore> weak = self->second;
  scheduler_->schedule(core.id, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(period)),
                       [this, weak] {
                         if (auto c = weak.lock()) post_poll(c);
                       });
}

void Runtime::dispatch(transport::Incoming&& request, transport::Reply reply) {
  auto it = by_target_.find(request.target);
  if (it == by_target_.end()) {
    pool_->post(share_task([this, request = std::move(request), reply = std::move(reply)]() mutable {
      handle_special(std::move(request), std::move(reply));
    }));
    return;
  }
  if (request.type == protocol::MessageType::GET && it->second->direct_get && it->second->gettable)
    it->second->direct_get(std::move(request), std::move(reply));
  else if (request.type == protocol::MessageType::GET)
    handle_get(it->second, std::move(request), std::move(reply));
  else if (it->second->direct_set)
    it->second->direct_set(std::move(request), std::move(reply));
  else
    handle_set(it->second, std::move(request), std::move(reply));
}

std::vector<std::vector<std::string>> Runtime::exchange(std::vector<std::string> frames) {
  if (!running_) throw RuntimeError("Runtime::exchange before start()");
  if (!exchange_server_)
    exchange_server_ = std::make_unique<transport::Server>(
        transport::ServerOptions{},
        [this](transport::Incoming&& request, transport::Reply reply) { dispatch(std::move(request), std::move(reply)); });
  return exchange_server_->exchange(std::move(frames), [this] {
    pool_->wait_idle();
    for (auto& settle : settles_) settle();
    pool_->wait_idle();  // what their completions posted
  });
}

void Runtime::handle_get(const std::shared_ptr<ItemCore>& core, transport::Incoming&& request, transport::Reply reply) {
  if (!core->gettable) {
    reply.error("TypeError", core->full_key.substr(daemon_.store().size() + 1) + " is not a gettable item");
    return;
  }
  // The hot path: a plain GET of an item that does not override req_get is
  // answered here, on the I/O thread, from the cached encoding.
  // A malformed payload is refused even where the fast path would not read it.
  if (!request.payload.empty()) {
    try {
      (void)protocol::parse_payload(request.payload);
    } catch (const std::exception& e) {
      reply.error("ValueError", e.what());
      return;
    }
  }
  bool maybe_refresh = request.payload.find("refresh") != std::string::npos;
  if (core->fast_get && !maybe_refresh) {
    std::shared_ptr<const std::string> encoded;
    std::optional<Bulk> bulk;
    {
      std::lock_guard lock(core->mutex);
      if (core->has_value) {
        encoded = core->encoded;
        bulk = core->current.bulk;
      }
    }
    if (encoded)
      reply.send_shared(std::move(encoded), std::move(bulk));
    else
      reply.send(protocol::value_payload(nullptr, now()));
    return;
  }
  auto guarded = watchdog_->watch(std::move(reply), core->full_key + " req_get");
  core->strand->post(share_task([core, request = std::move(request), guarded]() mutable {
    if (!guarded->begin()) return;  // timed out while it waited: the hook does not run
    auto& reply = *guarded;
    answer(reply, [&] {
      Item* item;
      {
        std::lock_guard lock(core->mutex);
        item = core->item;
      }
      if (!item) throw RuntimeError("item is gone");
      Request rq;
      rq.target = request.target;
      rq.payload = protocol::parse_payload(request.payload);
      rq.bulk = std::move(request.bulk);
      Reading r = item->req_get(rq);
      if (!r.bulk && r.time == 0.0 && r.value.is_null()) r.time = now();
      reply.send(encode_reading(r), r.bulk);
    });
  }));
}

void Runtime::handle_set(const std::shared_ptr<ItemCore>& core, transport::Incoming&& request, transport::Reply reply) {
  auto apply = [this, core](transport::Incoming& request, auto& reply) {
    answer(reply, [&] {
      Item* item;
      {
        std::lock_guard lock(core->mutex);
        item = core->item;
      }
      if (!item) throw RuntimeError("item is gone");
      if (!core->settable) throw TypeError(item->key() + " is not a settable item");
      Json payload = protocol::parse_payload(request.payload);
      bool has_value = payload.is_object() && payload.contains("value");
      if (!has_value && !request.bulk) throw ValueError("SET request for " + core->full_key + " carries no value");
      Reading r = protocol::reading_from_payload(payload, std::move(request.bulk), now());
      r.time = now();
      if (core->type == ItemType::bulk) {
        if (!r.bulk) throw TypeError(item->key() + " is a bulk item: a SET needs a bulk frame with shape and dtype");
        check_bulk(*r.bulk);
      } else if (r.bulk) {
        throw TypeError(item->key() + " is not a bulk item, but the SET carries bulk data");
      } else {
        r.value = validate_type(item->description(), r.value);
      }
      r = item->validate(std::move(r));
      item->req_set(r);
      if (item->publish_on_set()) publish(*core, std::move(r), false, true);
      reply.send(std::string(protocol::set_ok_payload()));
    });
  };
  if (core->inline_set && core->strand->run_if_idle([&] { apply(request, reply); })) return;
  auto guarded = watchdog_->watch(std::move(reply), core->full_key + " req_set");
  core->strand->post(share_task([apply, request = std::move(request), guarded]() mutable {
    if (guarded->begin()) apply(request, *guarded);
  }));
}

void Runtime::handle_special(transport::Incoming&& request, transport::Reply reply) {
  answer(reply, [&] {
    const std::string& target = request.target;
    const std::string& store = daemon_.store();
    bool get = request.type == protocol::MessageType::GET;
    std::call_once(special_once_, [&] {
      Json block = daemon_.catalog_block();
      // The uuid is read first: Json's operator= takes its argument by value,
      // so `catalog[block["uuid"]] = std::move(block)` would read a moved-from block.
      const std::string uuid = block["uuid"].get<std::string>();
      Json hashes = Json::object();
      hashes[store][uuid] = block["hash"];
      double t = block.value("time", now());
      hash_answer_ = std::make_shared<const std::string>(protocol::value_payload(hashes, t));
      Json catalog = Json::object();
      catalog[uuid] = std::move(block);
      catalog_answer_ = std::make_shared<const std::string>(protocol::value_payload(catalog, t));
    });
    if (target == "_hash" || target == "._hash") {
      if (!get) throw TypeError(target + " is not a settable item");
      reply.send_shared(hash_answer_);
      return;
    }
    auto parts = protocol::split_target(target);
    if (!parts) {
      if (target == "_catalog") throw ValueError("this daemon is not a registry: it does not take catalog announcements");
      throw ValueError("invalid target " + python::repr(target) + ": expected 'store.key'");
    }
    if (parts->store != store) {
      if (parts->key == "_hash" || parts->key == "_catalog")
        throw KeyError::python("this daemon does not know store '" + parts->store + "'");
      throw ValueError("this request is for " + python::repr(parts->store) + ", but this daemon is in " + python::repr(store));
    }
    if (parts->key == "_hash") {
      if (!get) throw TypeError("_hash is not a settable item");
      reply.send_shared(hash_answer_);
      return;
    }
    if (parts->key == "_catalog") {
      if (!get) throw ValueError("this daemon is not a registry: it does not take catalog announcements");
      reply.send_shared(catalog_answer_);
      return;
    }
    throw KeyError::python("this daemon does not contain '" + parts->key + "'");
  });
}

}  // namespace mktl::detail
