#include "transport/server.hpp"
#include "common/thread_name.hpp"

#include "config/logger.hpp"
#include "security/zap.hpp"
#include "transport/subscriber_watch.hpp"
#include "transport/zmq_util.hpp"

#include <mktl/error.hpp>

#include <poll.h>

#include <zmq.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mktl::transport {

namespace {
const std::string kVersion(protocol::kVersion);
const std::string kRep = "REP";
const std::string kAck = "ACK";
}  // namespace

// What the I/O thread has to send, queued by any thread.
struct Outgoing {
  bool broadcast = false;
  std::string address;   // ROUTER identity, or the broadcast topic
  std::string id;
  std::string target;
  std::shared_ptr<const std::string> payload;
  std::optional<Bulk> bulk;
};

namespace {
std::uint64_t bytes_of(const Outgoing& out) {
  return out.address.size() + (out.payload ? out.payload->size() : 0) + (out.bulk ? out.bulk->bytes().size() : 0);
}
}  // namespace

// State a Reply may outlive the Server with.
struct ServerShared {
  std::mutex mutex;
  std::vector<Outgoing> queue;       // replies
  std::vector<Outgoing> broadcasts;  // in the order published
  // Broadcasts not sent yet (in `broadcasts` and the I/O thread's batch),
  // and their bytes: publishers wait while either is at its bound.
  std::size_t broadcasts_queued = 0;
  std::uint64_t broadcast_bytes = 0;
  std::size_t max_broadcasts = 10000;
  std::uint64_t max_broadcast_bytes = 64ull << 20;
  std::condition_variable room;
  std::size_t publishers_waiting = 0;
  // The I/O thread's own broadcasts took the queue past its bound: it reads
  // no requests (which could publish more) until it is below again.
  std::atomic<bool> over_bound{false};
  bool running = false;  // an I/O thread drains the queues, so a publisher may wait for it
  bool closed = false;
  Wakeup wakeup;
  std::thread::id io_thread;
  std::atomic<std::size_t> pending{0};  // Replies made by on_request and not yet answered

  void push_broadcast(Outgoing&& out) {
    const std::uint64_t bytes = bytes_of(out);
    bool was_empty, on_io;
    {
      std::unique_lock lock(mutex);
      on_io = std::this_thread::get_id() == io_thread;
      // One broadcast larger than the byte bound goes alone.
      auto full = [&] {
        return broadcasts_queued >= max_broadcasts ||
               (broadcasts_queued > 0 && broadcast_bytes + bytes > max_broadcast_bytes);
      };
      if (running && !on_io && !closed && full()) {
        ++publishers_waiting;
        room.wait(lock, [&] { return closed || !full(); });
        --publishers_waiting;
      }
      if (closed) return;
      was_empty = broadcasts.empty();
      broadcasts.push_back(std::move(out));
      ++broadcasts_queued;
      broadcast_bytes += bytes;
      if (on_io && (broadcasts_queued > max_broadcasts || broadcast_bytes > max_broadcast_bytes))
        over_bound.store(true, std::memory_order_relaxed);
    }
    if (was_empty && !on_io) wakeup.notify();
  }

  // The I/O thread sent `count` broadcasts of `bytes`. Call with `mutex` held.
  void sent_broadcasts(std::size_t count, std::uint64_t bytes) {
    broadcasts_queued -= count;
    broadcast_bytes -= bytes;
    over_bound.store(broadcasts_queued > max_broadcasts || broadcast_bytes > max_broadcast_bytes,
                     std::memory_order_relaxed);
    // Woken with a quarter of the room free, not for each broadcast sent.
    if (publishers_waiting > 0 &&
        (broadcasts_queued == 0 ||
         (broadcasts_queued <= max_broadcasts / 4 * 3 && broadcast_bytes <= max_broadcast_bytes / 4 * 3)))
      room.notify_all();
  }

  void push(Outgoing&& out) {
    bool was_empty;
    {
      std::lock_guard lock(mutex);
      if (closed) return;
      was_empty = queue.empty();
      queue.push_back(std::move(out));
    }
    // The I/O thread drains the queue after each burst of requests: waking
    // itself (a cached GET answered in dispatch) would cost a write and an
    // extra poll round per request.
    if (was_empty && std::this_thread::get_id() != io_thread) wakeup.notify();
  }
};

Reply& Reply::operator=(Reply&& other) noexcept {
  if (this != &other) {
    if (shared_) error("RuntimeError", "request dropped without an answer");
    shared_ = std::move(other.shared_);
    identity_ = std::move(other.identity_);
    id_ = std::move(other.id_);
    target_ = std::move(other.target_);
    wants_rep_ = other.wants_rep_;
  }
  return *this;
}

Reply::~Reply() {
  if (shared_) error("RuntimeError", "request dropped without an answer");
}

