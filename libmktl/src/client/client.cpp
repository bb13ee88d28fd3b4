#include "transport/client_engine.hpp"
#include "common/text.hpp"
#include "common/worker_pool.hpp"

#include "config/logger.hpp"
#include "discovery/avahi.hpp"
#include "discovery/cache.hpp"
#include "discovery/udp.hpp"
#include "protocol/codec.hpp"
#include "security/client_keys.hpp"

#include <mktl/catalog.hpp>
#include <mktl/client.hpp>
#include <mktl/error.hpp>
#include <mktl/format.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

namespace mktl {

ClientOptions ClientOptions::from_env() {
  ClientOptions o;
  if (const char* t = std::getenv("MKTL_ACK_TIMEOUT")) o.ack_timeout = std::atof(t);
  if (o.ack_timeout <= 0) o.ack_timeout = 0.1;
  if (const char* k = std::getenv("MKTL_KEY")) o.key = k;
  if (const char* k = std::getenv("MKTL_SERVER_KEY")) o.server_key = k;
  if (const char* t = std::getenv("MKTL_DNS_SD_TIMEOUT"); t && *t) o.dns_sd_timeout = std::max(std::atof(t), 0.0);
  return o;
}

namespace {
using mktl::detail::ascii_lower;

// Throws the error a daemon reported (the `error` member of a REP), if any.
void throw_remote(const Json& error) {
  if (error.is_object())
    throw Error(error.value("type", std::string("RuntimeError")), error.value("text", std::string()));
}

// The Reading a REP carries; throws the daemon's error if it reports one.
Reading reply_reading(std::string_view payload, std::optional<Bulk> bulk) {
  Json error;
  Reading reading = protocol::read_reading(payload, std::move(bulk), 0.0, &error);
  throw_remote(error);
  return reading;
}

std::string get_payload(bool refresh) { return refresh ? "{\"refresh\":true}" : ""; }

// Keys and store names compare in ASCII lower case, as the daemons keep them.
struct Where {
  std::string rep;  // tcp://host:port
  std::string pub;
  std::string curve;  // the daemon's CURVE public key; empty = plain
};

// Where to reach a block: the first provenance entry that has `pub`.
std::optional<Where> block_address(const Json& block, const std::string& host_override = {}) {
  auto prov = block.find("provenance");
  if (prov == block.end() || !prov->is_array()) return std::nullopt;
  for (auto& p : *prov) {
    if (!p.is_object() || !p.contains("pub") || !p.contains("rep")) continue;
    std::string host = host_override.empty() ? p.value("hostname", std::string("localhost")) : host_override;
    Where w;
    w.rep = "tcp://" + host + ":" + std::to_string(p["rep"].get<long>());
    w.pub = "tcp://" + host + ":" + std::to_string(p["pub"].get<long>());
    if (auto c = p.find("curve"); c != p.end() && c->is_string()) w.curve = c->get<std::string>();
    return w;
  }
  return std::nullopt;
}

// A host for a tcp:// endpoint: IPv6 addresses in brackets.
std::string endpoint_host(const std::string& address) {
  return address.find(':') != std::string::npos && address.front() != '[' ? "[" + address + "]" : address;
}

std::string store_of(const std::string& full_key) { return full_key.substr(0, full_key.find('.')); }

std::string host_of(const std::string& endpoint) {
  auto start = endpoint.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < start) return endpoint.substr(start);
  return endpoint.substr(start, colon - start);
}

}  // namespace

struct Subscription::Token {
  std::weak_ptr<Client::Impl> client;
  std::string key;
  std::uint64_t id = 0;
};

struct detail::CallbackEntry {
  std::uint64_t id;
  Callback callback;               // one of these two
  PayloadCallback payload_callback;
  std::mutex running;  // held while the callback runs, so cancel() can wait for it
  std::atomic<bool> active{true};
};

// The callback running on this thread, so that a callback may cancel its own
// subscription without waiting for itself.
thread_local const detail::CallbackEntry* current_callback = nullptr;
struct CurrentCallback {
  explicit CurrentCallback(const detail::CallbackEntry* e) { current_callback = e; }
  ~CurrentCallback() { current_callback = nullptr; }
};

struct StoreInfo {
  bool validated = false;                      // false: straight from the disk cache, not checked yet
  bool pinned = false;                         // learned by Client::connect(): never looked for elsewhere
  Json blocks = Json::object();                // uuid -> block
  std::unordered_map<std::string, Where> by_key;  // key -> where
  std::unordered_map<std::string, std::string> host_override;  // uuid -> host
};

struct Client::Impl : detail::BroadcastHandler, std::enable_shared_from_this<Client::Impl> {
  ClientOptions options;
  std::string home;
  std::mutex mutex;  // stores, subscriptions
  std::unordered_map<std::string, StoreInfo> stores;
  std::unordered_map<std::string, std::vector<std::shared_ptr<detail::CallbackEntry>>> callbacks;  // full key
  std::unordered_map<std::string, std::string> sub_endpoint;                                // full key -> pub
  std::uint64_t next_sub = 1;

