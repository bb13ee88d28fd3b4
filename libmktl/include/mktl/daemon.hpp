// mktl::Daemon: serves one catalog block of a store over mKTL protocol 'a'.
//
//   class HeaterDaemon : public mktl::Daemon {
//    public:
//     using Daemon::Daemon;
//     void setup() override { add_item<Temperature>("temp", controller_); }
//   };
//   HeaterDaemon d("heater", "heater1", mktl::load_json_file("heater.json"));
//   d.run();   // until stop() or a signal handler calls it
//
// Threading promise: one I/O thread owns the daemon's sockets and ACKs every
// request at once, whatever user code is doing; a fixed pool of worker threads
// runs item hooks (see item.hpp); one scheduler thread drives every poll.
// setup() and setup_final() run on the thread that calls start() or run().
// stop() may be called from any thread (it is async-signal-unsafe: call it from
// a normal thread, e.g. after sigwait).
#pragma once

#include <mktl/item.hpp>
#include <mktl/json.hpp>
#include <mktl/security.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mktl {

struct DaemonOptions {
  // Where to bind. "tcp://*:0" (or "tcp://127.0.0.1:0") picks a free port.
  std::string rep_endpoint = "tcp://*:0";
  std::string pub_endpoint = "tcp://*:0";
  // Hostname advertised in the catalog's provenance; empty = this host's name.
  std::string hostname;
  // $MKTL_HOME; empty = the environment's (or ~/.mKTL).
  std::string home;
  // Worker threads running item hooks.
  int workers = 4;
  // Largest request (all its frames together) in bytes: a bigger one is
  // answered with a ValueError REP and freed at once, and a single frame over
  // twice this plus 1 MiB drops the connection before it is buffered whole
  // (markd --max-request-bytes). 0 = no limit.
  std::uint64_t max_request_bytes = 128ull << 20;
  // Seconds a request may wait for its item's hooks (req_get, validate,
  // req_set): past that it is answered with TimeoutError, and a worker
  // thread still held by item code (a hook's or a poll's) is replaced so
  // that other items keep working. Stopping waits this long for hooks in
  // flight. 0 = no deadline.
  double hook_timeout = 60;
  // Seconds a subscriber whose queue is full may take no broadcasts before
  // broadcasts are dropped for it (counted in _ALIASdrops, logged); until
  // then, and while a subscriber takes them, broadcasts wait for it, and so
  // do threads publishing beyond 10,000 waiting broadcasts (markd
  // --subscriber-grace, docs/reliability.md). 0 = a full queue drops at once.
  double subscriber_grace = 0.2;
  // Free-form configuration for the subclass (markd's --appconfig).
  Json appconfig = Json::object();
  // Replace a conflicting block at registries (markd --override).
  bool override_registry = false;
  // Answer UDP discovery ("Aloha mKTL") and announce the catalog to the
  // registries found at start (broadcast address and ports from
  // $MKTL_BROADCAST, $MKTL_DAEMON_PORT, $MKTL_REGISTRY_PORT or
  // $MKTL_HOME/discovery.json). A registry's rejection makes start() throw.
  bool discovery = false;
  // With discovery: also publish the daemon by DNS-SD (_mktl._tcp) through
  // avahi-daemon when one runs (a missing avahi-daemon is logged, not fatal).
  bool avahi = true;
  // Keep persistent items in SQLite under $MKTL_HOME/daemon/.
  bool persistence = true;
  // Directory of the persistence database; empty = $MKTL_HOME/daemon/persist/<store>.
  std::string persist_dir;

  // Tables and services, mkio-shaped ({"tables": ..., "services": ...}, see
  // docs/collections.md): each transaction service becomes settable record
  // items, each subpub/stream/query service a collection item. Null = none.
  Json collections;
  // The file `collections` came from, named in configuration errors.
  std::string collections_source;
  // Apply schema changes that can lose data (markd --migrate); without it a
  // daemon whose tables need such a change refuses to start (ConfigError).
  bool migrate = false;

