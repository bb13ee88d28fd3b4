#include "transport/client_engine.hpp"
#include "common/thread_name.hpp"

#include "config/logger.hpp"

#include <zmq.hpp>

#include <poll.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <deque>
#include <span>

namespace mktl::detail {

using Clock = std::chrono::steady_clock;

void Pending::throw_failure() const {
  if (!failure) return;
  if (reply_lost) throw ReplyLost(failure->second);
  if (failure->first == "TimeoutError") throw TimeoutError(failure->second);
  throw Error(failure->first, failure->second);
}

bool WaitedPending::wait_for(double timeout) {
  std::unique_lock lock(mutex_);
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  return cv_.wait_until(lock, deadline, [&] { return done_; });
}

void WaitedPending::finish() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  cv_.notify_all();
}

// abandon, subscribe, unsubscribe, rekey (a turn to look at changed keys):
// what the I/O thread does besides sending.
struct Engine::Control {
  enum Kind { abandon, subscribe, unsubscribe, rekey } kind;
  std::string endpoint;
  std::uint32_t id = 0;  // abandon
  std::string topic;     // (un)subscribe
};

struct Engine::Dealer {
  zmq::socket_t socket;
  std::string endpoint;
  struct Waiting {
    std::shared_ptr<Pending> pending;
    bool wants_ack;
  };
  std::unordered_map<std::uint32_t, Waiting> waiting;
  // Requests still owed an ACK, in sending order. Their deadlines never
  // decrease along it (Link: every request gets the same ACK timeout, and a
  // connection event moves all of them alike), so the front has the
  // earliest; entries whose ACK or REP came are skipped when they reach it.
  struct Owed {
    std::uint32_t id;
    Clock::time_point sent, due;
  };
  std::deque<Owed> ack_order;
  // The earliest deadline of a request still owed its ACK (max when none).
  Clock::time_point next_ack_deadline() {
    while (!ack_order.empty()) {
      auto it = waiting.find(ack_order.front().id);
      if (it != waiting.end() && it->second.wants_ack) return ack_order.front().due;
      ack_order.pop_front();
    }
    return Clock::time_point::max();
  }
  std::vector<zmq::message_t> frames;  // reused for every received message
  // Tells when a connection ends (the daemon died or the link went down):
  // the REPs owed on it can no longer come.
  zmq::socket_t monitor;
  Link link;
  std::string server_key;  // the CURVE server key it was made with; empty: plain
  // To be read without waiting for its fd (run()): new, sent on, or its
  // last read stopped at its bound.
  bool ask = true, ask_monitor = true;
  ~Dealer() {
    if (socket && monitor) zmq_socket_monitor(socket.handle(), nullptr, 0);
  }
};

struct Engine::Sub {
  zmq::socket_t socket;
  std::string endpoint;
  std::unordered_map<std::string, int> topics;
  std::vector<zmq::message_t> frames;  // reused for every received message
  // Connection state, from the socket's monitor (handshakes, disconnects):
  // a publisher not connected for kLostAfter is reported lost once, and
  // reported back when a handshake succeeds again.
  zmq::socket_t monitor;
  bool connected = false;
  bool reported_lost = false;
  Clock::time_point down_since = Clock::now();
  std::string server_key;  // as Dealer's
  bool ask = true, ask_monitor = true;  // as Dealer's
  ~Sub() {
    // Stop the monitor before its socket goes, so that nothing is left
    // queued on the inproc pair.
    if (socket && monitor) zmq_socket_monitor(socket.handle(), nullptr, 0);
  }
};

namespace {

void fail(Pending& p, std::string type, std::string text) {
  p.failure.emplace(std::move(type), std::move(text));
}

}  // namespace

void set_client_socket_options(zmq::socket_t& socket) {
  // A PING every second; no traffic at all for 3 s closes the connection,
  // which is then re-made like any other (the peer's libzmq answers PINGs by
  // itself, whatever its application does). Reconnection attempts 0.1 to
  // 0.25 s apart, each given up after 0.5 s: a SYN lost while a link is down
  // would otherwise wait for TCP's own retry, 1, 3, 7 s later, and the
  // connection would resume seconds after the link.
  socket.set(zmq::sockopt::heartbeat_ivl, 1000);
  socket.set(zmq::sockopt::heartbeat_timeout, 3000);
  socket.set(zmq::sockopt::heartbeat_ttl, 3000);
  socket.set(zmq::sockopt::reconnect_ivl, 100);
  socket.set(zmq::sockopt::reconnect_ivl_max, 250);
  socket.set(zmq::sockopt::connect_timeout, 500);
}

