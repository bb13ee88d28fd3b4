#include "transport/zmq_util.hpp"

#include <mktl/error.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace mktl::transport {

zmq::context_t& context() {
  // Leaked on purpose: sockets owned by static objects may outlive any
  // destruction order we could pick, and zmq_ctx_term would block on them.
  static zmq::context_t* ctx = [] {
    auto* c = new zmq::context_t(1);
    c->set(zmq::ctxopt::blocky, 0);
    return c;
  }();
  return *ctx;
}

std::string bind_spelling(std::string endpoint) {
  if (endpoint.size() > 2 && endpoint.compare(endpoint.size() - 2, 2, ":0") == 0)
    endpoint.replace(endpoint.size() - 1, 1, "*");
  return endpoint;
}

std::string bound_endpoint(zmq::socket_t& socket) {
  return socket.get(zmq::sockopt::last_endpoint);
}

int bound_port(zmq::socket_t& socket) {
  std::string ep = bound_endpoint(socket);
  auto colon = ep.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(ep.c_str() + colon + 1);
}

namespace {
constexpr std::size_t kShareThreshold = 8192;

void release_shared_string(void*, void* hint) { delete static_cast<std::shared_ptr<const std::string>*>(hint); }
void release_shared_owner(void*, void* hint) { delete static_cast<std::shared_ptr<const void>*>(hint); }
}  // namespace

zmq::message_t share_string(const std::shared_ptr<const std::string>& text) {
  if (!text) return zmq::message_t();
  if (text->size() < kShareThreshold) return zmq::message_t(text->data(), text->size());
  auto* hint = new std::shared_ptr<const std::string>(text);
  return zmq::message_t(const_cast<char*>(text->data()), text->size(), release_shared_string, hint);
}

zmq::message_t share_bulk(const Bulk& bulk) {
  auto bytes = bulk.bytes();
  if (bytes.size() < kShareThreshold || !bulk.owner()) return zmq::message_t(bytes.data(), bytes.size());
  auto* hint = new std::shared_ptr<const void>(bulk.owner());
  return zmq::message_t(const_cast<std::byte*>(bytes.data()), bytes.size(), release_shared_owner, hint);
}

Bulk adopt_bulk(zmq::message_t&& message) {
  // Small frames arrive at any offset inside ZeroMQ's receive buffer; a typed
  // view (Bulk::as<double>) needs its elements aligned to their size (8 bytes
  // at most for the dtypes we know), so those are copied into fresh memory.
  // Large frames have 8-byte-aligned buffers of their own and are not copied.
  if (message.size() == 0) return Bulk({}, {}, nullptr, nullptr, 0);
  if (reinterpret_cast<std::uintptr_t>(message.data()) % alignof(std::uint64_t) != 0) {
    auto copy = std::make_shared<std::vector<std::max_align_t>>(
        (message.size() + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t));
    std::memcpy(copy->data(), message.data(), message.size());
    auto* data = reinterpret_cast<const std::byte*>(copy->data());
    return Bulk({}, {}, std::move(copy), data, message.size());
  }
  auto holder = std::make_shared<zmq::message_t>(std::move(message));
  auto* data = static_cast<const std::byte*>(holder->data());
  std::size_t size = holder->size();
  return Bulk({}, {}, std::move(holder), data, size);
}

bool recv_multipart(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, std::size_t cap) {
  // Frames land in the messages the vector already holds (a receive releases
  // what a message held before), which spares creating, moving and closing a
  // message per frame: a busy socket receives into the same few every time.
  if (frames.empty()) frames.emplace_back();
  if (!socket.recv(frames[0], zmq::recv_flags::dontwait)) return false;
  std::size_t n = 1;
  bool more = frames[0].more();
  std::optional<zmq::message_t> dropped;  // frames past the cap, made only if there are any
  while (more) {
    if (n < cap && n == frames.size()) frames.emplace_back();
    zmq::message_t& into = n < cap ? frames[n++] : (dropped ? *dropped : dropped.emplace());
    (void)socket.recv(into, zmq::recv_flags::none);
    more = into.more();
  }
  frames.resize(n);
  return true;
}

zmq::socket_t monitor(zmq::context_t& context, zmq::socket_t& socket, int events) {
  // Each monitor needs an inproc address of its own, in the whole process.
  static std::atomic<std::uint64_t> next{0};
  const std::string address = "inproc://mktl-monitor-" + std::to_string(next.fetch_add(1));
  if (zmq_socket_monitor(socket.handle(), address.c_str(), events) != 0) throw zmq::error_t();
  zmq::socket_t pair(context, zmq::socket_type::pair);
  pair.set(zmq::sockopt::linger, 0);
  pair.connect(address);
  return pair;
}

Wakeup::Wakeup() {
  fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd_ < 0) throw RuntimeError(std::string("eventfd: ") + std::strerror(errno));
}

Wakeup::~Wakeup() {
  if (fd_ >= 0) ::close(fd_);
}

void Wakeup::notify() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

void Wakeup::drain() noexcept {
  std::uint64_t value;
  [[maybe_unused]] auto n = ::read(fd_, &value, sizeof value);
}

}  // namespace mktl::transport
