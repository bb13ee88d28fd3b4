// UDP discovery, wire-compatible with the reference: a caller sends
// "Aloha mKTL" (broadcast and/or to known hosts); every listener answers
// "E komo mai:<request port>" to the sender. Registries listen on 10103,
// daemons on 10111. Nothing else is exchanged: the caller then asks real
// questions over ZeroMQ.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace mktl::discovery {

inline constexpr std::string_view kCall = "Aloha mKTL";
inline constexpr std::string_view kAnswer = "E komo mai:";
inline constexpr int kDefaultDaemonPort = 10111;
inline constexpr int kDefaultRegistryPort = 10103;

// Where discovery datagrams go. The broadcast address must be configurable:
// tests use 127.255.255.255 so that nothing leaves the machine.
struct Config {
  std::string broadcast = "255.255.255.255";
  int daemon_port = kDefaultDaemonPort;
  int registry_port = kDefaultRegistryPort;
  // Registry hosts asked directly (in addition to the broadcast).
  std::vector<std::string> hosts;

  // Defaults, overridden by $MKTL_HOME/discovery.json
  // ({"broadcast": .., "daemon_port": .., "registry_port": ..}), overridden by
  // $MKTL_BROADCAST, $MKTL_DAEMON_PORT, $MKTL_REGISTRY_PORT. `hosts` comes from
  // $MKTL_HOME/client/registries (whitespace-separated, '#' starts a comment).
  // An empty mktl_home means $MKTL_HOME, else $HOME/.mKTL. Throws
  // mktl::ValueError on an unreadable discovery.json or a bad port number.
  static Config from_env(const std::string& mktl_home = {});
};

// True if a datagram, stripped of ASCII whitespace, is the discovery call.
bool is_call(std::string_view datagram) noexcept;
// The request port in an answer "E komo mai:<port>" (whitespace-stripped), or
// nullopt for anything else.
std::optional<int> parse_answer(std::string_view datagram) noexcept;

// Answers discovery calls on a UDP port with our request port, from its own
// thread. The port is shared (SO_REUSEADDR/SO_REUSEPORT) so that every daemon
// on a host can listen on 10111. Each sender (address:port) gets at most one
// answer per second. Anything other than the call is ignored.
//
// Threading promise: construction binds and starts the thread (throws
// mktl::RuntimeError if the port cannot be bound); stop() and the destructor
// join it and may be called from any thread but the responder's own.
class Responder {
 public:
  Responder(int port, int rep_port, const std::string& bind_address = "0.0.0.0");
  ~Responder();
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  void stop();
  int port() const noexcept;
  // Number of answers sent (for tests and logs).
  std::uint64_t answered() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Found {
  std::string address;   // the answering host's IPv4 address
  int rep_port = 0;
  friend bool operator==(const Found&, const Found&) = default;
};

// Sends the call to config.broadcast:port and to every config.hosts entry at
// `port`, and collects distinct answers until `timeout_s` has passed, or,
// with no broadcast address (broadcast off), until every host has answered.
// With first_only it returns as soon as an answer arrives (plus any that
// arrived with it). A stop requested on `stop` ends the wait at once, with the answers
// so far. Malformed answers are ignored. Throws mktl::RuntimeError only when
// no socket can be made; unresolvable hosts are logged and skipped.
std::vector<Found> call(const Config& config, int port, double timeout_s, bool first_only = false,
                        std::stop_token stop = {});

}  // namespace mktl::discovery
