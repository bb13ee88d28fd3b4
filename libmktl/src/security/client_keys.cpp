#include "security/client_keys.hpp"

#include "common/text.hpp"
#include "config/logger.hpp"
#include "security/keys.hpp"
#include "security/zap.hpp"

#include <mktl/error.hpp>

namespace mktl::security {

void ClientKeys::configure(const ClientOptions& options, const std::string& home) {
  std::optional<KeyPair> client;
  if (!options.key.empty()) client = KeyPair::load(options.key, home);
  std::string pinned;
  if (!options.server_key.empty()) pinned = load_public_key(options.server_key, home);
  std::unordered_map<std::string, std::string> store_pins;
  for (const auto& [store, key] : options.server_keys) {
    try {
      store_pins[detail::ascii_lower(store)] = load_public_key(key, home);
    } catch (const Error& e) {
      throw ValueError("the server key pinned for the store '" + store + "': " + e.what());
    }
  }
  std::lock_guard lock(mutex_);
  client_ = std::move(client);
  pinned_ = std::move(pinned);
  store_pins_ = std::move(store_pins);
}

bool ClientKeys::set_key(const std::string& endpoint, const std::string& key) {
  auto it = server_keys_.find(endpoint);
  if (key.empty()) {
    if (it == server_keys_.end()) return false;
    server_keys_.erase(it);
  } else if (it == server_keys_.end()) {
    server_keys_.emplace(endpoint, key);
  } else if (it->second != key) {
    it->second = key;
  } else {
    return false;
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

bool ClientKeys::learn(const std::string& store, const std::string& rep, const std::string& pub,
                       const std::string& curve) {
  std::string key = curve;
  if (!key.empty() && !is_z85_key(key)) {
    logger("mktl.client")->warn("{}: the catalog announces a malformed CURVE key '{}'; ignored", rep, key);
    key.clear();
  }
  std::lock_guard lock(mutex_);
  if (auto pin = store_pins_.find(store); pin != store_pins_.end()) {
    if (key != pin->second)
      logger("mktl.client")->warn("{}: the catalog of {} announces {}, not the key pinned for {}: using the pinned key",
                                  rep, store, key.empty() ? "no server key (plain text)" : "the server key " + key,
                                  store);
    key = pin->second;
  } else if (!key.empty() && !pinned_.empty() && key != pinned_) {
    logger("mktl.client")->warn("{}: the catalog announces the server key {}, not the pinned {}: using the pinned key",
                                rep, key, pinned_);
    key = pinned_;
  }
  bool changed = false;
  for (const std::string* endpoint : {&rep, &pub}) {
    if (endpoint->empty()) continue;
    if (set_key(*endpoint, key)) changed = true;
    if (key.empty()) plain_.insert(*endpoint);
    else plain_.erase(*endpoint);
  }
  return changed;
}

void ClientKeys::pin_endpoint(const std::string& endpoint, const std::string& store) {
  std::lock_guard lock(mutex_);
  auto pin = store_pins_.find(store);
  const std::string& key = pin != store_pins_.end() ? pin->second : pinned_;
  if (key.empty()) return;
  set_key(endpoint, key);
}

std::string ClientKeys::pinned_for(const std::string& store) const {
  std::lock_guard lock(mutex_);
  auto pin = store_pins_.find(store);
  return pin == store_pins_.end() ? std::string() : pin->second;
}

std::vector<std::string> ClientKeys::pinned_stores() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> stores;
  std::unordered_set<std::string> keys;
  for (const auto& [store, key] : store_pins_)
    if (keys.insert(key).second) stores.push_back(store);
  return stores;
}

std::optional<std::string> ClientKeys::known_key(const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  if (auto it = server_keys_.find(endpoint); it != server_keys_.end()) return it->second;
  if (plain_.count(endpoint)) return std::string();
  return std::nullopt;
}

bool ClientKeys::could_pin(const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  return client_ && !pinned_.empty() && server_keys_.find(endpoint) == server_keys_.end();
}

bool ClientKeys::can_pin(const std::string& store) const {
  std::lock_guard lock(mutex_);
  return client_ && (!pinned_.empty() || store_pins_.count(store) > 0);
}

bool ClientKeys::known_plain(const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  return plain_.count(endpoint) > 0;
}

void ClientKeys::forget(const std::string& endpoint) {
  std::lock_guard lock(mutex_);
  set_key(endpoint, {});
}

std::string ClientKeys::server_key(const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  auto it = server_keys_.find(endpoint);
  return it == server_keys_.end() || !client_ ? std::string() : it->second;
}

void ClientKeys::check(const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  if (client_ || server_keys_.find(endpoint) == server_keys_.end()) return;
  throw Error("PermissionError", "the daemon at " + endpoint +
                                     " requires CURVE, and this client has no key pair: give one with mk --key NAME, "
                                     "$MKTL_KEY or ClientOptions::key (make one with mk keygen NAME, and have the "
                                     "daemon's security list its public key)");
}

bool ClientKeys::requires_curve(const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  return server_keys_.find(endpoint) != server_keys_.end();
}

std::string ClientKeys::secure(zmq::socket_t& socket, const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  auto it = server_keys_.find(endpoint);
  if (it == server_keys_.end() || !client_) return {};
  try {
    secure_client(socket, *client_, it->second);
  } catch (const std::exception& e) {
    logger("mktl.client")->warn("{}: cannot set up CURVE: {}", endpoint, e.what());
  }
  return it->second;
}

}  // namespace mktl::security
