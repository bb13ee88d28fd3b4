// DNS-SD (Avahi) publication and browsing of mKTL daemons, an optional
// companion to UDP discovery for networks where broadcasts do not travel.
// Service type `_mktl._tcp` on the daemon's request port, with TXT records
// store=, alias=, uuid=, pub=. Needs a running avahi-daemon (on the system
// D-Bus); no Avahi header leaks out of this module. The Avahi code itself is
// in libmktl_avahi.so, loaded on first use (avahi_module.hpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mktl::discovery {

inline constexpr const char* kServiceType = "_mktl._tcp";

// Publishes one daemon while it lives. The service name is "<store> <alias>";
// on a name collision Avahi's alternative name ("... #2") is used.
//
// Threading promise: Avahi callbacks run on a private Avahi thread; every
// method may be called from any thread. The constructor throws
// mktl::RuntimeError when avahi-daemon cannot be reached or the Avahi module
// cannot be loaded.
class AvahiPublisher {
 public:
  AvahiPublisher(const std::string& store, const std::string& alias, const std::string& uuid, int rep_port,
                 int pub_port);
  ~AvahiPublisher();
  AvahiPublisher(const AvahiPublisher&) = delete;
  AvahiPublisher& operator=(const AvahiPublisher&) = delete;

  // Waits until Avahi confirms the registration (true), reports a failure
  // (throws mktl::RuntimeError with Avahi's reason) or the timeout passes (false).
  bool wait_established(double timeout_s);
  // The name actually registered (it may differ after a collision).
  std::string name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct AvahiFound {
  std::string name;
  std::string host;      // the advertised host name (e.g. "vm.local")
  std::string address;   // resolved address, as text
  int port = 0;
  std::map<std::string, std::string> txt;
};

// Browses `_mktl._tcp` and resolves what it finds, until Avahi says it has
// reported everything it knows and every resolution is done, or `timeout_s`
// passes. Without a reachable avahi-daemon or a loadable Avahi module it logs
// a warning and returns nothing. Duplicates (one per interface and protocol)
// are folded.
std::vector<AvahiFound> avahi_browse(double timeout_s);

}  // namespace mktl::discovery