Engine::Engine(double ack_timeout, BroadcastHandler& handler, std::shared_ptr<const security::ClientKeys> keys)
    : ack_timeout_(ack_timeout), handler_(handler), keys_(std::move(keys)), thread_([this](std::stop_token st) { run(st); }) {}

Engine::~Engine() {
  thread_.request_stop();
  wakeup_.notify();
  thread_.join();
  // Give what is still queued (a set_nowait just before exit) up to a second
  // to leave, then close the context, which waits for exactly that.
  for (auto& [ep, d] : dealers_) d->socket.set(zmq::sockopt::linger, 1000);
  dealers_.clear();
  subs_.clear();
  context_.close();
}

// Wakes the I/O thread if it is (about to be) blocked in poll. A busy I/O
// thread takes the queue on its next turn without a system call on either
// side. Both sides store, then load (all sequentially consistent): either the
// caller sees polling_ and writes the eventfd, or the I/O thread sees queued_
// and does not block. Of the callers that queue while it polls, only the first
// writes: the I/O thread clears signalled_ when poll returns, before it takes
// the queue, so later callers' requests leave with the first one's.
void Engine::queued() {
  if (polling_.load() && !signalled_.exchange(true)) wakeup_.notify();
}

void Engine::post(Control control) {
  {
    std::lock_guard lock(mutex_);
    controls_.push_back(std::move(control));
    queued_.fetch_add(1);
  }
  queued();
}

void Engine::send(std::shared_ptr<Pending> pending) {
  pending->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    sends_.push_back(std::move(pending));
    queued_.fetch_add(1);
  }
  queued();
}

void Engine::send_and_wait(const std::shared_ptr<WaitedPending>& pending, double timeout, const std::string& what) {
  send(pending);
  if (!pending->wait_for(timeout)) {
    abandon(pending->endpoint, pending->id);
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", timeout);
    throw TimeoutError(what + ": no response received in " + text + " s");
  }
  pending->throw_failure();
}

void Engine::abandon(const std::string& endpoint, std::uint32_t id) {
  post(Control{Control::abandon, endpoint, id, {}});
}

void Engine::subscribe(const std::string& pub_endpoint, const std::string& topic) {
  post(Control{Control::subscribe, pub_endpoint, 0, topic});
}

void Engine::unsubscribe(const std::string& pub_endpoint, const std::string& topic) {
  post(Control{Control::unsubscribe, pub_endpoint, 0, topic});
}

std::unique_ptr<Engine::Dealer> Engine::open_dealer(const std::string& endpoint) {
  auto d = std::make_unique<Dealer>();
  d->endpoint = endpoint;
  d->socket = zmq::socket_t(context_, zmq::socket_type::dealer);
  if (keys_) d->server_key = keys_->secure(d->socket, endpoint);
  d->socket.set(zmq::sockopt::linger, 0);
  d->socket.set(zmq::sockopt::sndhwm, 100000);
  d->socket.set(zmq::sockopt::rcvhwm, 100000);
  set_client_socket_options(d->socket);
  try {
    d->monitor = transport::monitor(context_, d->socket, Link::kEvents);
  } catch (const zmq::error_t& e) {  // then a lost connection is noticed at the request's timeout
    logger("mktl.client")->debug("cannot monitor the connection to {}: {}", endpoint, e.what());
  }
  d->socket.connect(endpoint);
  return d;
}

std::unique_ptr<Engine::Sub> Engine::open_sub(const std::string& endpoint) {
  auto s = std::make_unique<Sub>();
  s->endpoint = endpoint;
  s->socket = zmq::socket_t(context_, zmq::socket_type::sub);
  if (keys_) s->server_key = keys_->secure(s->socket, endpoint);
  s->socket.set(zmq::sockopt::linger, 0);
  s->socket.set(zmq::sockopt::rcvhwm, 100000);
  set_client_socket_options(s->socket);
  s->monitor = transport::monitor(context_, s->socket, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED);
  s->down_since = Clock::now();
  s->socket.connect(endpoint);
  return s;
}

void Engine::keys_changed() { post(Control{Control::rekey, {}, 0, {}}); }