  // Callbacks run on a small pool with one strand per key: in order for one
  // key, and a callback that blocks holds up only its own key.
  struct Event {
    std::string key;
    std::string payload;
    std::optional<Bulk> bulk;
    // Set for a GET's answer standing in for broadcasts missed while a
    // subscription moved: only Reading callbacks take it (a payload
    // callback, a collection's, expects the broadcast's own members).
    bool refreshed = false;
  };
  std::unique_ptr<detail::WorkerPool> callback_pool = std::make_unique<detail::WorkerPool>(2);
  std::mutex strands_mutex;
  std::unordered_map<std::string, std::shared_ptr<detail::Strand>> strands;
  std::atomic<std::size_t> queued{0};
  std::size_t max_queued = 100000;
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<bool> stopping{false};

  std::shared_ptr<security::ClientKeys> keys = std::make_shared<security::ClientKeys>();
  std::unique_ptr<detail::Engine> engine;
  std::unique_ptr<detail::DirectRequests> direct;

  void on_broadcast(std::string key, std::string payload, std::optional<Bulk> bulk) override {
    post_event(Event{std::move(key), std::move(payload), std::move(bulk)});
  }

  void post_event(Event ev) {
    if (queued.load(std::memory_order_relaxed) >= max_queued) {
      if (dropped.fetch_add(1) % 1000 == 0)
        logger("mktl.client")->warn("subscription callbacks fall behind: {} broadcasts dropped", dropped.load());
      return;
    }
    std::shared_ptr<detail::Strand> strand;
    {
      std::lock_guard lock(strands_mutex);
      auto& s = strands[ev.key];
      if (!s) s = std::make_shared<detail::Strand>(*callback_pool);
      strand = s;
    }
    ++queued;
    strand->post(detail::share_task([this, ev = std::move(ev)]() mutable {
      --queued;
      if (!stopping) deliver(ev);
    }));
  }

  void deliver(Event& ev) {
    std::vector<std::shared_ptr<detail::CallbackEntry>> targets;
    {
      std::lock_guard lock(mutex);
      auto it = callbacks.find(ev.key);
      if (it == callbacks.end()) return;
      targets = it->second;
    }
    Reading r;
    Json whole;  // parsed only when a payload callback wants it
    if (ev.refreshed)
      std::erase_if(targets, [](const auto& entry) { return static_cast<bool>(entry->payload_callback); });
    bool any_reading = false, any_payload = false;
    for (auto& entry : targets) (entry->payload_callback ? any_payload : any_reading) = true;
    try {
      if (any_payload) whole = protocol::parse_payload(ev.payload);
      if (any_reading) r = protocol::read_reading(ev.payload, std::move(ev.bulk), 0.0);
    } catch (const std::exception& e) {
      logger("mktl.client")->warn("{}: dropped a broadcast with a bad payload: {}", ev.key, e.what());
      return;
    }
    for (auto& entry : targets) {
      std::lock_guard running(entry->running);
      if (!entry->active) continue;
      try {
        CurrentCallback current(entry.get());
        if (entry->payload_callback) entry->payload_callback(ev.key, whole);
        else entry->callback(ev.key, r);
      } catch (const std::exception& e) {
        logger("mktl.client")->warn("{}: a subscription callback threw: {}", ev.key, e.what());
      }
    }
  }

  Json request(const std::string& endpoint, protocol::MessageType type, const std::string& target, const Json& payload,
               std::optional<double> timeout, std::optional<Bulk> bulk = {}, std::optional<Bulk>* bulk_out = nullptr) {
    return request_text(endpoint, type, target, payload.is_null() ? std::string() : json::dump(payload), timeout,
                        std::move(bulk), bulk_out);
  }

  // A blocking request: on the caller's thread when it can, else through the
  // engine. Returns the REP's payload text and bulk frame.
  detail::DirectRequests::Answer exchange(const std::string& endpoint, protocol::MessageType type,
                                          const std::string& target, const std::string& payload,
                                          std::optional<double> timeout, std::optional<Bulk> bulk = {}) {
    keys->check(endpoint);
    double wait = timeout.value_or(options.timeout);
    if (auto answer = direct->request(endpoint, type, target, payload, bulk, wait)) return std::move(*answer);
    auto pending = std::make_shared<detail::WaitedPending>(endpoint, type, target, 0, payload, std::move(bulk));
    engine->send_and_wait(pending, wait, target + " @ " + endpoint);
    return {std::move(pending->payload), std::move(pending->bulk)};
  }

  // As exchange(), returning the parsed reply; throws the daemon's error.
  Json request_text(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                    const std::string& payload, std::optional<double> timeout, std::optional<Bulk> bulk = {},
                    std::optional<Bulk>* bulk_out = nullptr) {
    auto answer = exchange(endpoint, type, target, payload, timeout, std::move(bulk));
    Json reply = protocol::parse_payload(answer.payload);
    if (reply.is_object())
      if (auto err = reply.find("error"); err != reply.end()) throw_remote(*err);
    if (bulk_out) *bulk_out = std::move(answer.bulk);
    return reply;
  }

  void cache_block(const std::string& store, const Json& block) {
    if (!options.use_cache) return;
    try {
      discovery::write_cached_block(home, store, block);
    } catch (const std::exception& e) {
      logger("mktl.client")->debug("cannot cache the catalog of {}: {}", store, e.what());
    }
  }