void Reply::send(std::string payload, std::optional<Bulk> bulk) {
  send_shared(std::make_shared<const std::string>(std::move(payload)), std::move(bulk));
}

void Reply::send_shared(std::shared_ptr<const std::string> payload, std::optional<Bulk> bulk) {
  auto shared = std::move(shared_);
  if (!shared) return;
  shared->pending.fetch_sub(1, std::memory_order_relaxed);
  if (!wants_rep_) return;
  Outgoing out;
  out.address = std::move(identity_);
  out.id = std::move(id_);
  out.target = std::move(target_);
  out.payload = std::move(payload);
  out.bulk = std::move(bulk);
  shared->push(std::move(out));
}

void Reply::error(std::string_view type, std::string_view text) {
  if (!shared_) return;
  send(protocol::error_payload(type, text));
}

struct Server::Impl {
  using Clock = std::chrono::steady_clock;
  enum class Flow { idle, more, blocked };  // what drain_queue left: nothing, more to send now, a full queue to wait for

  ServerOptions options;
  Dispatch dispatch;
  std::shared_ptr<ServerShared> shared = std::make_shared<ServerShared>();
  zmq::socket_t router;
  zmq::socket_t pub;
  std::unique_ptr<security::ZapDomain> rep_zap, pub_zap;  // with options.security
  std::string rep_endpoint, pub_endpoint;
  int rep_port = 0, pub_port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<bool> receiving{true};
  std::jthread thread;
  std::shared_ptr<spdlog::logger> log = logger("mktl.transport");
  std::uint64_t malformed = 0;
  std::atomic<std::uint64_t> dropped{0};  // broadcasts dropped, once per subscriber that missed one
  std::uint64_t oversized = 0;
  // One rate limit per log site a peer can hit at will (a fuzzer sent 16,000
  // malformed frames and got 16,000 warnings): config/logger.hpp.
  LogLimit send_failed_log{log, spdlog::level::warn};
  LogLimit no_id_log{log, spdlog::level::warn};
  LogLimit malformed_log{log, spdlog::level::info};
  LogLimit bad_type_log{log, spdlog::level::info};
  LogLimit dispatch_failed_log{log, spdlog::level::err};
  LogLimit receive_failed_log{log, spdlog::level::warn};
  LogLimit dropped_log{log, spdlog::level::warn};
  LogLimit oversized_log{log, spdlog::level::warn};
  LogLimit busy_log{log, spdlog::level::warn};  // requests refused at max_pending
  std::vector<Outgoing> batch;  // drain_replies', swapped with shared->queue
  std::size_t batch_sent = 0;   // how much of `batch` has gone out
  std::vector<Outgoing> broadcast_batch;  // drain_broadcasts', swapped with shared->broadcasts
  std::size_t broadcast_sent = 0;
  // Flow control of broadcasts (send_broadcast, may_drop): the publish
  // socket's connections, from its monitor's events.
  zmq::socket_t monitor;
  std::unique_ptr<SubscriberWatch> watch;
  std::optional<Clock::time_point> blocked_since;  // the first of broadcast_batch waits for a full queue
  Clock::time_point last_sample{};
  SubscriberWatch::Census census;
  std::optional<Clock::time_point> quiet_since;  // in this wait, no connection busy in any sample since
  bool closing = false;   // stopping: nothing waits any more
  // The topic prefixes some subscriber holds, as the XPUB hands them up (the
  // first subscription to a prefix, the last unsubscription), and, per topic
  // published, whether one of them matches (valid for one generation of
  // `subscribed`): a broadcast nobody subscribes to is not sent at all.
  std::unordered_map<std::string, int> subscribed;
  std::uint64_t subscribed_generation = 0;
  struct Wanted {
    std::uint64_t generation = 0;
    bool wanted = false;
  };
  std::unordered_map<std::string, Wanted> wanted_topics;
  std::vector<std::vector<std::string>>* captured = nullptr;  // exchange(): frames go here, not to the ROUTER
  // Uses of the ROUTER other than run()'s reads (sends, asks for its events),
  // so that run() knows to read it again without its fd firing: such a use
  // can take in the notification the fd would otherwise show.
  std::uint64_t router_uses = 0;

  void run();
  void on_request(std::vector<zmq::message_t>& frames);
  void send_out(Outgoing& out);
  bool send_broadcast(Outgoing& out);
  bool may_drop(const Outgoing& out);
  bool read_connection_events();  // true: stopped at its bound, more may wait
  bool requests_waiting();
  Clock::duration sample_every() const;
  bool drain_subscriptions();  // true: stopped at its bound, more may wait
  bool wanted(const std::string& topic);
  void send_frames(const std::string& identity, std::initializer_list<std::string_view> frames);
  void refuse_oversized(const std::string& identity, std::vector<zmq::message_t>& frames, std::uint64_t bytes);
  Flow drain_queue();
  bool drain_replies();
  Flow drain_broadcasts();
};

