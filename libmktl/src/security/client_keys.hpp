// The client's side of CurveZMQ (internal): its own key pair, and which
// daemon endpoints need CURVE with which server key. A daemon that requires
// CURVE names its public key in its catalog block (provenance "curve"), which
// the client reads from a registry, a daemon or the disk cache. A key pinned
// for a store (ClientOptions::server_keys) is the only one its daemons are
// reached with: it replaces the announced one, and a block announcing none
// (plain) too, so a forged catalog can neither point the client at another
// key nor have it speak plain text. A key pinned for all
// (ClientOptions::server_key) replaces an announced key, leaves plain
// daemons plain, and is used for addresses given to Client::connect().
//
// Threading promise: every method may be called from any thread.
#pragma once

#include <mktl/client.hpp>
#include <mktl/security.hpp>

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace mktl::security {

class ClientKeys {
 public:
  // Loads the key pair named by options.key (throws as KeyPair::load does:
  // missing file, mode not 0600, bad key) and the pinned server key.
  void configure(const ClientOptions& options, const std::string& home);
  // A daemon's endpoints as its catalog block tells them: `curve` is its
  // announced public key, empty when it does not require CURVE. True when
  // this changed the key of either endpoint (a daemon restarted with a new
  // key pair, or with CURVE turned on or off): sockets made with the old
  // one must be made again.
  // `store`: the store the block is of (its pinned key, if any, decides).
  bool learn(const std::string& store, const std::string& rep, const std::string& pub, const std::string& curve);
  // An address given by the caller (Client::connect, with the store when it
  // is named) or found by address for `store`: CURVE with the store's pinned
  // key, else the key pinned for all, when one is configured.
  void pin_endpoint(const std::string& endpoint, const std::string& store = {});
  // The key pinned for `store` alone, empty when it has none: its daemons
  // are asked with it only, never in plain text.
  std::string pinned_for(const std::string& store) const;
  // One store for each distinct key pinned per store (to ask a daemon that
  // announced nothing yet with each of them).
  std::vector<std::string> pinned_stores() const;
  // What a catalog block or a pin said of `endpoint`: its key, empty for a
  // plain daemon, nullopt when nothing is known of it.
  std::optional<std::string> known_key(const std::string& endpoint) const;
  // A daemon found by address alone (UDP discovery, DNS-SD), whose catalog
  // has not said yet whether it requires CURVE: true when this client could
  // reach it with CURVE and the key pinned for all (it has both a key pair
  // and that key) and nothing is known of `endpoint` yet. forget() undoes it.
  bool could_pin(const std::string& endpoint) const;
  // Whether this client could ask a daemon of `store` (empty: of any store)
  // over CURVE with a pinned key: it has a key pair, and a key pinned for
  // the store or for all.
  bool can_pin(const std::string& store) const;
  void forget(const std::string& endpoint);
  // Whether the last catalog block naming `endpoint` said it is plain (no
  // CURVE): such a daemon is asked in plain text first.
  bool known_plain(const std::string& endpoint) const;
  // Bumped by every change of an endpoint's key: a socket made at another
  // generation asks server_key() whether its key is still the right one.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The server key secure() would give a socket to `endpoint` now; empty
  // for a plain socket.
  std::string server_key(const std::string& endpoint) const;
  // Throws PermissionError when `endpoint` requires CURVE and this client has
  // no key pair, naming the ways to give it one.
  void check(const std::string& endpoint) const;
  // Makes a socket about to connect to `endpoint` a CURVE client when the
  // endpoint requires it (and a key pair is at hand). Returns the server key
  // it gave the socket, empty for a plain one. Never throws.
  std::string secure(zmq::socket_t& socket, const std::string& endpoint) const;
  // Whether `endpoint` requires CURVE (for error messages).
  bool requires_curve(const std::string& endpoint) const;

 private:
  mutable std::mutex mutex_;
  std::optional<KeyPair> client_;
  std::string pinned_;                                         // for all stores
  std::unordered_map<std::string, std::string> store_pins_;  // store -> Z85 key
  std::unordered_map<std::string, std::string> server_keys_;  // endpoint -> Z85 key
  std::unordered_set<std::string> plain_;  // endpoints a block said are plain
  std::atomic<std::uint64_t> generation_{0};
  // Sets (empty: erases) an endpoint's key, under mutex_; true when it changed.
  bool set_key(const std::string& endpoint, const std::string& key);
};

}  // namespace mktl::security