// Sockets made with a server key that is no longer the endpoint's (its
// daemon came back with another key pair, or with CURVE turned on or off)
// can never complete a handshake again: they are made anew. A request
// waiting on an old DEALER fails; a SUB is made again with its topics, and
// one reported lost is reported back once its new handshake succeeds.
void Engine::apply_keys() {
  const auto generation = keys_->generation();
  if (generation == keys_seen_) return;
  keys_seen_ = generation;
  for (auto it = dealers_.begin(); it != dealers_.end();) {
    Dealer* d = it->second.get();
    if (!d || keys_->server_key(it->first) == d->server_key) {
      ++it;
      continue;
    }
    logger("mktl.client")->info("{}: the daemon's CURVE key changed; connecting again", it->first);
    fail_waiting(*d, "the daemon's CURVE key changed while the request waited");
    last_dealer_ = nullptr;
    it = dealers_.erase(it);
  }
  for (auto& [endpoint, s] : subs_) {
    if (keys_->server_key(endpoint) == s->server_key) continue;
    logger("mktl.client")->info("{}: the publisher's CURVE key changed; subscribing again", endpoint);
    std::unique_ptr<Sub> fresh;
    try {
      fresh = open_sub(endpoint);
    } catch (const zmq::error_t& e) {
      logger("mktl.client")->error("cannot connect to {}: {}", endpoint, e.what());
      continue;  // the old socket stays: better than none
    }
    for (auto& [topic, count] : s->topics) fresh->socket.set(zmq::sockopt::subscribe, topic);
    fresh->topics = std::move(s->topics);
    fresh->reported_lost = s->reported_lost;
    s = std::move(fresh);
  }
}

// Fails every request waiting on `d`, whose socket is about to close.
void Engine::fail_waiting(Dealer& d, const std::string& why) {
  for (auto& [id, w] : d.waiting) {
    fail(*w.pending, "TimeoutError", w.pending->target + " @ " + d.endpoint + ": " + why);
    w.pending->finish();
  }
  if (!d.waiting.empty()) handler_.on_unacknowledged(d.endpoint);
  d.waiting.clear();
  d.ack_order.clear();
}

// Queues the request's frames on d's socket without waiting; false when the
// socket takes nothing (no connection to send to, or its queue is full).
bool Engine::send_request(Dealer& d, const Pending& p) {
  auto id = protocol::format_request_id(p.id);
  auto type = protocol::type_name(p.type);
  std::string flags = protocol::encode_flags(p.flags);
  const std::string_view frames[] = {protocol::kVersion, {id.data(), id.size()}, type, p.target, flags,
                                     p.request_payload};
  const bool bulk = p.request_bulk.has_value();
  d.ask = true;  // a send can take in what its fd would have shown
  // The first frame decides: a message's later frames always follow it.
  if (!d.socket.send(zmq::const_buffer(frames[0].data(), frames[0].size()),
                     zmq::send_flags::sndmore | zmq::send_flags::dontwait))
    return false;
  for (std::size_t i = 1; i < std::size(frames); ++i)
    d.socket.send(zmq::const_buffer(frames[i].data(), frames[i].size()),
                  (i + 1 < std::size(frames) || bulk) ? zmq::send_flags::sndmore : zmq::send_flags::none);
  if (bulk) d.socket.send(transport::share_bulk(*p.request_bulk), zmq::send_flags::none);
  return true;
}

void Engine::execute(Pending& p, std::shared_ptr<Pending>& owner) {
  // Requests mostly go where the last one went: skip hashing the endpoint.
  if (!last_dealer_ || !*last_dealer_ || (*last_dealer_)->endpoint != p.endpoint) last_dealer_ = &dealers_[p.endpoint];
  auto& d = *last_dealer_;
  try {
    if (!d) d = open_dealer(p.endpoint);
    if (!send_request(*d, p)) {
      // Nothing to send to: libzmq gives up a connection for good after
      // some failed handshakes (a CURVE daemon and a plain client, say), and
      // a full queue refuses too. A new socket (and connection), once; what
      // waited on the old one can no longer be answered.
      const std::string why = d->link.why_late();
      fail_waiting(*d, "the connection to the daemon was given up" + (why.empty() ? std::string() : ": " + why));
      d = open_dealer(p.endpoint);
      if (!send_request(*d, p)) throw zmq::error_t(EAGAIN);
    }
  } catch (const zmq::error_t& e) {
    if (d && !d->socket) {
      last_dealer_ = nullptr;
      dealers_.erase(p.endpoint);
    }
    fail(p, "RuntimeError", "cannot send to " + p.endpoint + ": " + e.what());
    p.finish();
    return;
  }
  if (p.flags & protocol::NO_REP) {
    p.finish();  // fire and forget
    return;
  }
  const auto now = Clock::now();
  const bool wants_ack = (p.flags & protocol::NO_ACK) == 0;
  d->waiting[p.id] = {std::move(owner), wants_ack};
  if (wants_ack) d->ack_order.push_back({p.id, now, d->link.deadline(now, ack_duration())});
}