Server::Server(ServerOptions options, Dispatch dispatch) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->dispatch = std::move(dispatch);
}

Server::~Server() { stop(); }

void Server::start() {
  auto& I = *impl_;
  try {
    I.router = zmq::socket_t(context(), zmq::socket_type::router);
    I.router.set(zmq::sockopt::linger, 1000);
    I.router.set(zmq::sockopt::sndhwm, 100000);
    I.router.set(zmq::sockopt::rcvhwm, 100000);
    if (const auto cap = I.options.max_request_bytes; cap > 0 && cap < (std::uint64_t{1} << 61))
      I.router.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(2 * cap + (1u << 20)));
    if (I.options.security) {
      I.rep_zap = std::make_unique<security::ZapDomain>(context(), I.options.security, security::SocketRole::requests);
      I.rep_zap->secure(I.router);
    }
    I.router.bind(bind_spelling(I.options.rep_endpoint));
    I.rep_endpoint = bound_endpoint(I.router);
    I.rep_port = bound_port(I.router);
    if (!I.options.pub_endpoint.empty()) {
      // XPUB with NODROP: a subscriber's full queue makes the send fail
      // (EAGAIN) instead of dropping the broadcast for it unseen, so that
      // drops are counted and logged (send_broadcast). To SUB peers it is
      // the same as PUB.
      I.pub = zmq::socket_t(context(), zmq::socket_type::xpub);
      I.pub.set(zmq::sockopt::xpub_nodrop, 1);
      I.pub.set(zmq::sockopt::linger, 1000);
      I.pub.set(zmq::sockopt::sndhwm, I.options.pub_hwm);
      if (I.options.security) {
        I.pub_zap = std::make_unique<security::ZapDomain>(context(), I.options.security, security::SocketRole::broadcasts);
        I.pub_zap->secure(I.pub);
      }
      // Each connection's fd, from before the first one is accepted: when a
      // send meets a full queue, the kernel tells whose (SubscriberWatch).
      I.monitor = monitor(context(), I.pub, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED);
      I.watch = std::make_unique<SubscriberWatch>(I.options.subscriber_grace);
      I.pub.bind(bind_spelling(I.options.pub_endpoint));
      I.pub_endpoint = bound_endpoint(I.pub);
      I.pub_port = bound_port(I.pub);
    }
  } catch (const zmq::error_t& e) {
    throw RuntimeError("cannot bind " + I.options.rep_endpoint + " / " + I.options.pub_endpoint + ": " + e.what());
  }
  {
    std::lock_guard lock(I.shared->mutex);
    I.shared->max_broadcasts = std::max<std::size_t>(I.options.pub_queue, 1);
    I.shared->max_broadcast_bytes = std::max<std::uint64_t>(I.options.pub_queue_bytes, 1);
    I.shared->running = true;
  }
  I.thread = std::jthread([&I] { I.run(); });
}

void Server::stop_receiving() {
  impl_->receiving = false;
  impl_->shared->wakeup.notify();
}

void Server::stop() {
  auto& I = *impl_;
  if (!I.thread.joinable()) return;
  I.stopping = true;
  I.shared->wakeup.notify();
  I.thread.join();
}

std::string Server::rep_endpoint() const { return impl_->rep_endpoint; }
std::uint64_t Server::broadcasts_dropped() const { return impl_->dropped.load(); }
std::string Server::pub_endpoint() const { return impl_->pub_endpoint; }
int Server::rep_port() const { return impl_->rep_port; }
int Server::pub_port() const { return impl_->pub_port; }

void Server::publish(std::string topic, std::shared_ptr<const std::string> payload, std::optional<Bulk> bulk) {
  Outgoing out;
  out.broadcast = true;
  out.address = std::move(topic);
  out.payload = std::move(payload);
  out.bulk = std::move(bulk);
  impl_->shared->push_broadcast(std::move(out));
}

std::vector<std::vector<std::string>> Server::exchange(std::vector<std::string> frames,
                                                     const std::function<void()>& settle) {
  auto& I = *impl_;
  if (I.thread.joinable()) throw RuntimeError("Server::exchange needs a server that was not started");
  std::vector<std::vector<std::string>> sent;
  I.captured = &sent;
  struct Release {
    Impl& impl;
    ~Release() { impl.captured = nullptr; }
  } release{I};
  std::vector<zmq::message_t> messages;
  // recv_multipart keeps at most 16 frames of a message: so does this.
  for (std::size_t i = 0; i < frames.size() && i < 16; ++i) messages.emplace_back(frames[i].data(), frames[i].size());
  I.on_request(messages);
  if (settle) settle();
  while (I.drain_queue() != Impl::Flow::idle) {
  }
  return sent;
}

