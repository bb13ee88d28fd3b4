// Private to the client: where a Client finds the daemons that serve a store.
//
// The module (stores.cpp, with the templates at the end of client_impl.hpp)
// finds stores (the disk cache revalidated by hash, then the registries, the
// daemons that answer discovery, DNS-SD), keeps the table of where each key
// lives, retries once elsewhere a request whose daemon's location went stale,
// and relocates stores whose daemon moved or restarted, moving their
// subscriptions along.
//
// Threading: the table is guarded by Client::Impl::mutex and is read and
// learned on any thread; the network is never asked with that lock held.
// Lookups, and the retry of a stale request, run on the caller's thread. The
// relocator is a thread of the Client's own, started at the first report of
// the I/O thread (on_publisher, on_unacknowledged: they only note the report
// and wake it) and joined by ~Client before the engine goes.
#pragma once

#include <mktl/json.hpp>

#include <string>
#include <unordered_map>

namespace mktl::detail {

// Where a daemon that serves a block is reached.
struct Where {
  std::string rep;  // tcp://host:port
  std::string pub;
  std::string curve;  // the daemon's CURVE public key; empty = plain
};

// What a Client knows of one store. Keys and store names compare in ASCII
// lower case, as the daemons keep them.
struct StoreInfo {
  bool validated = false;                      // false: straight from the disk cache, not checked yet
  bool pinned = false;                         // learned by Client::connect(): never looked for elsewhere
  Json blocks = Json::object();                // uuid -> block
  std::unordered_map<std::string, Where> by_key;  // key -> where
  std::unordered_map<std::string, std::string> host_override;  // uuid -> host
};

// The store of "store.key".
inline std::string store_of(const std::string& full_key) { return full_key.substr(0, full_key.find('.')); }

}  // namespace mktl::detail