void Engine::execute(Control& c) {
  switch (c.kind) {
    case Control::abandon: {
      auto it = dealers_.find(c.endpoint);
      if (it != dealers_.end()) it->second->waiting.erase(c.id);
      return;
    }
    case Control::subscribe: {
      auto& s = subs_[c.endpoint];
      if (!s) {
        try {
          s = open_sub(c.endpoint);
        } catch (const zmq::error_t& e) {
          logger("mktl.client")->error("cannot connect to {}: {}", c.endpoint, e.what());
          subs_.erase(c.endpoint);
          return;
        }
      }
      if (s->topics[c.topic]++ == 0) s->socket.set(zmq::sockopt::subscribe, c.topic);
      return;
    }
    case Control::rekey:
      return;  // take_queue() has looked at the keys already
    case Control::unsubscribe: {
      auto it = subs_.find(c.endpoint);
      if (it == subs_.end()) return;
      auto t = it->second->topics.find(c.topic);
      if (t == it->second->topics.end()) return;
      if (--t->second == 0) {
        it->second->socket.set(zmq::sockopt::unsubscribe, c.topic);
        it->second->topics.erase(t);
      }
      // Nothing left to hear from there: stop (re)connecting to it (it may be
      // the old address of a daemon that moved).
      if (it->second->topics.empty()) subs_.erase(it);
      return;
    }
  }
}

bool Engine::on_dealer(Dealer& d) {
  auto& frames = d.frames;
  std::array<std::string_view, 8> parts;
  std::string error;
  for (int burst = 0; burst < 1024; ++burst) {
    try {
      if (!transport::recv_multipart(d.socket, frames)) return false;
    } catch (const zmq::error_t& e) {
      receive_failed_log_("receive from {} failed: {}", d.endpoint, e.what());
      return false;
    }
    auto response = protocol::decode_response(transport::views(frames, parts), &error);
    if (!response) {
      malformed_log_("dropped a malformed response from {}: {}", d.endpoint, error);
      continue;
    }
    auto id = protocol::parse_request_id(response->id);
    if (!id) continue;
    auto it = d.waiting.find(*id);
    if (it == d.waiting.end()) continue;  // late answer to an abandoned request
    if (response->type == protocol::MessageType::ACK) {
      it->second.wants_ack = false;
      continue;
    }
    if (response->type != protocol::MessageType::REP) continue;
    // A REP before its ACK counts as both.
    auto pending = std::move(it->second.pending);
    d.waiting.erase(it);
    std::optional<Bulk> bulk;
    if (response->has_bulk) bulk = transport::adopt_bulk(std::move(frames.back()));
    pending->receive(response->payload, std::move(bulk));
    finished_.push_back(std::move(pending));
    if (finished_.size() >= 64) finish_received();
  }
  return true;
}

// Completions wait until the burst of responses at hand is read, and run
// newest first: a caller that waits on its oldest request (the usual pattern
// with many in flight) is woken once, by the last completion, and then finds
// every other one ready. Completed one by one and oldest first, each would
// wake the caller, which would take the CPU from this thread and then wait
// again for the next response, still unread.
void Engine::finish_received() {
  for (auto it = finished_.rbegin(); it != finished_.rend(); ++it) (*it)->finish();
  finished_.clear();
}

bool Engine::on_sub(Sub& s) {
  const bool more = read_broadcasts(s);
  handler_.on_broadcasts_read();
  return more;
}

bool Engine::read_broadcasts(Sub& s) {
  auto& frames = s.frames;
  std::array<std::string_view, 8> parts;
  for (int burst = 0; burst < 4096; ++burst) {
    try {
      if (!transport::recv_multipart(s.socket, frames, parts.size())) return false;
    } catch (const zmq::error_t& e) {
      receive_failed_log_("receive of broadcasts from {} failed: {}", s.endpoint, e.what());
      return false;
    }
    std::string error;
    auto b = protocol::decode_broadcast(transport::views(frames, parts), &error);
    if (!b) {
      logger("mktl.client")->debug("dropped a malformed broadcast: {}", error);
      continue;
    }
    std::optional<Bulk> bulk;
    if (b->has_bulk) bulk = transport::adopt_bulk(std::move(frames.back()));
    handler_.on_broadcast(std::move(b->key), std::move(b->payload), std::move(bulk));
  }
  return true;
}

namespace {

}  // namespace