void Server::Impl::send_frames(const std::string& identity, std::initializer_list<std::string_view> frames) {
  if (captured) {
    auto& sent = captured->emplace_back(1, identity);
    sent.insert(sent.end(), frames.begin(), frames.end());
    return;
  }
  ++router_uses;
  try {
    router.send(zmq::buffer(identity), zmq::send_flags::sndmore);
    std::size_t i = 0, n = frames.size();
    for (auto f : frames) router.send(zmq::buffer(f), ++i < n ? zmq::send_flags::sndmore : zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    send_failed_log("send failed: {}", e.what());
  }
}

// A reply.
void Server::Impl::send_out(Outgoing& out) {
  if (captured) {
    captured->push_back({out.address, kVersion, out.id, kRep, out.target, std::string(), *out.payload});
    if (out.bulk) {
      auto bytes = out.bulk->bytes();
      captured->back().emplace_back(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    return;
  }
  ++router_uses;
  try {
    bool more = out.bulk.has_value();
    router.send(zmq::buffer(out.address), zmq::send_flags::sndmore);
    router.send(zmq::buffer(kVersion), zmq::send_flags::sndmore);
    router.send(zmq::buffer(out.id), zmq::send_flags::sndmore);
    router.send(zmq::buffer(kRep), zmq::send_flags::sndmore);
    router.send(zmq::buffer(out.target), zmq::send_flags::sndmore);
    router.send(zmq::message_t(), zmq::send_flags::sndmore);
    router.send(share_string(out.payload), more ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (more) router.send(share_bulk(*out.bulk), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    send_failed_log("send failed: {}", e.what());
  }
}

// With NODROP set, a send fails with EAGAIN when a subscriber of the topic
// has a full queue, and nothing is sent: the broadcast stays queued (false)
// and is tried again on the next turn of the I/O loop, unless may_drop()
// finds it should go now. Then it is sent without NODROP: ZeroMQ delivers it
// to every other subscriber, drops it for each full queue, and sets those
// queues aside until their readers have taken half of them. A message's
// later frames never meet a full queue (queues count whole messages), but
// are handled the same way. Nothing here runs unless a send fails, so a
// burst that meets no full queue costs what it did without flow control.
bool Server::Impl::send_broadcast(Outgoing& out) {
  if (captured || !pub) return true;  // exchange(): no subscribers
  if (!wanted(out.address)) return true;
  bool lossy = false;
  struct Restore {
    zmq::socket_t& pub;
    const bool& lossy;
    ~Restore() {
      try {
        if (lossy) pub.set(zmq::sockopt::xpub_nodrop, 1);
      } catch (const zmq::error_t&) {  // the socket is closing
      }
    }
  } restore{pub, lossy};
  try {
    // A send that fails leaves its message intact, to be sent again.
    auto send = [&](zmq::message_t& frame, zmq::send_flags flags) {
      if (!lossy) {
        if (pub.send(frame, flags | zmq::send_flags::dontwait)) return;
        lossy = true;
        const auto count = dropped.fetch_add(1, std::memory_order_relaxed) + 1;
        dropped_log("a subscriber's queue filled in the middle of a broadcast, which is dropped for it (topic {}; {} "
                    "since start)",
                    out.address, thousands(count));
        pub.set(zmq::sockopt::xpub_nodrop, 0);
      }
      pub.send(frame, flags);  // without NODROP a PUB send never blocks
    };
    const bool more = out.bulk.has_value();
    zmq::message_t topic(out.address.data(), out.address.size());
    if (!pub.send(topic, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      if (!may_drop(out)) return false;
      lossy = true;
      pub.set(zmq::sockopt::xpub_nodrop, 0);
      pub.send(topic, zmq::send_flags::sndmore);
    } else {
      blocked_since.reset();  // it waited, if it did, until the full queues took more
      // Set aside by ZeroMQ, a stalled subscriber's queue takes nothing.
      if (watch && watch->stalled() > 0) dropped.fetch_add(watch->missing(out.address), std::memory_order_relaxed);
    }
    zmq::message_t version(kVersion.data(), kVersion.size());
    zmq::message_t payload = share_string(out.payload);  // zero-copy
    send(version, zmq::send_flags::sndmore);
    send(payload, more ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (more) {
      zmq::message_t bulk = share_bulk(*out.bulk);
      send(bulk, zmq::send_flags::none);
    }
  } catch (const zmq::error_t& e) {
    send_failed_log("broadcast failed: {}", e.what());
  }
  return true;
}

Server::Impl::Clock::duration Server::Impl::sample_every() const {
  return std::clamp<Clock::duration>(options.subscriber_grace / 20, std::chrono::milliseconds(1),
                                     std::chrono::milliseconds(20));
}

// `out` met a full queue. It is dropped for the full queues (true) when the
// connections that have bytes waiting in the kernel and took none for
// subscriber_grace are the only ones with much waiting, in every sample for
// a quarter of the grace (at least two samples), nothing sent meanwhile: a
// live subscriber's pipe has drained into the kernel by then, so it has
// room, unless ZeroMQ's I/O thread got no CPU for that long. Or when it has
// waited ten times subscriber_grace. Else it waits (false), and the
// subscribers drain.
bool Server::Impl::may_drop(const Outgoing& out) {
  const auto now = Clock::now();
  if (closing) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!blocked_since) {
    blocked_since = now;
    quiet_since.reset();
    census = {};
    last_sample = {};
  }
  if (watch && now - last_sample >= sample_every()) {
    last_sample = now;
    census = watch->sample(now);
    if (census.busy > 0)
      quiet_since.reset();
    else if (!quiet_since)
      quiet_since = now;
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - *blocked_since);
  const auto quiet_enough = std::max<Clock::duration>(options.subscriber_grace / 4, 2 * sample_every());
  std::uint64_t missed = 0;
  if (census.stalled > 0 && quiet_since && now - *quiet_since >= quiet_enough) {
    missed = watch->missed(out.address);
    const auto count = dropped.fetch_add(missed, std::memory_order_relaxed) + missed;
    dropped_log("{} subscriber(s) took no broadcasts for {} ms while their queues were full: broadcasts are dropped "
                "for them until they read again (topic {}; {} since start)",
                missed, std::chrono::duration_cast<std::chrono::milliseconds>(options.subscriber_grace).count(),
                out.address, thousands(count));
  } else if (waited >= 10 * options.subscriber_grace) {
    missed = std::max<std::uint64_t>(1, watch ? watch->missed(out.address) : 0);
    const auto count = dropped.fetch_add(missed, std::memory_order_relaxed) + missed;
    dropped_log("a subscriber is not keeping up: its queue of {} broadcasts stayed full for {} ms, so a broadcast is "
                "dropped for it (topic {}; {} since start)",
                options.pub_hwm, waited.count(), out.address, thousands(count));
  } else {
    return false;
  }
  blocked_since.reset();
  return true;
}

// The publish socket's monitor: connections accepted and gone.
bool Server::Impl::read_connection_events() {
  if (!monitor) return false;
  zmq::message_t head, address;
  for (int i = 0; i < 1024; ++i) {
    try {
      if (!monitor.recv(head, zmq::recv_flags::dontwait)) return false;
      while (head.more() && monitor.recv(address, zmq::recv_flags::none) && address.more()) {
      }
    } catch (const zmq::error_t& e) {
      receive_failed_log("receive of connection events failed: {}", e.what());
      return false;
    }
    std::uint16_t event = 0;
    std::uint32_t fd = 0;
    if (head.size() < sizeof event + sizeof fd) continue;
    std::memcpy(&event, head.data(), sizeof event);
    std::memcpy(&fd, static_cast<const char*>(head.data()) + sizeof event, sizeof fd);
    if (event == ZMQ_EVENT_ACCEPTED)
      watch->accepted(static_cast<int>(fd));
    else
      watch->gone(static_cast<int>(fd));
  }
  return true;
}

// An XPUB hands up each new subscription and unsubscription as a message
// (byte 1 or 0, then the prefix): unread, they would pile up in the socket.
// Read, they tell which broadcasts someone wants (wanted()).
bool Server::Impl::drain_subscriptions() {
  zmq::message_t message;
  for (int i = 0; i < 1024; ++i) {
    try {
      if (!pub.recv(message, zmq::recv_flags::dontwait)) return false;
    } catch (const zmq::error_t& e) {
      receive_failed_log("receive of subscriptions failed: {}", e.what());
      return false;
    }
    const auto* data = static_cast<const char*>(message.data());
    if (message.size() < 1 || (data[0] != 0 && data[0] != 1)) continue;  // not a subscription
    std::string prefix(data + 1, message.size() - 1);
    if (data[0] == 1) {
      ++subscribed[prefix];
    } else if (auto it = subscribed.find(prefix); it != subscribed.end() && --it->second <= 0) {
      subscribed.erase(it);
    }
    ++subscribed_generation;
  }
  return true;
}

// Whether some subscriber's prefix matches `topic`.
bool Server::Impl::wanted(const std::string& topic) {
  if (subscribed.empty()) return false;
  if (wanted_topics.size() >= 65536) wanted_topics.clear();  // topics of collection rows can be many
  Wanted& w = wanted_topics[topic];
  if (w.generation != subscribed_generation) {  // generations start at 1: a new entry is computed
    w.generation = subscribed_generation;
    w.wanted = std::any_of(subscribed.begin(), subscribed.end(),
                           [&](const auto& s) { return topic.compare(0, s.first.size(), s.first) == 0; });
  }
  return w.wanted;
}

bool Server::Impl::requests_waiting() {
  if (captured || closing || !receiving) return false;
  ++router_uses;
  try {
    return (router.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
  } catch (const zmq::error_t&) {
    return false;
  }
}

// Replies first, then broadcasts.
Server::Impl::Flow Server::Impl::drain_queue() {
  const bool replies_left = drain_replies();
  const Flow broadcasts = drain_broadcasts();
  return replies_left ? Flow::more : broadcasts;
}

// Sends at most kSendTurn of the replies other threads queued, so that
// requests are read between turns. True while more wait.
bool Server::Impl::drain_replies() {
  constexpr std::size_t kSendTurn = 1024;
  std::size_t budget = kSendTurn;
  while (true) {
    if (batch_sent == batch.size()) {
      batch.clear();  // both vectors keep their capacity: no allocation per burst
      batch_sent = 0;
      {
        std::lock_guard lock(shared->mutex);
        batch.swap(shared->queue);
      }
      // Empty now, so the next push wakes the I/O thread again.
      if (batch.empty()) return false;
    }
    if (budget == 0) return true;
    const std::size_t end = std::min(batch.size(), batch_sent + budget);
    budget -= end - batch_sent;
    for (; batch_sent < end; ++batch_sent) send_out(batch[batch_sent]);
  }
}

// Sends queued broadcasts, at most kSendTurn, and stops early when a request
// is waiting (looked at every kLook broadcasts) or a subscriber's queue is
// full (Flow::blocked: the first one unsent waits for the next turn), so that
// a flood of broadcasts (an item published in a tight loop) never keeps a
// GET waiting for more than a few dozen broadcasts.
Server::Impl::Flow Server::Impl::drain_broadcasts() {
  constexpr std::size_t kSendTurn = 1024, kLook = 32;
  if (watch && watch->stalled() > 0 && !blocked_since) {
    // Are they still stalled? Broadcasts are counted as missed while they are.
    const auto now = Clock::now();
    if (now - last_sample >= sample_every()) {
      last_sample = now;
      census = watch->sample(now);
    }
  }
  std::size_t sent = 0, released = 0;
  std::uint64_t released_bytes = 0;
  Flow flow = Flow::more;
  while (true) {
    if (broadcast_sent == broadcast_batch.size()) {
      broadcast_batch.clear();
      broadcast_sent = 0;
      {
        std::lock_guard lock(shared->mutex);
        shared->sent_broadcasts(released, released_bytes);
        broadcast_batch.swap(shared->broadcasts);
      }
      released = 0;
      released_bytes = 0;
      if (broadcast_batch.empty()) {
        flow = Flow::idle;
        break;
      }
      // Subscriptions that came meanwhile, before deciding who wants these.
      if (pub && !captured) drain_subscriptions();
    }
    if (sent == kSendTurn) break;
    Outgoing& out = broadcast_batch[broadcast_sent];
    if (!send_broadcast(out)) {
      flow = Flow::blocked;
      break;
    }
    ++broadcast_sent;
    ++sent;
    ++released;
    released_bytes += bytes_of(out);
    out.payload.reset();  // what ZeroMQ needs it holds itself
    out.bulk.reset();
    if (sent % kLook == 0 && requests_waiting()) break;
  }
  if (released > 0) {
    std::lock_guard lock(shared->mutex);
    shared->sent_broadcasts(released, released_bytes);
  }
  return flow;
}

// A request over max_request_bytes: an error REP when its id can be read,
// and its frames released now rather than at the next receive.
void Server::Impl::refuse_oversized(const std::string& identity, std::vector<zmq::message_t>& frames,
                                    std::uint64_t bytes) {
  ++oversized;
  std::array<std::string_view, 16> views;
  auto all = transport::views(frames, views, 1);
  // The header frames are enough: the payload and bulk are neither copied nor read.
  std::array<std::string_view, 16> header{};
  for (std::size_t i = 0; i < all.size() && i < header.size(); ++i) header[i] = i < 5 ? all[i] : std::string_view();
  auto decoded = protocol::decode(std::span<const std::string_view>(header.data(), all.size()));
  std::optional<std::string> id;
  std::string target;
  bool wants_rep = true;
  if (decoded.message) {
    id = decoded.message->id;
    target = decoded.message->target;
    wants_rep = decoded.message->wants_rep();
  } else if (decoded.error && decoded.error->id) {
    id = *decoded.error->id;
  }
  const std::string text = "request of " + thousands(bytes) + " bytes refused: this daemon takes requests of at most " +
                           thousands(options.max_request_bytes) + " bytes (max_request_bytes)";
  oversized_log("{}{}", text, id ? " (request " + *id + (target.empty() ? "" : " for " + target) + ")" : " (no readable id: not answered)");
  if (id && wants_rep)
    send_frames(identity, {kVersion, *id, kRep, target, std::string_view(), protocol::error_payload("ValueError", text)});
  for (auto& frame : frames) frame.rebuild();
}

void Server::Impl::on_request(std::vector<zmq::message_t>& frames) {
  if (frames.size() < 2) {
    ++malformed;
    no_id_log("dropped a request of {} frame(s): no identity and id", frames.size());
    return;
  }
  const std::string identity(view(frames[0]));
  if (options.max_request_bytes > 0) {
    std::uint64_t bytes = 0;
    for (std::size_t i = 1; i < frames.size(); ++i) bytes += frames[i].size();
    if (bytes > options.max_request_bytes) {
      refuse_oversized(identity, frames, bytes);
      return;
    }
  }
  std::array<std::string_view, 16> views;
  auto parts = transport::views(frames, views, 1);
  auto decoded = protocol::decode(parts);
  if (decoded.error) {
    ++malformed;
    auto& err = *decoded.error;
    if (err.id) {
      malformed_log("malformed request {}: {}", *err.id, err.text);
      std::string target = parts.size() > 3 ? std::string(parts[3]) : std::string();
      auto payload = protocol::error_payload("ValueError", "malformed request: " + err.text);
      send_frames(identity, {kVersion, *err.id, kRep, std::string_view(), std::string_view(), payload});
    } else {
      no_id_log("dropped a malformed request without a readable id: {}", err.text);
    }
    return;
  }
  auto& msg = *decoded.message;
  if (msg.type != protocol::MessageType::GET && msg.type != protocol::MessageType::SET) {
    bad_type_log("request {} has type {}: only GET and SET are requests", msg.id, protocol::type_name(msg.type));
    auto payload = protocol::error_payload("ValueError", "invalid request type: " + std::string(protocol::type_name(msg.type)));
    send_frames(identity, {kVersion, msg.id, kRep, msg.target, std::string_view(), payload});
    return;
  }
  if (msg.wants_ack())
    send_frames(identity, {kVersion, msg.id, kAck, std::string_view(), std::string_view(), std::string_view()});

  // Who asks is the key the CURVE handshake proved (the ZAP handler's User-Id
  // on every frame of the connection), never the payload's _user/_hostname.
  if (options.security) {
    const std::string user = security::user_of(frames[1]);
    const auto action = msg.type == protocol::MessageType::SET ? security::Action::set : security::Action::get;
    if (user.empty() || !options.security->allows(user, action, msg.target)) {
      std::string text = user.empty() ? "this request carries no authenticated client key"
                                       : options.security->refusal(user, action, msg.target);
      log->info("refused {} {}: {}", protocol::type_name(msg.type), msg.target, text);
      if (msg.wants_rep())
        send_frames(identity, {kVersion, msg.id, kRep, msg.target, std::string_view(),
                               protocol::error_payload("PermissionError", text)});
      return;
    }
    if (action == security::Action::set) log->debug("SET {} by client '{}'", msg.target, user);
  }

  Incoming in;
  in.type = msg.type;
  in.flags = msg.flags;
  if (msg.has_bulk) in.bulk = adopt_bulk(std::move(frames.back()));
  in.target = std::move(msg.target);
  in.payload = std::move(msg.payload);

  if (shared->pending.load(std::memory_order_relaxed) >= options.max_pending) {
    const std::string text = "the daemon is busy: " + thousands(options.max_pending) +
                             " requests are waiting to be served (max_pending); try again later";
    busy_log("{} {} refused: {}", protocol::type_name(in.type), in.target, text);
    if (msg.wants_rep()) {
      const std::string payload = protocol::error_payload("RuntimeError", text);
      send_frames(identity, {kVersion, msg.id, kRep, in.target, std::string_view(), payload});
    }
    return;
  }
  Reply reply;
  shared->pending.fetch_add(1, std::memory_order_relaxed);
  reply.shared_ = shared;
  reply.identity_ = identity;
  reply.id_ = std::move(msg.id);
  reply.target_ = in.target;
  reply.wants_rep_ = msg.wants_rep();
  try {
    dispatch(std::move(in), std::move(reply));
  } catch (const std::exception& e) {
    dispatch_failed_log("request dispatch failed: {}", e.what());
  }
}

void Server::Impl::run() {
  mktl::detail::name_this_thread("mktl-io");
  {
    std::lock_guard lock(shared->mutex);
    shared->io_thread = std::this_thread::get_id();
  }
  // Readiness without zmq_poll(). zmq_poll asks every ZeroMQ socket for its
  // events (ZMQ_EVENTS) before it blocks and again after, and each ask of a
  // socket with nothing new costs two system calls (ZeroMQ's fork check and
  // a zero-timeout poll of the socket's mailbox): with the ROUTER, the PUB
  // and the monitor, some 17 system calls each time this thread went idle
  // and woke, a cost that weighs where system calls are slow (a VM). Here
  // the thread blocks in one poll() on the sockets' ZMQ_FDs and the wakeup
  // fd, and reads a socket (which is how it asks) only when its fd fired,
  // or, for the ROUTER, when the thread has used it otherwise (a send, an
  // ask for its events) since it last found it empty: such a use can take
  // in the notification the fd would otherwise have carried. The PUB needs
  // no such read: the subscriptions it hands up are read before each batch
  // of broadcasts (drain_broadcasts), the only time they matter, and a full
  // subscriber queue is retried every 1 ms.
  const int router_fd = router.get(zmq::sockopt::fd);
  const int pub_fd = pub ? static_cast<int>(pub.get(zmq::sockopt::fd)) : -1;
  const int monitor_fd = monitor ? static_cast<int>(monitor.get(zmq::sockopt::fd)) : -1;
  bool ask_router = true, ask_pub = static_cast<bool>(pub), ask_monitor = static_cast<bool>(monitor);
  std::uint64_t router_seen = router_uses;
  auto note_uses = [&] {
    if (router_uses == router_seen) return;
    router_seen = router_uses;
    ask_router = true;
  };
  std::vector<zmq::message_t> frames;
  Flow flow = Flow::idle;
  while (true) {
    const bool reading = receiving && !shared->over_bound.load(std::memory_order_relaxed);
    if (flow != Flow::more && !(reading && ask_router) && !ask_pub && !ask_monitor) {
      // Nothing known to be waiting: block until an fd fires. A broadcast
      // waiting for a full queue is tried again soon: not at once (that
      // would spin), not only when something else happens.
      std::array<pollfd, 4> fds{};
      nfds_t n = 0;
      fds[n++] = {shared->wakeup.fd(), POLLIN, 0};
      const nfds_t at_router = reading ? n++ : 0, at_pub = pub ? n++ : 0, at_monitor = monitor ? n++ : 0;
      if (at_router) fds[at_router] = {router_fd, POLLIN, 0};
      if (at_pub) fds[at_pub] = {pub_fd, POLLIN, 0};
      if (at_monitor) fds[at_monitor] = {monitor_fd, POLLIN, 0};
      if (::poll(fds.data(), n, flow == Flow::blocked ? 1 : -1) < 0) {
        if (errno == EINTR) continue;
        log->error("poll failed: {}", std::strerror(errno));
        break;
      }
      if (fds[0].revents) shared->wakeup.drain();
      if (at_router && fds[at_router].revents) ask_router = true;
      if (at_pub && fds[at_pub].revents) ask_pub = true;
      if (at_monitor && fds[at_monitor].revents) ask_monitor = true;
    }
    if (ask_pub) ask_pub = drain_subscriptions();
    if (ask_monitor) ask_monitor = read_connection_events();
    flow = drain_queue();
    note_uses();
    if (stopping) break;
    if (!receiving || !reading || !ask_router) continue;
    // Take a bounded burst of requests, then give queued replies a turn.
    // The burst ends when the ROUTER is empty (so it need not be asked
    // again until its fd fires or it is sent on) or at its bound.
    ask_router = false;
    for (int burst = 0;; ++burst) {
      if (burst == 256 || shared->over_bound.load(std::memory_order_relaxed)) {
        ask_router = true;
        break;
      }
      try {
        if (!recv_multipart(router, frames)) break;
      } catch (const zmq::error_t& e) {
        receive_failed_log("receive failed: {}", e.what());
        break;  // its fd tells when to try again
      }
      on_request(frames);
      if (burst % 32 == 31) drain_replies();
    }
    router_seen = router_uses;  // the ACKs of the burst came before its last, empty, read
    flow = drain_queue();
    note_uses();
  }
  // Close: refuse further replies and broadcasts, send what is queued
  // (broadcasts without waiting for full queues), release waiting publishers.
  closing = true;
  {
    std::lock_guard lock(shared->mutex);
    shared->closed = true;
    shared->running = false;
  }
  shared->room.notify_all();
  while (drain_replies()) {
  }
  while (drain_broadcasts() != Flow::idle) {
  }
  router.close();
  if (pub) {
    zmq_socket_monitor(pub.handle(), nullptr, 0);
    pub.close();
  }
  if (monitor) monitor.close();
}

}  // namespace mktl::transport
