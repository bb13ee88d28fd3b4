// The publish socket's connections as the kernel sees them (internal to the
// Server's I/O thread, which alone calls it).
//
// With NODROP, ZeroMQ refuses a broadcast when some matching subscriber's
// queue is full, but does not say whose. The kernel knows, per connection,
// how many bytes wait to be sent (SIOCOUTQ) and how many the peer has taken
// (TCP_INFO's bytes_acked): a subscriber that reads keeps taking bytes; one
// that stopped leaves its send queue full and takes nothing. A ZeroMQ queue
// can only be full while its connection's kernel queue is (ZeroMQ's I/O
// thread moves messages to the kernel whenever it takes more), so a
// connection with little waiting in the kernel has room in ZeroMQ too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include <sys/socket.h>

namespace mktl::transport {

class SubscriberWatch {
 public:
  using Clock = std::chrono::steady_clock;

  // `grace`: how long a connection may take nothing, with bytes waiting,
  // before it counts as stalled.
  explicit SubscriberWatch(Clock::duration grace) : grace_(grace) {}

  // A connection accepted on the publish socket (ZMQ_EVENT_ACCEPTED's fd),
  // and one that is gone (ZMQ_EVENT_DISCONNECTED or ZMQ_EVENT_CLOSED).
  void accepted(int fd);
  void gone(int fd);

  struct Census {
    std::size_t stalled = 0;  // bytes waiting, none taken for `grace`
    std::size_t busy = 0;     // taking bytes, but with more than a low mark waiting: its ZeroMQ queue may be full
    std::size_t quiet = 0;    // little or nothing waiting
    std::size_t unknown = 0;  // not readable as a socket any more (gone before its event came)
  };
  // Reads every connection's queue and progress now.
  Census sample(Clock::time_point now);

  // A broadcast on `topic` was sent without NODROP while connections were
  // stalled: each of them missed it (its ZeroMQ queue was full). Returns how
  // many; they are taken to miss later broadcasts on the topic as well while
  // they stay stalled (ZeroMQ sets a full queue aside until its reader has
  // taken half of it).
  std::size_t missed(const std::string& topic);
  // Stalled connections known to miss `topic` (see missed()).
  std::size_t missing(const std::string& topic) const;

  std::size_t stalled() const { return stalled_; }
  std::size_t size() const { return connections_.size(); }

 private:
  struct Connection {
    int fd = -1;
    sockaddr_storage peer{};  // to tell a reused fd from ours
    socklen_t peer_len = 0;
    bool tcp = false;
    std::uint64_t taken = 0;   // TCP: bytes acknowledged; else the last queue length seen
    std::size_t waiting = 0;   // bytes in the kernel's send queue at the last sample
    Clock::time_point progress{};  // last time it took bytes or had nothing waiting
    bool stalled = false;
    std::unordered_set<std::string> missed;  // topics it missed while stalled (at most kMaxTopics)
  };
  static constexpr std::size_t kMaxTopics = 1024;

  Clock::duration grace_;
  std::vector<Connection> connections_;  // few: scanned in order
  std::size_t stalled_ = 0;
};

}  // namespace mktl::transport