std::optional<MonitorEvent> next_event(zmq::socket_t& monitor, std::vector<zmq::message_t>& frames) {
  for (;;) {
    try {
      if (!transport::recv_multipart(monitor, frames)) return std::nullopt;
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
    // Frame 1: a 16-bit event number and a 32-bit value; frame 2: the endpoint.
    if (frames.empty() || frames[0].size() < 6) continue;
    MonitorEvent e;
    std::memcpy(&e.event, frames[0].data(), sizeof e.event);
    std::memcpy(&e.value, static_cast<const char*>(frames[0].data()) + 2, sizeof e.value);
    return e;
  }
}

bool uses_curve(zmq::socket_t& socket) {
  try {
    return socket.get(zmq::sockopt::mechanism) == ZMQ_CURVE;
  } catch (const zmq::error_t&) {
    return false;
  }
}

std::string handshake_problem(const MonitorEvent& e, bool has_key) {
  if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    return "the daemon refused this client's key (CURVE: its public key is not among the daemon's clients, "
           "docs/security.md)";
  if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && e.value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    return has_key ? "the handshake with the daemon failed: this client uses CURVE, the daemon does not"
                   : "the handshake with the daemon failed: it requires CURVE, and this client has no key (--key or "
                     "MKTL_KEY, docs/security.md)";
  // NO_DETAIL is a connection closed mid-handshake. A CURVE daemon closes
  // on a client without a key, at times before the client has read which
  // mechanism it wanted; a daemon that stops does the same. Say both.
  if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && !has_key)
    return "the connection closed during the handshake (the daemon stopped, or it requires CURVE and this "
           "client has no key: --key or MKTL_KEY, docs/security.md)";
  if (!has_key || (e.event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && e.event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
    return {};
  return "the CURVE handshake with the daemon failed (is the daemon's public key the right one? docs/security.md)";
}

void Link::apply(const MonitorEvent& event, Clock::time_point now, bool has_key) {
  switch (event.event) {
    case ZMQ_EVENT_CONNECTED:
      state = State::handshaking;
      connected_at = now;
      refused = false;
      return;
    case ZMQ_EVENT_CONNECT_RETRIED:  // libzmq tries again after a failed connect
      if (state != State::up) refused = true;
      return;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      state = State::up;
      problem.clear();
      return;
    case ZMQ_EVENT_DISCONNECTED:
      state = State::down;
      return;
    default:
      if (!(event.event & kHandshakeFailed)) return;
      state = State::down;
      if (auto p = handshake_problem(event, has_key); !p.empty()) problem = std::move(p);
  }
}

Link::Clock::time_point Link::moved(const MonitorEvent& event, Clock::time_point sent, Clock::time_point due,
                                    Clock::time_point now, Clock::duration ack) {
  switch (event.event) {
    case ZMQ_EVENT_CONNECTED: return std::max(due, now + kHandshakeAllowance);
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return now + ack;
    case ZMQ_EVENT_DISCONNECTED:
    case ZMQ_EVENT_CONNECT_RETRIED: return due;
    default:
      if (!(event.event & kHandshakeFailed)) return due;
      return std::min(due, std::max(sent + ack, now));
  }
}

std::string Link::why_late() const {
  if (!problem.empty()) return problem;
  if (state == State::handshaking)
    return "the connection's handshake did not complete in " +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(kHandshakeAllowance).count()) +
           " ms (is the daemon stopped or overloaded?)";
  if (refused && state == State::down) return "no connection could be made (is the daemon running at that address?)";
  return {};
}

// A connection to a daemon ended. Requests it acknowledged (and those sent
// without asking for an ACK) were answered on that connection or not at
// all: the daemon's ROUTER has no route to a connection that is gone, and a
// restarted daemon never heard of them. They fail now rather than at their
// timeout, which can be a minute. A request still owed its ACK may be in
// the socket's queue, to leave on the next connection: its ACK timeout
// decides, as usual.
bool Engine::on_dealer_monitor(Dealer& d) {
  std::vector<zmq::message_t> frames;
  bool lost = false, more = true;
  for (int burst = 0; burst < 64; ++burst) {
    auto event = next_event(d.monitor, frames);
    if (!event) {
      more = false;
      break;
    }
    if (event->event == ZMQ_EVENT_DISCONNECTED) lost = true;
    const auto now = Clock::now();
    d.link.apply(*event, now, uses_curve(d.socket));
    for (auto& owed : d.ack_order) owed.due = Link::moved(*event, owed.sent, owed.due, now, ack_duration());
  }
  if (!lost) return more;
  std::size_t failed = 0;
  for (auto it = d.waiting.begin(); it != d.waiting.end();) {
    if (it->second.wants_ack) {
      ++it;
      continue;
    }
    auto& p = *it->second.pending;
    fail(p, "TimeoutError",
         p.target + " @ " + d.endpoint +
             ": the connection to the daemon was lost before its reply came (the request may or may not have "
             "been applied)");
    p.reply_lost = true;
    p.finish();
    it = d.waiting.erase(it);
    ++failed;
  }
  logger("mktl.client")->debug("lost the connection to {}; {} request(s) waiting for a reply failed", d.endpoint,
                               failed);
  if (failed > 0) handler_.on_unacknowledged(d.endpoint);
  return more;
}

bool Engine::on_monitor(Sub& s) {
  std::vector<zmq::message_t> frames;
  for (int burst = 0; burst < 64; ++burst) {
    auto next = next_event(s.monitor, frames);
    if (!next) return false;
    const std::uint16_t event = next->event;
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      s.connected = true;
      if (s.reported_lost) {
        s.reported_lost = false;
        logger("mktl.client")->info("broadcasts from {} resumed", s.endpoint);
        handler_.on_publisher(s.endpoint, true);
      }
    } else if (event == ZMQ_EVENT_DISCONNECTED && s.connected) {
      s.connected = false;
      s.down_since = Clock::now();
      logger("mktl.client")->debug("lost the connection to {}", s.endpoint);
    }
  }
  return true;
}

