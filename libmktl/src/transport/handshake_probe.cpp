#include "transport/handshake_probe.hpp"

#include "transport/client_engine.hpp"

#include <mktl/security.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

namespace mktl::transport {

namespace {

bool probe(zmq::context_t& context, const std::string& endpoint, const std::string& server_key, double timeout_s) {
  // One key pair for the process: a daemon logs a refused key once a minute
  // per key and address, where a new pair every time would be logged at
  // every probe.
  static const KeyPair ours = KeyPair::generate();
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::curve_serverkey, server_key);
  socket.set(zmq::sockopt::curve_publickey, ours.public_key);
  socket.set(zmq::sockopt::curve_secretkey, ours.secret_key);
  socket.set(zmq::sockopt::reconnect_ivl, -1);  // one attempt
  zmq::socket_t events = monitor(
      context, socket, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | detail::kHandshakeFailed | ZMQ_EVENT_CLOSED | ZMQ_EVENT_DISCONNECTED);
  socket.connect(endpoint);

  bool answers = false;
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
  std::vector<zmq::message_t> frames;
  for (bool done = false; !done;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(left));
    while (auto event = detail::next_event(events, frames)) {
      if (event->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED || event->event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        answers = true;
        done = true;
        break;
      }
      if (event->event & (detail::kHandshakeFailed | ZMQ_EVENT_CLOSED | ZMQ_EVENT_DISCONNECTED)) {
        done = true;
        break;
      }
    }
  }
  zmq_socket_monitor(socket.handle(), nullptr, 0);
  return answers;
}

}  // namespace

bool curve_daemon_answers(zmq::context_t& context, const std::string& endpoint, const std::string& server_key,
                          double timeout_s) {
  if (!curve_available()) return false;
  try {
    return probe(context, endpoint, server_key, timeout_s);
  } catch (const zmq::error_t&) {  // a key that is no Z85 key, an endpoint that is no address
    return false;
  }
}

}  // namespace mktl::transport
