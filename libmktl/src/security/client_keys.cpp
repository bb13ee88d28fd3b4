#include "security/client_keys.hpp"

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
  std::lock_guard lock(mutex_);
  client_ = std::move(client);
  pinned_ = std::move(pinned);
}

void ClientKeys::learn(const std::string& rep, const std::string& pub, const std::string& curve) {
  std::string key = curve;
  if (!key.empty() && !is_z85_key(key)) {
    logger("mktl.client")->warn("{}: the catalog announces a malformed CURVE key '{}'; ignored", rep, key);
    key.clear();
  }
  std::lock_guard lock(mutex_);
  if (!key.empty() && !pinned_.empty() && key != pinned_) {
    logger("mktl.client")->warn("{}: the catalog announces the server key {}, not the pinned {}: using the pinned key",
                                rep, key, pinned_);
    key = pinned_;
  }
  for (const std::string* endpoint : {&rep, &pub}) {
    if (endpoint->empty()) continue;
    if (key.empty()) server_keys_.erase(*endpoint);
    else server_keys_[*endpoint] = key;
  }
}

void ClientKeys::pin_endpoint(const std::string& endpoint) {
  std::lock_guard lock(mutex_);
  if (!pinned_.empty()) server_keys_[endpoint] = pinned_;
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

void ClientKeys::secure(zmq::socket_t& socket, const std::string& endpoint) const {
  std::lock_guard lock(mutex_);
  auto it = server_keys_.find(endpoint);
  if (it == server_keys_.end() || !client_) return;
  try {
    secure_client(socket, *client_, it->second);
  } catch (const std::exception& e) {
    logger("mktl.client")->warn("{}: cannot set up CURVE: {}", endpoint, e.what());
  }
}

}  // namespace mktl::security
