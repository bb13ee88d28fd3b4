// Small helpers shared by the transport's sockets (internal).
#pragma once

#include <mktl/bulk.hpp>

#include <zmq.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mktl::transport {

// The process-wide ZeroMQ context every mktl socket lives in.
zmq::context_t& context();

// "tcp://*:0" -> "tcp://*:*" (ZeroMQ's spelling of "any free port").
std::string bind_spelling(std::string endpoint);

// Port of a bound socket's last endpoint.
int bound_port(zmq::socket_t& socket);
std::string bound_endpoint(zmq::socket_t& socket);

// Starts a monitor of `socket` for `events` (ZMQ_EVENT_*) and returns the
// PAIR socket, in `context`, that receives them (read with
// detail::next_event). Stop it with zmq_socket_monitor(handle, nullptr, 0)
// before `socket` closes. Throws zmq::error_t.
zmq::socket_t monitor(zmq::context_t& context, zmq::socket_t& socket, int events);

// A message that shares a string (large payloads) or copies it (small ones,
// where copying is cheaper than the bookkeeping).
zmq::message_t share_string(const std::shared_ptr<const std::string>& text);
// A message over a bulk buffer, without copying it.
zmq::message_t share_bulk(const Bulk& bulk);
// A Bulk view on a received message, keeping the message alive.
Bulk adopt_bulk(zmq::message_t&& message);

inline std::string_view view(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}

// Receives one whole multipart message if one is waiting (false if none),
// into `frames`, whose messages it reuses (after false, what they hold is
// unspecified). Keeps at most `cap` frames and reads and drops
// the rest, so a hostile peer cannot make us hold an unbounded list; a message
// that long fails decoding anyway. Throws zmq::error_t.
bool recv_multipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, std::size_t cap = 16);

// The bytes of frames[first..], for the codec, in `out` (no allocation): at
// most out.size() of them.
template <std::size_t N>
std::span<const std::string_view> views(const std::vector<zmq::message_t>& frames, std::array<std::string_view, N>& out,
                                        std::size_t first = 0) {
  std::size_t n = 0;
  for (std::size_t i = first; i < frames.size() && n < N; ++i) out[n++] = view(frames[i]);
  return {out.data(), n};
}

// An eventfd that wakes a poll loop; write() is safe from any thread.
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  int fd() const noexcept { return fd_; }
  void notify() noexcept;
  void drain() noexcept;

 private:
  int fd_ = -1;
};

}  // namespace mktl::transport
