#include "security/policy.hpp"

#include "security/keys.hpp"

#include <mktl/error.hpp>

#include <fnmatch.h>

#include <algorithm>
#include <set>

namespace mktl {

namespace {

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::vector<std::string> name_list(const Json& value, const std::string& source, const std::string& pointer) {
  if (!value.is_array()) throw ConfigError(source, pointer, "expected a list of client names (or \"*\")");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string() || value[i].get<std::string>().empty())
      throw ConfigError(source, pointer + "/" + std::to_string(i), "expected a client name (or \"*\")");
    out.push_back(value[i].get<std::string>());
  }
  return out;
}

}  // namespace

SecurityOptions SecurityOptions::from_json(const Json& section, const std::string& source) {
  SecurityOptions o;
  if (section.is_null()) return o;
  const std::string base = "/security";
  if (!section.is_object()) throw ConfigError(source, base, "expected an object {curve, server_key, clients, acl}");
  for (auto& [field, value] : section.items()) {
    const std::string at = base + "/" + field;
    if (field == "curve") {
      if (!value.is_boolean()) throw ConfigError(source, at, "expected true or false");
      o.curve = value.get<bool>();
    } else if (field == "server_key") {
      if (!value.is_string() || value.get<std::string>().empty())
        throw ConfigError(source, at, "expected a key name (NAME -> $MKTL_HOME/keys/NAME.key) or a secret key file path");
      o.server_key = value.get<std::string>();
    } else if (field == "clients") {
      if (!value.is_object()) throw ConfigError(source, at, "expected {client name: public key, key name or .pub file}");
      for (auto& [name, key] : value.items()) {
        if (name.empty() || name == "*") throw ConfigError(source, at, "a client name must not be empty or \"*\"");
        if (!key.is_string()) throw ConfigError(source, at + "/" + name, "expected a Z85 public key, a key name or a .pub file");
        o.clients[name] = key.get<std::string>();
      }
    } else if (field == "acl") {
      if (!value.is_array()) throw ConfigError(source, at, "expected a list of rules {items, get, set, subscribe}");
      for (std::size_t i = 0; i < value.size(); ++i) {
        const Json& r = value[i];
        const std::string rat = at + "/" + std::to_string(i);
        if (!r.is_object()) throw ConfigError(source, rat, "expected a rule {items, get, set, subscribe}");
        AclRule rule;
        for (auto& [rf, rv] : r.items()) {
          if (rf == "items") {
            if (!rv.is_string() || rv.get<std::string>().empty())
              throw ConfigError(source, rat + "/items", "expected an item pattern such as \"*\" or \"setpoint\"");
            rule.items = rv.get<std::string>();
          } else if (rf == "get") {
            rule.get = name_list(rv, source, rat + "/get");
          } else if (rf == "set") {
            rule.set = name_list(rv, source, rat + "/set");
          } else if (rf == "subscribe") {
            rule.subscribe = name_list(rv, source, rat + "/subscribe");
          } else {
            throw ConfigError(source, rat + "/" + rf, "unknown field; a rule has items, get, set and subscribe");
          }
        }
        o.acl.push_back(std::move(rule));
      }
    } else {
      throw ConfigError(source, at, "unknown field; the security section has curve, server_key, clients and acl");
    }
  }
  return o;
}

namespace security {

const char* action_name(Action action) {
  switch (action) {
    case Action::get: return "GET";
    case Action::set: return "SET";
    case Action::subscribe: return "subscribe to";
  }
  return "?";
}

Policy::Policy(const SecurityOptions& options, std::string store, const std::string& home, const std::string& source)
    : store_(lower(std::move(store))) {
  const std::string base = "/security";
  if (!options.curve) {
    if (!options.clients.empty() || !options.acl.empty())
      throw ConfigError(source, base + "/curve",
                        "clients and acl need \"curve\": true (without CURVE no client is authenticated)");
    throw ConfigError(source, base + "/curve", "security is off");
  }
  if (!curve_available())
    throw ConfigError(source, base + "/curve", "this ZeroMQ library has no CURVE support (built without libsodium)");
  if (options.server_key.empty())
    throw ConfigError(source, base + "/server_key", "CURVE needs the daemon's key pair (make one with: mk keygen NAME)");
  try {
    server_ = KeyPair::load(options.server_key, home);
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError(source, base + "/server_key", e.type() + ": " + e.what());
  }
  if (options.clients.empty())
    throw ConfigError(source, base + "/clients", "CURVE is on but no client is listed: nobody could connect");
  for (auto& [name, key] : options.clients) {
    std::string z85;
    try {
      z85 = load_public_key(key, home);
    } catch (const Error& e) {
      throw ConfigError(source, base + "/clients/" + name, e.what());
    }
    auto [it, fresh] = names_.emplace(binary_key(z85), name);
    if (!fresh)
      throw ConfigError(source, base + "/clients/" + name, "the same public key as client '" + it->second + "'");
  }
  std::set<std::string> known;
  for (auto& [name, key] : options.clients) known.insert(name);
  for (std::size_t i = 0; i < options.acl.size(); ++i) {
    const AclRule& r = options.acl[i];
    Rule rule;
    rule.pattern = lower(r.items);
    rule.qualified = rule.pattern.find('.') != std::string::npos;
    const std::vector<std::string>* lists[3] = {&r.get, &r.set, &r.subscribe};
    const char* fields[3] = {"get", "set", "subscribe"};
    for (int a = 0; a < 3; ++a) {
      for (auto& name : *lists[a])
        if (name != "*" && !known.count(name))
          throw ConfigError(source, base + "/acl/" + std::to_string(i) + "/" + fields[a],
                            "'" + name + "' is not a client listed in /security/clients");
      rule.lists[a] = *lists[a];
    }
    rules_.push_back(std::move(rule));
  }
}

const std::string* Policy::client_name(std::string_view binary_public_key) const {
  auto it = names_.find(std::string(binary_public_key));
  return it == names_.end() ? nullptr : &it->second;
}

bool Policy::may_subscribe_anything(const std::string& name) const {
  if (rules_.empty()) return true;
  for (auto& rule : rules_) {
    auto& list = rule.lists[static_cast<int>(Action::subscribe)];
    if (std::find(list.begin(), list.end(), "*") != list.end() || std::find(list.begin(), list.end(), name) != list.end())
      return true;
  }
  return false;
}

bool Policy::allows(const std::string& name, Action action, std::string_view raw_target) const {
  std::string target = lower(std::string(raw_target));
  auto dot = target.find('.');
  std::string key = dot == std::string::npos ? target : target.substr(dot + 1);
  // The catalog's special targets: how a client learns what it may ask.
  if (action == Action::get && (key == "_hash" || key == "_catalog" || target == "_hash")) return true;
  if (rules_.empty()) return true;
  for (auto& rule : rules_) {
    const std::string& subject = rule.qualified ? target : key;
    if (::fnmatch(rule.pattern.c_str(), subject.c_str(), 0) != 0) continue;
    auto& list = rule.lists[static_cast<int>(action)];
    if (std::find(list.begin(), list.end(), "*") != list.end() || std::find(list.begin(), list.end(), name) != list.end())
      return true;
  }
  return false;
}

std::string Policy::refusal(const std::string& name, Action action, std::string_view target) const {
  return "client '" + name + "' may not " + action_name(action) + " " + std::string(target) +
         " (no rule of this daemon's security acl allows it)";
}

}  // namespace security
}  // namespace mktl