  // Records blocks of a store (caller holds no lock).
  void learn(const std::string& store, const Json& blocks, const std::string& host_override, bool save,
             bool validated = true) {
    std::lock_guard lock(mutex);
    auto& info = stores[store];
    info.validated = validated;
    for (auto& [uuid, block] : blocks.items()) {
      if (!block.is_object()) continue;
      info.blocks[uuid] = block;
      if (!host_override.empty()) info.host_override[uuid] = host_override;
      auto ho = info.host_override.count(uuid) ? info.host_override[uuid] : std::string();
      auto where = block_address(block, ho);
      if (where) keys->learn(where->rep, where->pub, where->curve);
      if (where && block.contains("items") && block["items"].is_object())
        for (auto& [key, desc] : block["items"].items()) info.by_key[key] = *where;
      if (save) cache_block(store, block);
    }
  }

  bool knows(const std::string& store) {
    std::lock_guard lock(mutex);
    return stores.count(store) > 0;
  }

  // Loads cached blocks of a store without any network traffic (those of
  // other clients and of daemons on this host too: the layout is shared).
  bool load_cache(const std::string& store) {
    if (!options.use_cache) return false;
    Json blocks = discovery::read_cached_blocks(home, store);
    if (blocks.empty()) return false;
    learn(store, blocks, {}, false, false);
    return true;
  }

  // Runs a request; if it times out against a location that came unchecked
  // from the disk cache (the daemon may have moved), finds the store again
  // and retries once. A valid cache thus costs no discovery at all.
  //
  // A location that was checked may still go stale (the daemon restarted on
  // other ports, or on another host): then the network is asked again (at
  // most once a second per store) and the request is retried once if the key
  // lives elsewhere now; otherwise the TimeoutError stands. A SET the daemon
  // acknowledged before its connection closed may have been applied: it is
  // not sent again (`repeatable` is for GETs).
  template <class F>
  auto with_stale_retry(const std::string& full_key, Client& client, bool repeatable, F&& attempt) {
    Where where = locate(full_key, client);
    try {
      return attempt(where);
    } catch (const detail::ReplyLost&) {
      if (!repeatable) throw;
      return retry_elsewhere(full_key, client, where, attempt);
    } catch (const TimeoutError&) {
      return retry_elsewhere(full_key, client, where, attempt);
    }
  }

  // Called in the handler of the attempt's TimeoutError: `throw;` lets it stand.
  template <class F>
  auto retry_elsewhere(const std::string& full_key, Client& client, const Where& where, F& attempt) {
    std::string store = ascii_lower(store_of(full_key));
    bool from_cache;
    {
      std::lock_guard lock(mutex);
      auto it = stores.find(store);
      if (it == stores.end()) throw;
      from_cache = !it->second.validated;
      if (from_cache) stores.erase(it);
    }
    // (The relocator thread may have found the new address meanwhile.)
    if (from_cache) client.find_store(store);
    else relocate(store, kRelocateRequestsEvery);
    Where now = locate(full_key, client);
    if (!from_cache && now.rep == where.rep) throw;
    return attempt(now);
  }

  // Where a key lives; finds its store first if needed.
  // Discovery settings: the environment's and $MKTL_HOME's, then the options'.
  discovery::Config discovery_config() const {
    auto config = discovery::Config::from_env(home);
    if (!options.broadcast_address.empty()) config.broadcast = options.broadcast_address;
    if (options.registry_port > 0) config.registry_port = options.registry_port;
    return config;
  }

  // Asks the registries (listed in $MKTL_HOME/client/registries, or found by
  // broadcast) for a store's blocks; true when one knew it.
  bool ask_registries(const std::string& store) {
    auto config = discovery_config();
    for (auto& registry : discovery::call(config, config.registry_port, options.discovery_timeout)) {
      std::string endpoint = "tcp://" + registry.address + ":" + std::to_string(registry.rep_port);
      try {
        Json blocks = request(endpoint, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0).value("value", Json::object());
        if (blocks.is_object() && !blocks.empty()) {
          learn(store, blocks, {}, true);
          return true;
        }
      } catch (const Error& e) {
        logger("mktl.client")->debug("registry {} does not know {}: {}", endpoint, store, e.what());
      }
    }
    return false;
  }

  // Asks the daemons that answer UDP discovery on the daemon port which
  // stores they serve (GET _hash) and learns every block of `store` they hold
  // (GET STORE._catalog); true when one served it. Broadcast only: the hosts
  // in $MKTL_HOME/client/registries are registries. Each daemon is reached at
  // the address its answer came from, which works on this segment whatever
  // host name its block advertises.
  bool ask_daemons(const std::string& store) {
    auto config = discovery_config();
    config.hosts.clear();
    bool found = false;
    for (auto& daemon : discovery::call(config, config.daemon_port, options.discovery_timeout)) {
      std::string endpoint = "tcp://" + daemon.address + ":" + std::to_string(daemon.rep_port);
      try {
        Json hashes = request(endpoint, protocol::MessageType::GET, "_hash", nullptr, 2.0).value("value", Json());
        if (!hashes.is_object() || !hashes.contains(store)) continue;
        Json blocks = request(endpoint, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0)
                          .value("value", Json());
        if (blocks.is_object() && !blocks.empty()) {
          learn(store, blocks, daemon.address, true);
          found = true;
        }
      } catch (const Error& e) {
        logger("mktl.client")->debug("daemon {} did not tell its blocks of {}: {}", endpoint, store, e.what());
      }
    }
    return found;
  }

