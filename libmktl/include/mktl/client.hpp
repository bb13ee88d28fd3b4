// mktl::Client: gets, sets and subscribes to items of any store.
//
//   mktl::Client client;                                   // options from the environment
//   client.connect("tcp://127.0.0.1:40123");               // or found through discovery
//   auto temp = client.item("heater.temp");
//   double t = temp.get().value;
//   client.item("heater.setpoint").set(45.0);
//   auto sub = temp.subscribe([](const std::string& key, const mktl::Reading& r) { ... });
//
// Threading promise: every method may be called from any thread. One I/O
// thread per Client owns its sockets (one DEALER and one SUB per daemon).
// Subscription callbacks run on a small pool of client worker threads, never
// the I/O thread: in order and never concurrently for one key, while a
// callback that blocks holds up only its own key (up to the pool's size).
// Broadcasts that overflow the callback queues are dropped and counted
// (dropped_broadcasts()), never lost silently.
#pragma once

#include <mktl/future.hpp>
#include <mktl/json.hpp>
#include <mktl/reading.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mktl {

struct ClientOptions {
  // How long to wait for a request's ACK before raising TimeoutError.
  double ack_timeout = 0.1;
  // Default time to wait for a REP.
  double timeout = 60.0;
  // $MKTL_HOME; empty = the environment's (or ~/.mKTL).
  std::string home;
  // Cache catalogs under $MKTL_HOME/client/cache.
  bool use_cache = true;
  // Discovery settings (broadcast address, registry port) for finding stores.
  std::string broadcast_address;   // empty = $MKTL_BROADCAST or 255.255.255.255
  int registry_port = 0;           // 0 = $MKTL_REGISTRY_PORT or 10103
  double discovery_timeout = 0.5;  // seconds to wait for discovery answers
  // Seconds to browse DNS-SD (Avahi) for a store that no registry and no
  // daemon answering broadcasts knows; 0 = never use DNS-SD.
  // $MKTL_DNS_SD_TIMEOUT sets it in from_env().
  double dns_sd_timeout = 2.0;
  // Broadcasts waiting for subscription callbacks, at most; more are dropped
  // and counted (dropped_broadcasts()).
  std::size_t callback_queue = 100000;
  // CurveZMQ (docs/security.md): this client's key pair, a key name
  // (NAME -> $MKTL_HOME/keys/NAME.key) or a secret key file; empty = none
  // ($MKTL_KEY in from_env()). Needed only for daemons that require CURVE.
  std::string key;
  // The daemons' public key, pinned (Z85 text, a .pub file or a key name;
  // $MKTL_SERVER_KEY in from_env()): used instead of the key a catalog
  // announces, and for the addresses given to connect(). Empty = trust the
  // catalog's. A daemon whose catalog announces no key is still reached in
  // plain text: to refuse that, pin the store's key in server_keys.
  std::string server_key;
  // Keys pinned per store: store -> key (as server_key). A store listed
  // here is reached only over CURVE with its key, whatever a catalog says,
  // a block announcing plain text included; it wins over server_key.
  std::map<std::string, std::string> server_keys;
  // Takes one pin as mk's --server-key and $MKTL_SERVER_KEY write it:
  // "STORE=KEY" pins KEY for STORE (server_keys), anything else (a Z85 key,
  // a .pub file, a key name) is server_key; a 40-character Z85 key, or a
  // path with '/' or '.' before its '=', is never read as STORE=KEY. Throws
  // ValueError on an empty store or key.
  void pin_server_key(const std::string& entry);
  // Pins `entries` (each as pin_server_key takes it) in place of every key
  // pinned so far (those of $MKTL_SERVER_KEY): a command line's --server-key.
  void replace_server_keys(const std::vector<std::string>& entries);
  // Fill the fields left empty from the environment.
  static ClientOptions from_env();
};

class Client;
class ItemHandle;
namespace detail { struct CallbackEntry; }
class CollectionView;        // mktl/collection.hpp
struct CollectionCallbacks;  // mktl/collection.hpp

// An active subscription; destroying it (or calling cancel()) unsubscribes.
// Move-only.
class Subscription {
 public:
  Subscription() = default;
  Subscription(Subscription&&) noexcept;
  Subscription& operator=(Subscription&&) noexcept;
  ~Subscription();
  void cancel();
  explicit operator bool() const noexcept { return static_cast<bool>(token_); }

 private:
  friend class Client;
  struct Token;
  explicit Subscription(std::shared_ptr<Token> token) : token_(std::move(token)) {}
  std::shared_ptr<Token> token_;
};

using Callback = std::function<void(const std::string& full_key, const Reading& reading)>;
// A broadcast's whole payload (a JSON object: value, time and whatever else
// the daemon sent beside them, such as a collection's seq and op).
using PayloadCallback = std::function<void(const std::string& full_key, const Json& payload)>;

// Completion handlers of get_then/set_then: `error` is null on success (and
// the Reading holds the value), else the exception the request failed with
// (rethrow it with std::rethrow_exception).
using GetDone = std::function<void(Reading reading, std::exception_ptr error)>;
using SetDone = std::function<void(std::exception_ptr error)>;

class Client {
 public:
  explicit Client(ClientOptions options = ClientOptions::from_env());
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Learn the stores a daemon serves by its request address: fetches the
  // catalog blocks of `store` (or, with store empty, of every store it
  // reports in `_hash`) and remembers how to reach them. Returns the store
  // names learned.
  std::vector<std::string> connect(const std::string& rep_endpoint, const std::string& store = {});