  // CurveZMQ and access rules (mktl/security.hpp, docs/security.md); off by
  // default. A bad key file or rule makes the constructor throw ConfigError.
  SecurityOptions security;
  // The file `security` came from, named in configuration errors.
  std::string security_source;

  // A self-contained daemon for tests and embedding: loopback only, free
  // ports, no discovery, everything on disk under `home`.
  static DaemonOptions isolated(std::string home) {
    DaemonOptions o;
    o.rep_endpoint = "tcp://127.0.0.1:0";
    o.pub_endpoint = "tcp://127.0.0.1:0";
    o.hostname = "127.0.0.1";
    o.home = std::move(home);
    o.discovery = false;
    return o;
  }
};

class Daemon {
 public:
  // `items` is the items file's object ({key: description}); it is normalised
  // and checked here (ConfigError on a bad one). `source` names the file.
  Daemon(std::string store, std::string alias, Json items, DaemonOptions options = {}, std::string source = {});
  virtual ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Hooks: add custom items in setup(); setup_final() runs once every item
  // exists and holds its initial or persisted value, just before the daemon
  // announces itself. A subclass whose items use its own members should call
  // stop() in its destructor, so no hook runs while those members are destroyed.
  virtual void setup() {}
  virtual void setup_final() {}

  // Replace the plain item for `key` with a T constructed as
  // T(*this, key, args...). Call from setup().
  template <class T, class... Args>
  T& add_item(std::string key, Args&&... args) {
    static_assert(std::is_base_of_v<Item, T>, "add_item<T>: T must derive from mktl::Item");
    auto item = std::make_unique<T>(*this, std::move(key), std::forward<Args>(args)...);
    T& ref = *item;
    adopt(std::move(item));
    return ref;
  }

  // Builds items, binds sockets and serves in the background; returns once
  // the daemon answers requests. Throws on failure (bind, config, registry).
  void start();
  // start() if needed, then block until stop().
  void run();
  // Stop accepting requests, finish those in flight, flush persistence, close.
  void stop();
  bool running() const;

  Item& item(const std::string& key);
  Item* find_item(const std::string& key);
  std::vector<std::string> keys() const;

  const std::string& store() const noexcept;
  const std::string& alias() const noexcept;
  const std::string& uuid() const;
  const DaemonOptions& options() const noexcept;
  // The items object after normalisation.
  const Json& items() const noexcept;
  // The catalog block ({store, alias, uuid, time, hash, provenance, items});
  // complete after start().
  Json catalog_block() const;
  // Bound endpoints with real ports, e.g. "tcp://127.0.0.1:40123"; after start().
  std::string rep_endpoint() const;
  std::string pub_endpoint() const;
  int rep_port() const;
  int pub_port() const;

  // Internal runtime (not part of the API).
  detail::Runtime& runtime();

 private:
  void adopt(std::unique_ptr<Item> item);
  void start_discovery();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Registration of a Daemon subclass in a shared library for markd:
//   MKTL_REGISTER_DAEMON(HeaterDaemon)
// makes `markd -m libheater.so -s HeaterDaemon STORE ALIAS` construct it.
using DaemonFactory = std::unique_ptr<Daemon> (*)(std::string store, std::string alias, Json items,
                                                 DaemonOptions options, std::string source);
struct DaemonRegistration {
  const char* name;
  DaemonFactory factory;
};

}  // namespace mktl

#define MKTL_REGISTER_DAEMON(CLASS)                                                                   \
  extern "C" const ::mktl::DaemonRegistration* mktl_daemon_registration_##CLASS() {                  \
    static const ::mktl::DaemonRegistration reg{                                                     \
        #CLASS, [](std::string s, std::string a, ::mktl::Json i, ::mktl::DaemonOptions o, std::string src) \
                    -> std::unique_ptr<::mktl::Daemon> {                                             \
                  return std::make_unique<CLASS>(std::move(s), std::move(a), std::move(i), std::move(o), \
                                                 std::move(src));                                    \
                }};                                                                                  \
    return &reg;                                                                                     \
  }
