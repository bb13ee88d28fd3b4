// A daemon's security policy, resolved (internal): its key pair, the
// authorised clients by public key, and the ACL rules. Built once at daemon
// construction (so that a bad key file or rule is a configuration error
// before anything binds), then read-only: every method may be called from
// any thread.
#pragma once

#include <mktl/security.hpp>

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mktl::security {

enum class Action { get, set, subscribe };
const char* action_name(Action action);

class Policy {
 public:
  // Loads the server key pair and the clients' public keys, checks the rules.
  // Throws ConfigError naming `source` and the field, or the key file's error.
  Policy(const SecurityOptions& options, std::string store, const std::string& home, const std::string& source = {});

  const KeyPair& server() const noexcept { return server_; }
  const std::string& store() const noexcept { return store_; }

  // The configured name of the client with this 32-byte public key, or null.
  const std::string* client_name(std::string_view binary_public_key) const;
  // Whether the client may connect to the PUB socket: it has subscribe
  // rights on some item (every client when there are no rules).
  bool may_subscribe_anything(const std::string& name) const;
  // Whether the client may `action` the request target ("store.key", or a
  // special target such as "_hash" or "store._catalog", always allowed).
  bool allows(const std::string& name, Action action, std::string_view target) const;
  // The PermissionError text for a refused request.
  std::string refusal(const std::string& name, Action action, std::string_view target) const;

 private:
  struct Rule {
    std::string pattern;  // lower case
    bool qualified;       // matched against "store.key" (it has a '.')
    std::vector<std::string> lists[3];
  };
  KeyPair server_;
  std::string store_;
  std::unordered_map<std::string, std::string> names_;  // binary public key -> name
  std::vector<Rule> rules_;
};

}  // namespace mktl::security
