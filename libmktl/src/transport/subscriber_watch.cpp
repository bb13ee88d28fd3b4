#include "transport/subscriber_watch.hpp"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace mktl::transport {

namespace {

// The peer address, to recognise the connection later: ZeroMQ closes the fd
// on its own thread, and the number may be reused before its event reaches us.
bool peer_of(int fd, sockaddr_storage& peer, socklen_t& len) {
  len = sizeof peer;
  return ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0;
}

}  // namespace

void SubscriberWatch::accepted(int fd) {
  gone(fd);  // an fd number we still held belonged to a connection that has closed
  Connection c;
  c.fd = fd;
  if (!peer_of(fd, c.peer, c.peer_len)) return;  // already closed
  c.tcp = c.peer.ss_family == AF_INET || c.peer.ss_family == AF_INET6;
  c.progress = Clock::now();
  connections_.push_back(std::move(c));
}

void SubscriberWatch::gone(int fd) {
  auto it = std::find_if(connections_.begin(), connections_.end(), [fd](const Connection& c) { return c.fd == fd; });
  if (it == connections_.end()) return;
  if (it->stalled) --stalled_;
  connections_.erase(it);
}

SubscriberWatch::Census SubscriberWatch::sample(Clock::time_point now) {
  Census census;
  stalled_ = 0;
  for (auto it = connections_.begin(); it != connections_.end();) {
    Connection& c = *it;
    sockaddr_storage peer{};
    socklen_t peer_len = 0;
    int waiting = 0;
    int sndbuf = 0;
    socklen_t sndbuf_len = sizeof sndbuf;
    if (!peer_of(c.fd, peer, peer_len) || peer_len != c.peer_len || std::memcmp(&peer, &c.peer, peer_len) != 0 ||
        ::ioctl(c.fd, SIOCOUTQ, &waiting) != 0 || ::getsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sndbuf_len) != 0) {
      // Closed, and its event not read yet; or the number now names another file.
      ++census.unknown;
      it = connections_.erase(it);
      continue;
    }
    const auto queued = static_cast<std::size_t>(std::max(waiting, 0));
    bool took;
    if (c.tcp) {
      tcp_info info{};
      socklen_t len = sizeof info;
      const bool known = ::getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
                         len >= offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked;
      took = known && info.tcpi_bytes_acked != c.taken;
      if (known) c.taken = info.tcpi_bytes_acked;
    } else {
      took = queued < c.waiting;  // a local socket: its queue shrinks as the peer reads
    }
    c.waiting = queued;
    if (took || queued == 0) c.progress = now;
    // Below an eighth of the send buffer the socket takes more writes, so
    // ZeroMQ's I/O thread has moved everything it had queued.
    const std::size_t low = std::max<std::size_t>(static_cast<std::size_t>(std::max(sndbuf, 0)) / 8, 4096);
    const bool was_stalled = c.stalled;
    c.stalled = queued > low && now - c.progress >= grace_;
    if (was_stalled && !c.stalled) c.missed.clear();  // it reads again
    if (c.stalled) {
      ++census.stalled;
      ++stalled_;
    } else if (queued > low) {
      ++census.busy;
    } else {
      ++census.quiet;
    }
    ++it;
  }
  return census;
}

std::size_t SubscriberWatch::missed(const std::string& topic) {
  std::size_t n = 0;
  for (auto& c : connections_) {
    if (!c.stalled) continue;
    ++n;
    if (c.missed.size() < kMaxTopics) c.missed.insert(topic);
  }
  return n;
}

std::size_t SubscriberWatch::missing(const std::string& topic) const {
  std::size_t n = 0;
  for (auto& c : connections_)
    if (c.stalled && c.missed.count(topic)) ++n;
  return n;
}

}  // namespace mktl::transport
