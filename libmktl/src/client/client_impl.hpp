// Private to the client: the state of a Client, shared by client.cpp (the
// request path, futures and subscriptions) and stores.cpp (finding stores,
// the retry of stale locations, daemons that move; see stores.hpp). Not part
// of the public API.
//
// Threading: `mutex` guards the store table and the subscriptions; the
// relocation state has its own `relocate_mutex`, never taken with `mutex`
// held. Requests block their caller's thread (or the engine's I/O thread
// answers them); callbacks run on `callback_pool`, one strand per key.
#pragma once

#include "client/stores.hpp"
#include "common/text.hpp"
#include "common/worker_pool.hpp"
#include "discovery/udp.hpp"
#include "protocol/codec.hpp"
#include "security/client_keys.hpp"
#include "transport/client_engine.hpp"

#include <mktl/client.hpp>
#include <mktl/error.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mktl {

struct Client::Impl : detail::BroadcastHandler, std::enable_shared_from_this<Client::Impl> {
  using Where = detail::Where;

  ClientOptions options;
  std::string home;
  std::mutex mutex;  // stores, subscriptions
  std::unordered_map<std::string, detail::StoreInfo> stores;
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

  // ---- subscriptions and requests (client.cpp) ----------------------------
  // Broadcasts are gathered per key while the engine reads them and handed
  // to the key's strand a batch at a time (on_broadcasts_read): one task,
  // one look-up of the callbacks per batch instead of per broadcast.
  void on_broadcast(std::string key, std::string payload, std::optional<Bulk> bulk) override;
  void on_broadcasts_read() override;
  void post_event(Event ev);  // one event, from any thread
  void post_events(std::vector<Event> events);  // of one key, in order
  void deliver(std::vector<Event>& events);
  // The engine thread's: broadcasts read and not handed on yet, per key.
  std::vector<std::vector<Event>> gathered;
  std::size_t gathered_count = 0;

  Json request(const std::string& endpoint, protocol::MessageType type, const std::string& target, const Json& payload,
               std::optional<double> timeout, std::optional<Bulk> bulk = {}, std::optional<Bulk>* bulk_out = nullptr);
  // Order of one thread's requests to one daemon. The blocking calls use a
  // socket of the calling thread's own; the others go through the engine's
  // socket, and a daemon reads two connections in no set order. So once a
  // thread has sent through the engine to a daemon, its next blocking
  // request to that daemon goes the same way, behind them; the ones after
  // it use the thread's socket again (the daemon has read everything sent
  // before, and queues the SETs of one item in the order read).
  // The marks are the thread's own (thread_local, no lock on the hot path).
  void sent_through_engine(const std::string& endpoint) const;
  bool take_engine_order(const std::string& endpoint) const;

  // A blocking request: on the caller's thread when it can, else through the
  // engine. Returns the REP's payload text and bulk frame.
  detail::DirectRequests::Answer exchange(const std::string& endpoint, protocol::MessageType type,
                                          const std::string& target, const std::string& payload,
                                          std::optional<double> timeout, std::optional<Bulk> bulk = {});
  // As exchange(), returning the parsed reply; throws the daemon's error.
  Json request_text(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                    const std::string& payload, std::optional<double> timeout, std::optional<Bulk> bulk = {},
                    std::optional<Bulk>* bulk_out = nullptr);

  // ---- the store table (stores.cpp) ---------------------------------------
  void cache_block(const std::string& store, const Json& block);
  // Records blocks of a store (caller holds no lock).
  void learn(const std::string& store, const Json& blocks, const std::string& host_override, bool save,
             bool validated = true);
  bool knows(const std::string& store);
  // An asynchronous request cannot be sent again after it failed, as a
  // blocking one is (with_stale_retry): a store known only from the disk
  // cache, not checked yet, is checked first (find_store asks each block's
  // daemon for its hash, and the network when one does not answer: the
  // daemon may have moved, or come back with another key).
  void check_cached(const std::string& store, Client& client);
  // A GET of `target` from a daemon found by address alone (UDP discovery,
  // DNS-SD), whose catalog has not told yet whether it requires CURVE. A
  // client with a key pair and a pinned server key asks with CURVE first (a
  // site that pins a key runs CURVE daemons), then in plain text; a daemon
  // whose last block said it is plain, the other way round. When `store`
  // (the store looked for) has a pinned key of its own, only with that key.
  Json ask_found(const std::string& endpoint, const std::string& target, const std::string& store = {});
  // A GET of `target` at an address the caller gave (Client::connect): a
  // daemon, plain or CURVE, or a registry, which is plain. With a key pair
  // and a pinned key (the store's, else the one for all), asked with that
  // key first, then in plain text: what is read there is catalogs, and the
  // keys their daemons are reached with are learn()'s, pins first.
  Json ask_given(const std::string& endpoint, const std::string& target, const std::string& store);
  // Loads cached blocks of a store without any network traffic (those of
  // other clients and of daemons on this host too: the layout is shared).
  bool load_cache(const std::string& store);

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
  auto with_stale_retry(const std::string& full_key, Client& client, bool repeatable, F&& attempt);
  // Called in the handler of the attempt's TimeoutError: `throw;` lets it stand.
  template <class F>
  auto retry_elsewhere(const std::string& full_key, Client& client, const Where& where, F& attempt);

