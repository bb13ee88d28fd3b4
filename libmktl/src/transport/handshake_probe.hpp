// Whether a CURVE daemon answers at an address, for a peer that holds no key
// the daemon accepts (mkregistryd checking the daemons it knows).
#pragma once

#include <zmq.hpp>

#include <string>

namespace mktl::transport {

// Opens a CURVE connection to `endpoint` with a client key pair of this
// process's own (made at the first call; the daemon does not list it, and
// logs its refusal once a minute) and `server_key` (Z85), and watches its
// handshake for up to `timeout_s`.
// True when the handshake completes, or when the daemon refuses the client's
// key (ZAP): a libzmq server does that only after it decrypted the client's
// HELLO with the secret key that goes with `server_key`, so a daemon with
// that key is there. False when nothing listens, the server has another key
// or no CURVE, or nothing comes in time; also for a key or an endpoint that
// is not one (a block's fields come from the network): it never throws.
// Blocking; any thread.
bool curve_daemon_answers(zmq::context_t& context, const std::string& endpoint, const std::string& server_key,
                          double timeout_s);

}  // namespace mktl::transport