  // Asks DNS-SD (Avahi) for daemons of `store` (markd publishes `_mktl._tcp`
  // with TXT store=, alias=, uuid=, pub=) and learns their blocks, reaching
  // each at the address Avahi resolved; true when one served it. For
  // networks where broadcasts do not travel and no registry runs.
  bool ask_avahi(const std::string& store) {
    if (options.dns_sd_timeout <= 0) return false;
    bool found = false;
    for (auto& service : discovery::avahi_browse(options.dns_sd_timeout)) {
      auto it = service.txt.find("store");
      if (it == service.txt.end() || ascii_lower(it->second) != store || service.address.empty() || service.port <= 0)
        continue;
      std::string host = endpoint_host(service.address);
      std::string endpoint = "tcp://" + host + ":" + std::to_string(service.port);
      try {
        Json blocks = request(endpoint, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0)
                          .value("value", Json());
        if (blocks.is_object() && !blocks.empty()) {
          learn(store, blocks, host, true);
          found = true;
        }
      } catch (const Error& e) {
        logger("mktl.client")->debug("DNS-SD service {} at {} did not tell its blocks of {}: {}", service.name,
                                     endpoint, store, e.what());
      }
    }
    return found;
  }

  // The network, for blocks of a store: the registries first (they know the
  // daemons beyond this segment), else the daemons that answer discovery,
  // else DNS-SD.
  bool ask_network(const std::string& store) {
    return ask_registries(store) || ask_daemons(store) || ask_avahi(store);
  }

  // ---- daemons that move --------------------------------------------------
  // A daemon may stop, or restart elsewhere (other ports, another host); its
  // link may go down for a while. The I/O thread reports publishers out of
  // reach and requests nobody acknowledged (on_publisher, on_unacknowledged);
  // the relocator thread then asks the network again where their stores are
  // and moves subscriptions, and later requests, to the new address. While a
  // publisher stays out of reach it asks again every kRelocateEvery. A
  // publisher that comes back where it was needs nothing: its SUB socket
  // reconnects by itself and resubscribes.
  static constexpr std::chrono::milliseconds kRelocateEvery{250};
  // A store is looked for again at most this often for failed requests (a
  // dead daemon would otherwise cost a discovery round per request).
  static constexpr std::chrono::milliseconds kRelocateRequestsEvery{1000};

  std::mutex relocate_mutex;
  std::condition_variable_any relocate_cv;
  std::set<std::string> lost_pubs;                                            // guarded by relocate_mutex
  std::set<std::string> suspect_reps;                                         // guarded by relocate_mutex
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> relocated;  // store; by relocate_mutex
  std::jthread relocator;                                                     // guarded by relocate_mutex

  void start_relocator() {  // caller holds relocate_mutex
    if (!relocator.joinable() && !stopping)
      relocator = std::jthread([this](std::stop_token stop) { relocate_loop(stop); });
  }

  void on_publisher(const std::string& pub, bool reachable) override {
    {
      std::lock_guard lock(relocate_mutex);
      if (reachable) {
        lost_pubs.erase(pub);
        return;
      }
      lost_pubs.insert(pub);
      start_relocator();
    }
    relocate_cv.notify_all();
  }

  void on_unacknowledged(const std::string& rep) override {
    {
      std::lock_guard lock(relocate_mutex);
      if (!suspect_reps.insert(rep).second) return;
      start_relocator();
    }
    relocate_cv.notify_all();
  }

  // Finds `store` on the network again, unless that was done less than
  // `every` ago; true if it was asked (and someone knew the store). Stores
  // reached by Client::connect() are where the caller said: never moved.
  bool relocate(const std::string& store, std::chrono::milliseconds every) {
    {
      std::lock_guard lock(mutex);
      auto it = stores.find(store);
      if (it == stores.end() || it->second.pinned) return false;
    }
    {
      std::lock_guard lock(relocate_mutex);
      auto now = std::chrono::steady_clock::now();
      auto& last = relocated[store];
      if (last != std::chrono::steady_clock::time_point() && now - last < every) return false;
      last = now;
    }
    logger("mktl.client")->debug("looking for the store {} again", store);
    return ask_network(store);
  }

  // Moves the subscriptions fed by the publishers `pubs` to where their keys
  // live now; forgets publishers nobody listens to any more.
  void move_subscriptions(const std::set<std::string>& pubs) {
    std::set<std::string> still_used;
    std::vector<std::pair<std::string, std::string>> moved;  // key, its daemon's rep
    {
      std::lock_guard lock(mutex);
      for (auto& [key, pub] : sub_endpoint) {
        if (!pubs.count(pub)) continue;
        auto target = protocol::split_target(key);
        auto it = target ? stores.find(ascii_lower(target->store)) : stores.end();
        if (it == stores.end()) continue;
        auto k = it->second.by_key.find(ascii_lower(target->key));
        if (k == it->second.by_key.end() || k->second.pub == pub) {
          still_used.insert(pub);
          continue;
        }
        logger("mktl.client")->info("{}: broadcasts now from {} (was {})", key, k->second.pub, pub);
        // Posted under the lock, so that a concurrent cancel() unsubscribes
        // from wherever the key is subscribed at that moment.
        engine->subscribe(k->second.pub, protocol::topic(key));
        engine->unsubscribe(pub, protocol::topic(key));
        pub = k->second.pub;
        moved.emplace_back(key, k->second.rep);
      }
    }
    // What was broadcast while the subscription was away is not sent again:
    // the current value is asked for and handed to the callbacks instead.
    for (auto& [key, rep] : moved) {
      try {
        auto answer = exchange(rep, protocol::MessageType::GET, key, std::string(), 2.0);
        Event ev{key, std::move(answer.payload), std::move(answer.bulk)};
        ev.refreshed = true;
        post_event(std::move(ev));
      } catch (const std::exception& e) {
        logger("mktl.client")->debug("{}: the value after the move was not read: {}", key, e.what());
      }
    }
    std::lock_guard lock(relocate_mutex);
    for (auto& pub : pubs)
      if (!still_used.count(pub)) lost_pubs.erase(pub);
  }