Clock::time_point Engine::report_lost() {
  auto now = Clock::now();
  auto next = Clock::time_point::max();
  for (auto& [endpoint, s] : subs_) {
    if (s->connected || s->reported_lost || !s->monitor) continue;
    auto due = s->down_since + kLostAfter;
    if (due > now) {
      next = std::min(next, due);
      continue;
    }
    s->reported_lost = true;
    logger("mktl.client")->info("no connection to the publisher {}", endpoint);
    handler_.on_publisher(endpoint, false);
  }
  return next;
}

void Engine::expire_acks() {
  auto now = Clock::now();
  for (auto& [endpoint, d] : dealers_) {
    // What the monitor holds may move the deadlines (a handshake that has
    // just completed): take it in before giving up on a request.
    if (d->monitor && d->next_ack_deadline() <= now) d->ask_monitor = on_dealer_monitor(*d);
    while (d->next_ack_deadline() <= now) {
      const std::uint32_t id = d->ack_order.front().id;
      d->ack_order.pop_front();
      auto it = d->waiting.find(id);
      char text[64];
      std::snprintf(text, sizeof text, "%.3f", ack_timeout_);
      auto& p = *it->second.pending;
      const std::string why = d->link.why_late();
      fail(p, "TimeoutError",
           p.target + " @ " + endpoint + ": no acknowledgement received in " + text + " s" +
               (why.empty() ? std::string() : ": " + why));
      p.finish();
      d->waiting.erase(it);
      handler_.on_unacknowledged(endpoint);
    }
  }
}

void Engine::take_queue(std::vector<std::shared_ptr<Pending>>& sends, std::vector<Control>& controls) {
  {
    std::lock_guard lock(mutex_);
    sends.swap(sends_);
    controls.swap(controls_);
    queued_.store(0);
  }
  if (keys_) apply_keys();
  // Sends first: an abandon always follows the send it undoes.
  for (auto& p : sends) execute(*p, p);
  for (auto& c : controls) execute(c);
  if (!controls.empty()) {
    // A control may have used any socket (subscriptions, connections):
    // each is read again before run() waits on its fd.
    for (auto& [ep, d] : dealers_) d->ask = true;
    for (auto& [ep, sub] : subs_) sub->ask = true;
  }
  sends.clear();
  controls.clear();
}