  // Make a store known: from the cache (revalidated by hash), else from a
  // registry listed in $MKTL_HOME/client/registries or found by broadcast,
  // else from the daemons that answer a discovery broadcast, else from
  // DNS-SD (Avahi). Throws KeyError if no one knows it. A daemon that later
  // moves (restarts on other ports or hosts) is looked for again the same
  // way when its broadcasts stop or a request to it goes unacknowledged
  // (docs/discovery.md).
  void find_store(const std::string& store);

  // Stores anyone answers for: asks the registries and daemons found by UDP
  // broadcast (and those listed in $MKTL_HOME/client/registries) for `_hash`.
  // Returns store names, sorted.
  std::vector<std::string> discover();

  // Catalog of one store: {key: description} merged over its blocks
  // (find_store() first if needed).
  Json items(const std::string& store);
  // The blocks ({uuid: block}) of a known store.
  Json blocks(const std::string& store);
  Json description(const std::string& full_key);

  ItemHandle item(const std::string& full_key);

  // One request. `full_key` is "store.key" or a special target ("_hash",
  // "store._catalog"). Errors from the daemon are raised as mktl::Error with
  // the remote type and text; no ACK within ack_timeout raises TimeoutError.
  // The SETs one thread makes to one item apply in the order it made them,
  // whichever of these calls it mixes (set, set_async, set_then, set_nowait).
  Reading get(const std::string& full_key, bool refresh = false, std::optional<double> timeout = {});
  void set(const std::string& full_key, Reading value, std::optional<double> timeout = {});
  // Many requests in flight on the client's one socket per daemon: each
  // returns at once with a Future (mktl/future.hpp) that get() waits on. A key
  // the catalog does not have throws here, before anything is sent.
  Future<void> set_async(const std::string& full_key, Reading value);
  Future<Reading> get_async(const std::string& full_key, bool refresh = false);
  // Asynchronous requests with a completion handler instead of a future: the
  // cheapest way to keep many requests in flight. Threading promise: `done`
  // runs once, on the client's I/O thread, so it must not block (it holds up
  // every other response and broadcast of this Client); it may issue further
  // get_then/set_then/get_async requests. An exception it throws is logged.
  void get_then(const std::string& full_key, GetDone done, bool refresh = false);
  void set_then(const std::string& full_key, Reading value, SetDone done);
  // Fire and forget (NO_ACK | NO_REP).
  void set_nowait(const std::string& full_key, Reading value);
  // Raw request to a daemon address, for tools and registries: returns the
  // REP payload (throws on an error payload).
  Json request(const std::string& rep_endpoint, const std::string& type, const std::string& target,
               const Json& payload = Json::object(), std::optional<double> timeout = {});

  // One request to an item with a payload of the caller's making, returning
  // the daemon's REP payload (throws the daemon's error): for requests that
  // carry more than a value, such as a transaction on a record item
  // (call("SET", "book.orders_new", {{"value", {...}}, {"ref", "r1"}}) gives
  // {"value": {"ref", "seq", "time", "rows"}, ...}) or a GET by ref.
  Json call(const std::string& type, const std::string& full_key, const Json& payload = Json::object(),
            std::optional<double> timeout = {});

  // Subscribe to broadcasts of one item; the callback gets every new value.
  Subscription subscribe(const std::string& full_key, Callback callback);
  // As subscribe(), with the whole payload of each broadcast (same strand,
  // same order, same threading promise).
  Subscription subscribe_payload(const std::string& full_key, PayloadCallback callback);

  // A live view of a collection item (mktl/collection.hpp): snapshot, then
  // every change, gaps caught up. `filter` (an mktl::Expression) keeps the
  // rows that match it. Throws as the view's constructor does.
  CollectionView watch_collection(const std::string& full_key, CollectionCallbacks callbacks,
                                  std::string filter = {});

  const ClientOptions& options() const noexcept;

  // Broadcasts dropped because a callback queue overflowed (loss is counted,
  // never silent).
  std::uint64_t dropped_broadcasts() const;

 private:
  friend class Subscription;
  Subscription add_subscription(const std::string& full_key, std::shared_ptr<detail::CallbackEntry> entry);
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// A handle on one item of a Client; cheap to copy; valid while its Client lives.
class ItemHandle {
 public:
  ItemHandle(Client& client, std::string full_key) : client_(&client), key_(std::move(full_key)) {}

  Reading get(bool refresh = false) const { return client_->get(key_, refresh); }
  void set(Reading value, std::optional<double> timeout = {}) const { client_->set(key_, std::move(value), timeout); }
  Future<void> set_async(Reading value) const { return client_->set_async(key_, std::move(value)); }
  Future<Reading> get_async(bool refresh = false) const { return client_->get_async(key_, refresh); }
  void set_nowait(Reading value) const { client_->set_nowait(key_, std::move(value)); }
  void get_then(GetDone done, bool refresh = false) const { client_->get_then(key_, std::move(done), refresh); }
  void set_then(Reading value, SetDone done) const { client_->set_then(key_, std::move(value), std::move(done)); }
  Subscription subscribe(Callback callback) const { return client_->subscribe(key_, std::move(callback)); }

  // Formatted forms (enumerator names, printf format, sexagesimal).
  std::string get_formatted(bool refresh = false) const;
  void set_formatted(const std::string& text, std::optional<double> timeout = {}) const;

  Json description() const { return client_->description(key_); }
  const std::string& full_key() const noexcept { return key_; }

 private:
  Client* client_;
  std::string key_;
};

}  // namespace mktl