  void relocate_loop(std::stop_token stop) {
    std::unique_lock lock(relocate_mutex);
    while (!stop.stop_requested()) {
      relocate_cv.wait(lock, stop, [&] { return !lost_pubs.empty() || !suspect_reps.empty(); });
      if (stop.stop_requested()) return;
      std::set<std::string> pubs = lost_pubs;
      std::set<std::string> reps = std::exchange(suspect_reps, {});
      lock.unlock();
      std::set<std::string> wanted, suspect;
      {
        std::lock_guard data(mutex);
        for (auto& [key, pub] : sub_endpoint)
          if (pubs.count(pub)) wanted.insert(ascii_lower(store_of(key)));
        for (auto& [store, info] : stores)
          for (auto& [key, where] : info.by_key)
            if (reps.count(where.rep)) {
              suspect.insert(store);
              break;
            }
      }
      try {
        // A lost publisher is looked for at every turn; a store is looked for
        // because of failed requests at most once a second.
        for (auto& store : wanted)
          if (!stop.stop_requested()) relocate(store, std::chrono::milliseconds(0));
        for (auto& store : suspect)
          if (!stop.stop_requested() && !wanted.count(store)) relocate(store, kRelocateRequestsEvery);
        move_subscriptions(pubs);
      } catch (const std::exception& e) {
        logger("mktl.client")->warn("looking for moved daemons failed: {}", e.what());
      }
      lock.lock();
      if (!lost_pubs.empty())
        relocate_cv.wait_for(lock, stop, kRelocateEvery, [&] { return !suspect_reps.empty(); });
    }
  }

  // What `pick` takes from where a key lives (a copy, made under the lock).
  template <class Pick>
  auto locate(const std::string& full_key, Client& client, Pick pick) {
    auto target = protocol::split_target(full_key);
    if (!target) throw ValueError("expected 'store.key', got '" + full_key + "'");
    std::string store = ascii_lower(target->store), key = ascii_lower(target->key);
    for (int attempt = 0; attempt < 3; ++attempt) {
      {
        std::lock_guard lock(mutex);
        auto it = stores.find(store);
        if (it != stores.end()) {
          auto k = it->second.by_key.find(key);
          if (k != it->second.by_key.end()) return pick(k->second);
          if (attempt == 2) throw KeyError::python("store '" + store + "' has no key '" + key + "'");
        }
      }
      // The key may belong to another daemon of the store, one the cache has
      // never seen: the registries (or the daemons themselves) know every block.
      if (attempt == 1 && !ask_network(store) && !knows(store)) break;
      if (attempt == 0) {
        bool known = knows(store);
        if (!load_cache(store)) {
          client.find_store(store);
        } else if (!known) {
          // Known from the cache alone, which may be stale: a missing key means revalidate.
          bool has_key;
          {
            std::lock_guard lock(mutex);
            has_key = stores[store].by_key.count(key) > 0;
          }
          if (!has_key) client.find_store(store);
        }
      }
    }
    throw KeyError::python("store '" + store + "' has no key '" + key + "'");
  }

  Where locate(const std::string& full_key, Client& client) {
    return locate(full_key, client, [](const Where& where) { return where; });
  }
};

Subscription::Subscription(Subscription&& o) noexcept : token_(std::move(o.token_)) {}
Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    cancel();
    token_ = std::move(o.token_);
  }
  return *this;
}
Subscription::~Subscription() { cancel(); }

void Subscription::cancel() {
  auto token = std::move(token_);
  if (!token) return;
  auto impl = token->client.lock();
  if (!impl) return;
  std::shared_ptr<detail::CallbackEntry> entry;
  {
    std::lock_guard lock(impl->mutex);
    auto it = impl->callbacks.find(token->key);
    if (it == impl->callbacks.end()) return;
    auto& list = it->second;
    for (auto e = list.begin(); e != list.end(); ++e)
      if ((*e)->id == token->id) {
        entry = *e;
        list.erase(e);
        break;
      }
    if (list.empty()) {
      impl->callbacks.erase(it);
      std::string pub = impl->sub_endpoint[token->key];
      impl->sub_endpoint.erase(token->key);
      // Under the lock: the relocator may move the key's subscription.
      if (!pub.empty()) impl->engine->unsubscribe(pub, protocol::topic(token->key));
    }
  }
  if (entry) {
    entry->active = false;
    // Wait for a callback in progress, unless we are that callback.
    if (current_callback != entry.get()) std::lock_guard wait(entry->running);
  }
}

Client::Client(ClientOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->home = impl_->options.home.empty() ? mktl_home() : impl_->options.home;
  impl_->max_queued = std::max<std::size_t>(impl_->options.callback_queue, 1);
  impl_->keys->configure(impl_->options, impl_->home);  // the key pair's file is checked here
  impl_->engine = std::make_unique<detail::Engine>(impl_->options.ack_timeout, *impl_, impl_->keys);
  impl_->direct =
      std::make_unique<detail::DirectRequests>(impl_->engine->context(), impl_->options.ack_timeout, impl_->keys);
}