void Engine::run(std::stop_token stop) {
  mktl::detail::name_this_thread("mktl-client");
  // Readiness without zmq_poll(), for the reason Server::Impl::run() gives:
  // one poll() on the sockets' ZMQ_FDs and the wakeup fd, and a socket read
  // (which is how it is asked) only when its fd fired or its `ask` says it
  // may hold what the fd no longer shows (it is new, was sent on, or its
  // last read stopped at its bound). With something to read, poll() only
  // looks (timeout 0), so that no fd waits behind a socket that keeps busy.
  enum class Kind { dealer, dealer_monitor, sub, sub_monitor };
  struct Watched {
    Kind kind;
    void* target;
    bool* ask;  // the socket's flag
  };
  std::vector<pollfd> fds;
  std::vector<Watched> watched;
  std::vector<std::shared_ptr<Pending>> sends;
  std::vector<Control> controls;
  while (!stop.stop_requested()) {
    fds.clear();
    watched.clear();
    bool asked = false;
    auto watch = [&](zmq::socket_t& socket, Kind kind, void* target, bool& ask) {
      fds.push_back({static_cast<int>(socket.get(zmq::sockopt::fd)), POLLIN, 0});
      watched.push_back({kind, target, &ask});
      asked = asked || ask;
    };
    fds.push_back({wakeup_.fd(), POLLIN, 0});
    watched.push_back({Kind::dealer, nullptr, nullptr});
    Clock::time_point next_deadline = report_lost();
    for (auto& [ep, d] : dealers_) {
      watch(d->socket, Kind::dealer, d.get(), d->ask);
      if (d->monitor) watch(d->monitor, Kind::dealer_monitor, d.get(), d->ask_monitor);
      next_deadline = std::min(next_deadline, d->next_ack_deadline());
    }
    for (auto& [ep, sub] : subs_) {
      watch(sub->socket, Kind::sub, sub.get(), sub->ask);
      if (sub->monitor) watch(sub->monitor, Kind::sub_monitor, sub.get(), sub->ask_monitor);
    }
    int timeout_ms = -1;
    if (next_deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_deadline - Clock::now()).count() + 1;
      timeout_ms = left < 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    // Callers write the eventfd only while this thread may block in poll:
    // announce that, then look at the queue once more (see queued()).
    polling_.store(true);
    if (asked || queued_.load() > 0) timeout_ms = 0;
    const int rc = ::poll(fds.data(), fds.size(), timeout_ms);
    polling_.store(false);
    signalled_.store(false);
    if (rc < 0) {
      if (errno == EINTR) continue;
      logger("mktl.client")->error("poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents) wakeup_.drain();
    for (std::size_t i = 1; i < fds.size(); ++i)
      if (fds[i].revents) *watched[i].ask = true;
    // Events first: take_queue may close a Sub (its last unsubscribe).
    for (std::size_t i = 1; i < watched.size(); ++i) {
      auto& w = watched[i];
      if (!*w.ask) continue;
      switch (w.kind) {
        case Kind::dealer: *w.ask = on_dealer(*static_cast<Dealer*>(w.target)); break;
        case Kind::dealer_monitor: *w.ask = on_dealer_monitor(*static_cast<Dealer*>(w.target)); break;
        case Kind::sub: *w.ask = on_sub(*static_cast<Sub*>(w.target)); break;
        case Kind::sub_monitor: *w.ask = on_monitor(*static_cast<Sub*>(w.target)); break;
      }
    }
    take_queue(sends, controls);
    finish_received();
    // What completion handlers (or other threads) queued meanwhile leaves now,
    // not after another turn through poll.
    if (queued_.load() > 0) take_queue(sends, controls);
    expire_acks();
  }
  // Send what was queued before the stop; fail whatever is still waiting, so
  // no caller blocks on a dead engine.
  {
    std::lock_guard lock(mutex_);
    sends.swap(sends_);
  }
  for (auto& p : sends) execute(*p, p);
  for (auto& [ep, d] : dealers_)
    for (auto& [id, w] : d->waiting) {
      fail(*w.pending, "RuntimeError", "client closed");
      w.pending->finish();
    }
}

struct DirectRequests::Socket {
  zmq::socket_t socket;
  zmq::socket_t monitor;  // the connection's events (Link), read while a request waits
  Link link;
  bool curve = false;
  std::string server_key;             // as Engine's sockets'
  std::uint64_t keys_generation = 0;  // the keys' generation server_key was read at
  std::vector<zmq::message_t> frames;
  ~Socket() {
    if (socket && monitor) zmq_socket_monitor(socket.handle(), nullptr, 0);
  }
  // Takes in the events the monitor holds; moves `due` (the ACK deadline of
  // a request sent at `sent` and not yet acknowledged) with them.
  void read_events(Clock::time_point sent, Clock::time_point& due, Clock::duration ack) {
    if (!monitor) return;
    for (int i = 0; i < 64; ++i) {
      auto event = next_event(monitor, frames);
      if (!event) return;
      const auto now = Clock::now();
      link.apply(*event, now, curve);
      due = Link::moved(*event, sent, due, now, ack);
    }
  }
};

DirectRequests::DirectRequests(zmq::context_t& context, double ack_timeout,
                               std::shared_ptr<const security::ClientKeys> keys)
    : context_(context), ack_timeout_(ack_timeout), keys_(std::move(keys)) {}
DirectRequests::~DirectRequests() = default;

DirectRequests::Socket* DirectRequests::socket_for(const std::string& endpoint, bool fresh) {
  auto key = std::make_pair(std::this_thread::get_id(), endpoint);
  std::lock_guard lock(mutex_);
  auto& s = sockets_[key];
  if (fresh) s.reset();
  // A socket made with a server key the endpoint no longer has (see
  // Engine::apply_keys) is made again.
  if (s && keys_ && s->keys_generation != keys_->generation()) {
    const auto generation = keys_->generation();
    if (keys_->server_key(endpoint) != s->server_key) s.reset();
    else s->keys_generation = generation;
  }
  if (!s) {
    if (sockets_.size() > 256) {
      sockets_.erase(key);
      return nullptr;
    }
    s = std::make_unique<Socket>();
    s->socket = zmq::socket_t(context_, zmq::socket_type::dealer);
    if (keys_) {
      s->keys_generation = keys_->generation();
      s->server_key = keys_->secure(s->socket, endpoint);
    }
    s->socket.set(zmq::sockopt::linger, 0);
    set_client_socket_options(s->socket);
    try {
      s->monitor = transport::monitor(context_, s->socket, Link::kEvents);
    } catch (const zmq::error_t& e) {  // then the ACK timeout runs from the send
      logger("mktl.client")->debug("cannot monitor the connection to {}: {}", endpoint, e.what());
    }
    s->curve = uses_curve(s->socket);
    s->socket.connect(endpoint);
  }
  return s.get();
}

std::optional<DirectRequests::Answer> DirectRequests::request(const std::string& endpoint, protocol::MessageType type,
                                                             const std::string& target, std::string_view payload,
                                                             const std::optional<Bulk>& bulk, double timeout) {
  Socket* s = socket_for(endpoint);
  if (!s) return std::nullopt;
  auto id_text = protocol::format_request_id(next_id_.fetch_add(1));
  std::string_view id(id_text.data(), id_text.size());
  auto frames = protocol::encode(id, type, target, 0, payload);
  // Without waiting: the first frame decides, a message's later frames
  // always follow it. A socket that takes nothing has no connection to send
  // to (libzmq gives one up for good after some failed handshakes) or a full
  // queue: it is replaced by a new one, once.
  auto send = [&](Socket& to) {
    if (!to.socket.send(zmq::buffer(frames[0]), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    for (std::size_t i = 1; i < frames.size(); ++i)
      to.socket.send(zmq::buffer(frames[i]),
                     (i + 1 < frames.size() || bulk) ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (bulk) to.socket.send(transport::share_bulk(*bulk), zmq::send_flags::none);
    return true;
  };
  if (!send(*s)) {
    const std::string why = s->link.why_late();
    s = socket_for(endpoint, true);
    if (!s) return std::nullopt;
    if (!send(*s))
      throw TimeoutError(target + " @ " + endpoint + ": cannot send: no connection to the daemon" +
                         (why.empty() ? std::string() : ": " + why));
  }

  const auto start = Clock::now();
  const auto ack = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ack_timeout_));
  auto ack_deadline = start + ack;
  // What happened to a connection not up at the last request (on one that
  // was, the events are read only if the ACK deadline comes: reading the
  // monitor costs a system call per request, measurable on a blocking GET).
  if (s->link.state != Link::State::up) s->read_events(start, ack_deadline, ack);
  ack_deadline = std::max(ack_deadline, s->link.deadline(start, ack));
  auto rep_deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  // The monitor is watched while the connection is being made; on one that
  // is up, its events are read only when the ACK deadline comes (a
  // connection made again meanwhile moves it, a failed handshake says why).
  const bool watch_link = s->monitor && s->link.state != Link::State::up;
  bool acked = false;
  std::vector<zmq::message_t> parts;
  std::array<std::string_view, 8> views;
  while (true) {
    auto deadline = acked ? rep_deadline : std::min(ack_deadline, rep_deadline);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    zmq::pollitem_t items[] = {{s->socket.handle(), 0, ZMQ_POLLIN, 0}, {s->monitor.handle(), 0, ZMQ_POLLIN, 0}};
    const int watched = (!acked && watch_link) ? 2 : 1;
    if (left > 0) zmq::poll(items, watched, std::chrono::milliseconds(left + 1));
    if (!acked && (items[1].revents & ZMQ_POLLIN || Clock::now() >= ack_deadline))
      s->read_events(start, ack_deadline, ack);
    if (!(items[0].revents & ZMQ_POLLIN)) {
      deadline = acked ? rep_deadline : std::min(ack_deadline, rep_deadline);
      if (Clock::now() < deadline) continue;
      char text[32];
      if (!acked) {
        std::snprintf(text, sizeof text, "%.3f", ack_timeout_);
        const std::string why = s->link.why_late();
        throw TimeoutError(target + " @ " + endpoint + ": no acknowledgement received in " + text + " s" +
                           (why.empty() ? std::string() : ": " + why));
      }
      std::snprintf(text, sizeof text, "%.3f", timeout);
      throw TimeoutError(target + " @ " + endpoint + ": no response received in " + text + " s");
    }
    // Drain what is there: answers to our request, or late ones to an earlier
    // request of this thread that timed out (ignored).
    while (transport::recv_multipart(s->socket, parts)) {
      auto response = protocol::decode_response(transport::views(parts, views));
      if (!response || response->id != id) continue;
      if (response->type == protocol::MessageType::ACK) {
        acked = true;
        continue;
      }
      if (response->type != protocol::MessageType::REP) continue;
      Answer answer;
      answer.payload = std::string(response->payload);
      if (response->has_bulk) answer.bulk = transport::adopt_bulk(std::move(parts.back()));
      return answer;
    }
  }
}

}  // namespace mktl::detail
