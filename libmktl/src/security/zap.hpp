// CurveZMQ on mktl's sockets (internal): the ZAP handler that decides which
// client keys a secured socket admits, and the socket options of both ends.
//
// One ZAP handler serves a ZeroMQ context (ZeroMQ looks for it at
// inproc://zeromq.zap.01 of the socket's context): a thread of its own,
// started with the first registration and kept for the life of the process,
// as the context is. Each secured socket gets a ZAP domain of its own, so
// that several daemons in one process (tests) each answer with their own
// policy. The handler admits the clients of the domain's policy (for a PUB
// socket, those with subscribe rights on some item) and gives ZeroMQ the
// client's configured name as the User-Id every message from it carries.
//
// Threading promise: registrations may be made and dropped from any thread.
#pragma once

#include "security/policy.hpp"

#include <zmq.hpp>

#include <memory>
#include <string>

namespace mktl::security {

enum class SocketRole { requests, broadcasts };

// A domain of the ZAP handler of `context`; unregistered on destruction
// (connections it admitted stay up; new ones to a dropped domain are refused).
class ZapDomain {
 public:
  ZapDomain(zmq::context_t& context, std::shared_ptr<const Policy> policy, SocketRole role);
  ~ZapDomain();
  ZapDomain(const ZapDomain&) = delete;
  ZapDomain& operator=(const ZapDomain&) = delete;
  const std::string& name() const noexcept { return name_; }
  // Makes `socket` a CURVE server with the policy's key pair, in this domain;
  // before it binds.
  void secure(zmq::socket_t& socket) const;

 private:
  std::string name_;
  std::shared_ptr<const Policy> policy_;
  zmq::context_t* context_ = nullptr;
};

// Makes `socket` a CURVE client of the server with public key `server_key`
// (Z85), before it connects.
void secure_client(zmq::socket_t& socket, const KeyPair& client, const std::string& server_key);

// The authenticated client name a received message carries (its User-Id), or
// empty when there is none.
std::string user_of(zmq::message_t& message);

}  // namespace mktl::security