Client::~Client() {
  impl_->stopping = true;
  std::jthread relocator;
  {
    std::lock_guard lock(impl_->relocate_mutex);
    relocator = std::move(impl_->relocator);
  }
  relocator = {};  // stops and joins it: it uses the engine
  impl_->direct.reset();
  impl_->engine.reset();           // no more broadcasts come in; queued sends go out
  impl_->callback_pool->shutdown();  // callbacks in progress finish
}

const ClientOptions& Client::options() const noexcept { return impl_->options; }
std::uint64_t Client::dropped_broadcasts() const { return impl_->dropped.load(); }

std::vector<std::string> Client::connect(const std::string& rep_endpoint, const std::string& store_name) {
  std::vector<std::string> stores;
  impl_->keys->pin_endpoint(rep_endpoint);
  if (!store_name.empty()) {
    stores.push_back(ascii_lower(store_name));
  } else {
    Json hashes = impl_->request(rep_endpoint, protocol::MessageType::GET, "_hash", nullptr, {}).value("value", Json::object());
    for (auto& [store, blocks] : hashes.items()) stores.push_back(store);
  }
  std::string host = host_of(rep_endpoint);
  if (host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  for (auto& store : stores) {
    Json reply = impl_->request(rep_endpoint, protocol::MessageType::GET, store + "._catalog", nullptr, {});
    Json blocks = reply.value("value", Json::object());
    impl_->learn(store, blocks, host, true);
    std::lock_guard lock(impl_->mutex);
    impl_->stores[store].pinned = true;
  }
  return stores;
}

void Client::find_store(const std::string& store_name) {
  std::string store = ascii_lower(store_name);
  auto log = logger("mktl.client");
  // 1. The cache, revalidated by hash with each block's daemon.
  if (impl_->load_cache(store)) {
    Json blocks;
    {
      std::lock_guard lock(impl_->mutex);
      blocks = impl_->stores[store].blocks;
      impl_->stores.erase(store);
    }
    bool all_good = true;
    for (auto& [uuid, block] : blocks.items()) {
      auto where = block_address(block);
      if (where) impl_->keys->learn(where->rep, where->pub, where->curve);
      if (!where) {
        all_good = false;
        continue;
      }
      try {
        Json hashes = impl_->request(where->rep, protocol::MessageType::GET, store + "._hash", nullptr, 2.0).value("value", Json::object());
        Json current = hashes[store][uuid];
        if (current == block["hash"]) {
          impl_->learn(store, Json{{uuid, block}}, {}, false);
        } else {
          Json fresh = impl_->request(where->rep, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0).value("value", Json::object());
          impl_->learn(store, fresh, {}, true);
        }
      } catch (const Error& e) {
        // It requires CURVE and this client has no key: asking elsewhere cannot help.
        if (e.type() == "PermissionError") throw;
        log->debug("cached block {} of {} did not revalidate: {}", uuid, store, e.what());
        all_good = false;
      }
    }
    if (all_good && impl_->knows(store)) return;
  }
  // 2. Registries: listed in $MKTL_HOME/client/registries, or found by broadcast.
  if (impl_->ask_registries(store)) return;
  // 3. No registry knows it (or none runs): the daemons that answer discovery.
  if (impl_->ask_daemons(store)) return;
  // 4. Nobody answers broadcasts here: DNS-SD.
  if (impl_->ask_avahi(store)) return;
  // Some cached blocks revalidated, and nobody knows of others.
  if (impl_->knows(store)) return;
  throw KeyError::python("no daemon or registry knows the store '" + store + "'");
}

std::vector<std::string> Client::discover() {
  auto config = impl_->discovery_config();
  std::set<std::string> stores;
  for (int port : {config.registry_port, config.daemon_port}) {
    for (auto& found : discovery::call(config, port, impl_->options.discovery_timeout)) {
      std::string endpoint = "tcp://" + found.address + ":" + std::to_string(found.rep_port);
      try {
        Json hashes = impl_->request(endpoint, protocol::MessageType::GET, "_hash", nullptr, 2.0).value("value", Json::object());
        for (auto& [store, blocks] : hashes.items()) stores.insert(store);
      } catch (const Error& e) {
        logger("mktl.client")->debug("{} did not answer _hash: {}", endpoint, e.what());
      }
    }
  }
  if (impl_->options.dns_sd_timeout > 0)
    for (auto& service : discovery::avahi_browse(impl_->options.dns_sd_timeout))
      if (auto it = service.txt.find("store"); it != service.txt.end() && !it->second.empty())
        stores.insert(ascii_lower(it->second));
  return {stores.begin(), stores.end()};
}

Json Client::blocks(const std::string& store_name) {
  std::string store = ascii_lower(store_name);
  if (!impl_->knows(store) && !impl_->load_cache(store)) find_store(store);
  std::lock_guard lock(impl_->mutex);
  return impl_->stores[store].blocks;
}

Json Client::items(const std::string& store) {
  Json out = Json::object();
  // Held in a variable: a range-for over blocks(store).items() would iterate a dead temporary.
  Json all = blocks(store);
  for (auto& [uuid, block] : all.items())
    if (block.contains("items") && block["items"].is_object())
      for (auto& [key, desc] : block["items"].items()) out[key] = desc;
  return out;
}

Json Client::description(const std::string& full_key) {
  auto t = protocol::split_target(full_key);
  if (!t) throw ValueError("expected 'store.key', got '" + full_key + "'");
  std::string store = ascii_lower(t->store), key = ascii_lower(t->key);
  Json all = items(store);
  auto it = all.find(key);
  if (it != all.end()) return *it;
  // Perhaps a block of another daemon of this store that the cache has not seen.
  if (impl_->ask_network(store)) {
    all = items(store);
    it = all.find(key);
    if (it != all.end()) return *it;
  }
  throw KeyError::python("store '" + store + "' has no key '" + key + "'");
}

ItemHandle Client::item(const std::string& full_key) { return ItemHandle(*this, full_key); }

namespace {

std::string lower_target(const std::string& full_key) {
  auto dot = full_key.find('.');
  if (dot == std::string::npos) return full_key;
  return ascii_lower(full_key);
}

std::string set_payload(const Reading& value) {
  std::string payload;
  if (value.bulk) {
    payload = protocol::bulk_payload(*value.bulk, value.time == 0 ? now() : value.time);
  } else {
    payload = "{\"value\":";
    json::dump_to(payload, value.value);
    payload += "}";
  }
  return payload;
}

}  // namespace

Reading Client::get(const std::string& full_key, bool refresh, std::optional<double> timeout) {
  std::string target = lower_target(full_key);
  std::string payload = get_payload(refresh);
  return impl_->with_stale_retry(target, *this, true, [&](const Where& where) {
    auto answer = impl_->exchange(where.rep, protocol::MessageType::GET, target, payload, timeout);
    return reply_reading(answer.payload, std::move(answer.bulk));
  });
}

void Client::set(const std::string& full_key, Reading value, std::optional<double> timeout) {
  std::string target = lower_target(full_key);
  std::string payload = set_payload(value);
  impl_->with_stale_retry(target, *this, false, [&](const Where& where) {
    impl_->request_text(where.rep, protocol::MessageType::SET, target, payload, timeout, value.bulk);
    return 0;
  });
}

Json Client::call(const std::string& type, const std::string& full_key, const Json& payload,
                  std::optional<double> timeout) {
  protocol::MessageType t;
  if (type == "GET") t = protocol::MessageType::GET;
  else if (type == "SET") t = protocol::MessageType::SET;
  else throw ValueError("request type must be GET or SET, not '" + type + "'");
  if (!payload.is_object()) throw TypeError("a request payload is a JSON object");
  std::string target = lower_target(full_key);
  std::string text = json::dump(payload);
  return impl_->with_stale_retry(target, *this, t == protocol::MessageType::GET, [&](const Where& where) {
    return impl_->request_text(where.rep, t, target, text, timeout);
  });
}

namespace {

// A request whose REP is read into a Reading as it arrives, on the I/O thread
// (no copy of the payload is kept for later).
class ReadPending : public detail::Pending {
 public:
  using Pending::Pending;

 protected:
  void receive(std::string_view rep_payload, std::optional<Bulk> rep_bulk) override {
    try {
      reading_ = reply_reading(rep_payload, std::move(rep_bulk));
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  // Once finished: the local failure or the daemon's error, null on success.
  std::exception_ptr error() {
    if (failure && !error_) {
      try {
        throw_failure();
      } catch (...) {
        error_ = std::current_exception();
      }
    }
    return error_;
  }
  Reading reading_;
  std::exception_ptr error_;
};

// A request whose completion calls a handler, on the client's I/O thread.
template <class Done>
class HandledPending final : public ReadPending {
 public:
  HandledPending(std::string endpoint, protocol::MessageType type, std::string target, std::uint64_t flags,
                 std::string payload, std::optional<Bulk> bulk, Done done)
      : ReadPending(std::move(endpoint), type, std::move(target), flags, std::move(payload), std::move(bulk)),
        done_(std::move(done)) {}

 private:
  void finish() override {
    try {
      if constexpr (std::is_same_v<Done, GetDone>) done_(std::move(reading_), error());
      else done_(error());
    } catch (const std::exception& e) {
      logger("mktl.client")->warn("{}: a completion handler threw: {}", target, e.what());
    } catch (...) {
      logger("mktl.client")->warn("{}: a completion handler threw", target);
    }
  }
  Done done_;
};

// A request nobody waits for (NO_ACK | NO_REP).
class DiscardedPending final : public detail::Pending {
 public:
  using Pending::Pending;

 private:
  void finish() override {}
};

// An asynchronous request of kind P (a Pending subclass) for `full_key`,
// addressed to the daemon that serves it; `extra` goes to P's constructor.
template <class P, class ClientImpl, class... Extra>
std::shared_ptr<P> make_request(ClientImpl& impl, Client& client, const std::string& full_key,
                                protocol::MessageType type, std::uint64_t flags, std::string payload,
                                std::optional<Bulk> bulk, Extra&&... extra) {
  std::string target = lower_target(full_key);
  auto rep = impl.locate(target, client, [](const auto& where) { return where.rep; });
  impl.keys->check(rep);
  return std::make_shared<P>(std::move(rep), type, std::move(target), flags, std::move(payload), std::move(bulk),
                             std::forward<Extra>(extra)...);
}

}  // namespace

// The shared state of a Future: the request itself (one allocation per
// request). finish() runs on the I/O thread; it wakes the caller only if one
// is waiting, so a completion nobody waits for yet costs no system call.
class detail::FutureState final : public ReadPending {
 public:
  using ReadPending::ReadPending;

  bool ready() {
    std::lock_guard lock(mutex_);
    return done_;
  }
  // False when `seconds` passed first.
  bool wait(double seconds) {
    std::unique_lock lock(mutex_);
    if (done_) return true;
    ++waiters_;
    if (seconds >= 1e9) cv_.wait(lock, [&] { return done_; });
    else cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done_; });
    --waiters_;
    return done_;
  }
  // After a wait that returned true.
  Reading take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(reading_);
  }

 private:
  void finish() override {
    (void)error();  // a local failure becomes the exception get() throws
    bool wake;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      wake = waiters_ > 0;
    }
    if (wake) cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mutex_; reading_ and error_ are final before it turns true
  int waiters_ = 0;    // guarded by mutex_
};