  // ---- finding stores on the network (stores.cpp) -------------------------
  // Discovery settings: the environment's and $MKTL_HOME's, then the options'.
  discovery::Config discovery_config() const;
  // The registries (listed in $MKTL_HOME/client/registries, or found by
  // broadcast) and the daemons that answer UDP discovery on the daemon port
  // (broadcast only: the listed hosts are registries), called at once so
  // that both answer within one discovery_timeout.
  struct Answered {
    std::vector<discovery::Found> registries, daemons;
  };
  Answered call_udp();
  // Asks the registries that answered for a store's blocks; true when one
  // knew it.
  bool ask_registries(const std::string& store, const std::vector<discovery::Found>& registries);
  // Asks the daemons that answered which stores they serve (GET _hash) and
  // learns every block of `store` they hold (GET STORE._catalog); true when
  // one served it. Each daemon is reached at the address its answer came
  // from, which works on this segment whatever host name its block
  // advertises.
  bool ask_daemons(const std::string& store, const std::vector<discovery::Found>& daemons);
  // Asks DNS-SD (Avahi) for daemons of `store` (markd publishes `_mktl._tcp`
  // with TXT store=, alias=, uuid=, pub=) and learns their blocks, reaching
  // each at the address Avahi resolved; true when one served it. For
  // networks where broadcasts do not travel and no registry runs.
  bool ask_avahi(const std::string& store);
  // The network, for blocks of a store: the registries first (they know the
  // daemons beyond this segment), else the daemons that answer discovery,
  // else DNS-SD.
  bool ask_network(const std::string& store);

  // ---- daemons that move (stores.cpp) -------------------------------------
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

  void start_relocator();  // caller holds relocate_mutex
  void on_publisher(const std::string& pub, bool reachable) override;
  void on_unacknowledged(const std::string& rep) override;
  // Finds `store` on the network again, unless that was done less than
  // `every` ago; true if it was asked (and someone knew the store). Stores
  // reached by Client::connect() are where the caller said: never moved.
  bool relocate(const std::string& store, std::chrono::milliseconds every);
  // Moves the subscriptions fed by the publishers `pubs` to where their keys
  // live now; forgets publishers nobody listens to any more.
  void move_subscriptions(const std::set<std::string>& pubs);
  void relocate_loop(std::stop_token stop);

  // ---- where a key lives ---------------------------------------------------
  // What `pick` takes from where a key lives (a copy, made under the lock);
  // finds its store first if needed.
  template <class Pick>
  auto locate(const std::string& full_key, Client& client, Pick pick);
  Where locate(const std::string& full_key, Client& client);
};

// The templates of the store table, here since client.cpp instantiates them.

template <class F>
auto Client::Impl::with_stale_retry(const std::string& full_key, Client& client, bool repeatable, F&& attempt) {
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

template <class F>
auto Client::Impl::retry_elsewhere(const std::string& full_key, Client& client, const Where& where, F& attempt) {
  std::string store = detail::ascii_lower(detail::store_of(full_key));
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

template <class Pick>
auto Client::Impl::locate(const std::string& full_key, Client& client, Pick pick) {
  auto target = protocol::split_target(full_key);
  if (!target) throw ValueError("expected 'store.key', got '" + full_key + "'");
  std::string store = detail::ascii_lower(target->store), key = detail::ascii_lower(target->key);
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

}  // namespace mktl
