// CurveZMQ keys and a daemon's access rules (docs/security.md).
//
// Security is off unless a daemon's SecurityOptions say `curve = true`: plain
// mKTL clients, the Python reference among them, keep working unchanged
// against every daemon that does not ask for it.
//
//   mktl::KeyPair::generate().save("alice");      // $MKTL_HOME/keys/alice.key + .pub
//   mktl::ClientOptions o = mktl::ClientOptions::from_env();
//   o.key = "alice";                               // or $MKTL_KEY
//
// Threading promise: these are plain values and free functions; every
// function may be called from any thread.
#pragma once

#include <mktl/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace mktl {

// Whether the ZeroMQ library was built with CURVE (libsodium).
bool curve_available();

// A CURVE key pair in ZeroMQ's Z85 text form (40 characters each).
struct KeyPair {
  std::string public_key;
  std::string secret_key;

  // A fresh pair (zmq_curve_keypair). Throws RuntimeError without CURVE.
  static KeyPair generate();
  // Reads a secret key file and derives the public key from it.
  // `name_or_path` is a key name (NAME -> $MKTL_HOME/keys/NAME.key; `home`
  // empty = $MKTL_HOME or ~/.mKTL) or a path (anything with a '/'). A file
  // that group or others may read or write is refused (PermissionError naming
  // the path and `chmod 600`), as is a file that holds no valid key.
  static KeyPair load(const std::string& name_or_path, const std::string& home = {});
  // Writes NAME.key (mode 0600) and NAME.pub (0644), creating the directory
  // (0700) if needed. Refuses to replace an existing key file unless
  // `overwrite`. Returns the secret key file's path.
  std::string save(const std::string& name_or_path, const std::string& home = {}, bool overwrite = false) const;
};

// The secret key file a key name or path stands for ($MKTL_HOME/keys/NAME.key).
std::string secret_key_path(const std::string& name_or_path, const std::string& home = {});
// A public key given as Z85 text (40 characters), a .pub file path, or a key
// name (NAME -> $MKTL_HOME/keys/NAME.pub). Returns the Z85 text; throws
// ValueError when it is none of those.
std::string load_public_key(const std::string& key_or_file, const std::string& home = {});

// Who may do what on a daemon's items. `items` is a glob (fnmatch: *, ?, [..])
// matched against the key ("setpoint", "_disp1*"), or against "store.key"
// when it holds a '.'. The lists hold client names (keys of
// SecurityOptions::clients) or "*" for every known client.
struct AclRule {
  std::string items = "*";
  std::vector<std::string> get;
  std::vector<std::string> set;
  std::vector<std::string> subscribe;
};

// A daemon's security (DaemonOptions::security; markd reads it from the
// `security` section of --appconfig, or from --security FILE).
//
// With curve = true: both sockets are CurveZMQ servers with the key pair
// `server_key`; only the public keys listed in `clients` get through the ZAP
// handler (others, and plain-text peers, never complete the handshake, so
// their requests time out). Without ACL rules every listed client may GET,
// SET and subscribe. With rules, a request is allowed when a rule whose
// pattern matches the item lists the client (or "*") for its action; any
// other gets a REP error of type PermissionError. The catalog's special
// targets (_hash, STORE._hash, STORE._catalog) are open to every listed
// client. Subscriptions are checked per connection, not per item: a PUB
// socket cannot filter by peer, so a client with subscribe rights on any item
// receives every broadcast of the daemon, and one with none is refused at the
// connection (docs/security.md).
struct SecurityOptions {
  bool curve = false;
  // The daemon's key pair: a key name or a secret key file path (see KeyPair::load).
  std::string server_key;
  // Client name -> public key (Z85 text, a .pub file, or a key name).
  std::map<std::string, std::string> clients;
  std::vector<AclRule> acl;

  // Reads {"curve": true, "server_key": "...", "clients": {name: key},
  // "acl": [{"items": "pattern", "get": [...], "set": [...], "subscribe":
  // [...]}]}. Throws ConfigError naming `source` and the field.
  static SecurityOptions from_json(const Json& section, const std::string& source = {});
};

}  // namespace mktl