template <class T>
bool Future<T>::ready() const {
  return state_ && state_->ready();
}

template <class T>
void Future<T>::wait() const {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  state_->wait(1e9);
}

template <class T>
std::future_status Future<T>::wait_seconds(double seconds) const {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  return state_->wait(std::max(seconds, 0.0)) ? std::future_status::ready : std::future_status::timeout;
}

template <class T>
T Future<T>::get() {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  auto state = std::move(state_);
  state->wait(1e9);
  if constexpr (std::is_void_v<T>) state->take();
  else return state->take();
}

template class Future<Reading>;
template class Future<void>;

Future<void> Client::set_async(const std::string& full_key, Reading value) {
  auto state = make_request<detail::FutureState>(*impl_, *this, full_key, protocol::MessageType::SET, 0,
                                                 set_payload(value), value.bulk);
  impl_->engine->send(state);
  return Future<void>(std::move(state));
}

Future<Reading> Client::get_async(const std::string& full_key, bool refresh) {
  auto state = make_request<detail::FutureState>(*impl_, *this, full_key, protocol::MessageType::GET, 0,
                                                 get_payload(refresh), std::nullopt);
  impl_->engine->send(state);
  return Future<Reading>(std::move(state));
}

void Client::get_then(const std::string& full_key, GetDone done, bool refresh) {
  if (!done) throw ValueError("get_then needs a completion handler");
  impl_->engine->send(make_request<HandledPending<GetDone>>(*impl_, *this, full_key, protocol::MessageType::GET, 0,
                                                            get_payload(refresh), std::nullopt, std::move(done)));
}

void Client::set_then(const std::string& full_key, Reading value, SetDone done) {
  if (!done) throw ValueError("set_then needs a completion handler");
  impl_->engine->send(make_request<HandledPending<SetDone>>(*impl_, *this, full_key, protocol::MessageType::SET, 0,
                                                            set_payload(value), value.bulk, std::move(done)));
}

void Client::set_nowait(const std::string& full_key, Reading value) {
  impl_->engine->send(make_request<DiscardedPending>(*impl_, *this, full_key, protocol::MessageType::SET,
                                                     protocol::NO_ACK | protocol::NO_REP, set_payload(value),
                                                     value.bulk));
}

Json Client::request(const std::string& rep_endpoint, const std::string& type, const std::string& target,
                     const Json& payload, std::optional<double> timeout) {
  protocol::MessageType t;
  if (type == "GET") t = protocol::MessageType::GET;
  else if (type == "SET") t = protocol::MessageType::SET;
  else throw ValueError("request type must be GET or SET, not '" + type + "'");
  return impl_->request(rep_endpoint, t, target, payload, timeout);
}

Subscription Client::subscribe(const std::string& full_key, Callback callback) {
  if (!callback) throw ValueError("subscribe needs a callback");
  auto entry = std::make_shared<detail::CallbackEntry>();
  entry->callback = std::move(callback);
  return add_subscription(full_key, std::move(entry));
}

Subscription Client::subscribe_payload(const std::string& full_key, PayloadCallback callback) {
  if (!callback) throw ValueError("subscribe_payload needs a callback");
  auto entry = std::make_shared<detail::CallbackEntry>();
  entry->payload_callback = std::move(callback);
  return add_subscription(full_key, std::move(entry));
}

Subscription Client::add_subscription(const std::string& full_key, std::shared_ptr<detail::CallbackEntry> entry) {
  std::string key = lower_target(full_key);
  auto where = impl_->locate(key, *this);
  impl_->keys->check(where.pub);
  {
    std::lock_guard lock(impl_->mutex);
    entry->id = impl_->next_sub++;
    auto& list = impl_->callbacks[key];
    if (list.empty()) {
      impl_->sub_endpoint[key] = where.pub;
      impl_->engine->subscribe(where.pub, protocol::topic(key));
    }
    list.push_back(entry);
  }
  auto token = std::make_shared<Subscription::Token>();
  token->client = impl_;
  token->key = key;
  token->id = entry->id;
  return Subscription(std::move(token));
}

std::string ItemHandle::get_formatted(bool refresh) const {
  Reading r = get(refresh);
  return format_value(description(), r.value);
}

void ItemHandle::set_formatted(const std::string& text, std::optional<double> timeout) const {
  set(Reading(parse_formatted(description(), text)), timeout);
}

}  // namespace mktl
