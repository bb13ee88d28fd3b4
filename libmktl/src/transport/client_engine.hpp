// The client's side of the transport (internal): an Engine thread owns the
// DEALER and SUB sockets of a Client for asynchronous requests and
// subscriptions, and DirectRequests lets a blocking request use a socket of
// the calling thread. Broadcasts are handed to the Client's callback strands.
#pragma once

#include "config/logger.hpp"
#include "protocol/codec.hpp"
#include "security/client_keys.hpp"
#include "transport/zmq_util.hpp"

#include <mktl/bulk.hpp>
#include <mktl/error.hpp>
#include <mktl/json.hpp>
#include <mktl/reading.hpp>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mktl::detail {

// The TimeoutError of a request the daemon acknowledged and whose connection
// then closed: it reached the daemon and may have been applied, so it is not
// sent again elsewhere unless it is a GET.
struct ReplyLost : TimeoutError {
  using TimeoutError::TimeoutError;
};

// An event of a socket monitor: what happened, and its value (an error or
// status code for failed handshakes).
struct MonitorEvent {
  std::uint16_t event = 0;
  std::uint32_t value = 0;
};
constexpr int kHandshakeFailed =
    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
// The next event a monitor socket holds, if any (never blocks).
std::optional<MonitorEvent> next_event(zmq::socket_t& monitor, std::vector<zmq::message_t>& frames);
// What a failed security handshake means for the user (of a client with a
// CURVE key or without); empty for other events.
std::string handshake_problem(const MonitorEvent& event, bool has_key);
// Whether a socket is a CURVE client (it has this client's key pair).
bool uses_curve(zmq::socket_t& socket);

// A request socket's connection, as its monitor tells it, and when a
// request's ACK is due. The ACK timeout measures the daemon, not the making
// of a connection: a request sent before its connection's handshake (ZMTP,
// and CURVE's key exchange) completed has its ACK timeout counted from the
// handshake. While the TCP connection is up and the handshake runs, the ACK
// may take up to kHandshakeAllowance after the TCP connection (a stopped
// daemon, whose kernel still accepts connections, fails then). With no TCP
// connection at all (nothing listening) the ACK timeout runs from the send,
// as for a connection that is up. A failed handshake gives the timeout back
// its first deadline.
struct Link {
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kHandshakeAllowance{1000};
  static constexpr int kEvents =
      ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
      kHandshakeFailed;

  enum class State { down, handshaking, up } state = State::down;
  Clock::time_point connected_at{};
  std::string problem;  // why the last security handshake failed, if one did
  bool refused = false;  // the last attempt to connect failed (nothing listens there)

  // The ACK deadline of a request sent `now` (ack: the ACK timeout).
  Clock::time_point deadline(Clock::time_point now, Clock::duration ack) const {
    if (state == State::handshaking) return std::max(now + ack, connected_at + kHandshakeAllowance);
    return now + ack;
  }
  // Takes in `event`, read at `now`; `has_key`: the socket uses CURVE (for
  // the problem's text).
  void apply(const MonitorEvent& event, Clock::time_point now, bool has_key);
  // The deadline of a request sent at `sent`, still owed its ACK and due at
  // `due`, once `event` came at `now`.
  static Clock::time_point moved(const MonitorEvent& event, Clock::time_point sent, Clock::time_point due,
                                 Clock::time_point now, Clock::duration ack);
  // What to add to a missing ACK's TimeoutError: the failed handshake, the
  // one still running, or the connection that could not be made; empty when
  // the connection is up, or down with no attempt failed yet.
  std::string why_late() const;
};

// One request and, once it is answered, its outcome; shared by the caller and
// the I/O thread. Subclasses say what completion does (wake a blocked caller,
// fulfil a promise), so a request costs one allocation and no type erasure.
class Pending {
 public:
  Pending(std::string endpoint, protocol::MessageType type, std::string target, std::uint64_t flags,
          std::string payload, std::optional<Bulk> bulk)
      : endpoint(std::move(endpoint)), type(type), target(std::move(target)), flags(flags),
        request_payload(std::move(payload)), request_bulk(std::move(bulk)) {}
  virtual ~Pending() = default;
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;

  // The request; the I/O thread reads it when it sends.
  const std::string endpoint;
  const protocol::MessageType type;
  const std::string target;
  const std::uint64_t flags;
  std::string request_payload;
  std::optional<Bulk> request_bulk;
  std::uint32_t id = 0;  // set by Engine::send

  // The outcome, in place before finish() runs: the REP's payload and bulk
  // frame (as receive() keeps them), or a local failure (type, text) such as
  // a missing ACK.
  std::string payload;
  std::optional<Bulk> bulk;
  std::optional<std::pair<std::string, std::string>> failure;
  bool reply_lost = false;  // the failure: acknowledged, then its connection closed

  // Throws the local failure, if there is one.
  void throw_failure() const;

 protected:
  friend class Engine;
  // Takes the REP, on the I/O thread, while its frames are at hand (the view
  // is valid during the call only). By default keeps a copy in `payload`.
  virtual void receive(std::string_view rep_payload, std::optional<Bulk> rep_bulk) {
    payload.assign(rep_payload);
    bulk = std::move(rep_bulk);
  }
  // Runs once, on the I/O thread, after receive() or a failure. It may run
  // before Engine::send returns.
  virtual void finish() = 0;
};

// A request whose caller blocks until it completes.
class WaitedPending final : public Pending {
 public:
  using Pending::Pending;
  // True once finished; false when `timeout` seconds passed first.
  bool wait_for(double timeout);

 private:
  void finish() override;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
};

struct BroadcastHandler {
  virtual ~BroadcastHandler() = default;
  virtual void on_broadcast(std::string key, std::string payload, std::optional<Bulk> bulk) = 0;
  // The broadcasts one look at a SUB socket found have all been handed to
  // on_broadcast: a handler that gathers them passes them on here. On the
  // I/O thread: must not block.
  virtual void on_broadcasts_read() {}
  // A publisher the Engine subscribes to went out of reach (no connection
  // for Engine::kLostAfter: the daemon stopped, moved, or its host or link is
  // down) or came back. On the I/O thread: must not block.
  virtual void on_publisher(const std::string& /*pub_endpoint*/, bool /*reachable*/) {}
  // An asynchronous request to `rep_endpoint` got no ACK in time (the daemon
  // may be gone or have moved). On the I/O thread: must not block.
  virtual void on_unacknowledged(const std::string& /*rep_endpoint*/) {}
};

// Connection settings of every client socket: ZMTP heartbeats so that a
// connection whose peer vanished (host down, link cut, no FIN ever comes) is
// noticed and re-made within seconds instead of stalling in TCP retransmits,
// and short reconnection attempts so that it resumes soon after the peer is
// reachable again.
void set_client_socket_options(zmq::socket_t& socket);

class Engine {
 public:
  // `keys` (may be null) makes the sockets to daemons that require CURVE
  // CurveZMQ clients.
  Engine(double ack_timeout, BroadcastHandler& handler, std::shared_ptr<const security::ClientKeys> keys = nullptr);
  ~Engine();

  // Queues a request; its Pending finishes with the REP (at once when the
  // request asks for no REP) or a failure.
  void send(std::shared_ptr<Pending> pending);
  // Forgets a request its caller gave up on.
  void abandon(const std::string& endpoint, std::uint32_t id);
  // Sends and blocks until the REP; on a timeout forgets the request (no entry
  // is left behind waiting for a REP that may never come) and throws
  // TimeoutError. Throws the request's local failure, if any.
  void send_and_wait(const std::shared_ptr<WaitedPending>& pending, double timeout, const std::string& what);
  zmq::context_t& context() { return context_; }
  // SUB side: refcounted topic subscriptions per publisher endpoint.
  void subscribe(const std::string& pub_endpoint, const std::string& topic);
  void unsubscribe(const std::string& pub_endpoint, const std::string& topic);
  // The keys told a new server key for some endpoint (ClientKeys::learn):
  // sockets made with the old one are made again.
  void keys_changed();
  // A SUB connection down (or never made) this long is reported lost.
  static constexpr std::chrono::milliseconds kLostAfter{300};

 private:
  struct Control;
  struct Dealer;
  struct Sub;
  void run(std::stop_token stop);
  void execute(Pending& request, std::shared_ptr<Pending>& owner);
  std::unique_ptr<Dealer> open_dealer(const std::string& endpoint);
  std::unique_ptr<Sub> open_sub(const std::string& endpoint);  // throws zmq::error_t
  void apply_keys();
  bool send_request(Dealer& d, const Pending& p);
  void fail_waiting(Dealer& d, const std::string& why);
  void execute(Control& control);
  // Each reads its socket until it is empty (false) or up to its bound
  // (true: more may wait).
  bool on_dealer(Dealer& d);
  bool on_sub(Sub& s);
  bool read_broadcasts(Sub& s);  // on_sub's: hands each to the handler
  bool on_monitor(Sub& s);
  bool on_dealer_monitor(Dealer& d);
  // Reports SUB connections down for kLostAfter; returns the next time one is due.
  std::chrono::steady_clock::time_point report_lost();
  void expire_acks();
  void post(Control control);
  void queued();
  void finish_received();
  // Sends and carries out what callers queued.
  void take_queue(std::vector<std::shared_ptr<Pending>>& sends, std::vector<Control>& controls);

  std::chrono::steady_clock::duration ack_duration() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(ack_timeout_));
  }

  double ack_timeout_;
  BroadcastHandler& handler_;
  std::shared_ptr<const security::ClientKeys> keys_;
  std::uint64_t keys_seen_ = 0;  // the keys' generation the sockets were last checked at
  // A context of the Client's own: closing it at the end waits (bounded by
  // the sockets' linger) until fire-and-forget requests are on the wire.
  zmq::context_t context_{1};
  transport::Wakeup wakeup_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<Pending>> sends_;  // guarded by mutex_
  std::vector<Control> controls_;                // guarded by mutex_
  std::unordered_map<std::string, std::unique_ptr<Dealer>> dealers_;
  std::unique_ptr<Dealer>* last_dealer_ = nullptr;  // the entry the last request used
  std::unordered_map<std::string, std::unique_ptr<Sub>> subs_;
  std::atomic<std::uint32_t> next_id_{0};
  std::atomic<std::size_t> queued_{0};  // sends + controls waiting in the queue
  std::atomic<bool> polling_{false};    // the I/O thread may block in poll
  std::atomic<bool> signalled_{false};  // the eventfd was written since poll began
  std::vector<std::shared_ptr<Pending>> finished_;  // answered, finish() not yet run
  // What a peer can make this client log at will is rate-limited.
  LogLimit receive_failed_log_{logger("mktl.client"), spdlog::level::warn};
  LogLimit malformed_log_{logger("mktl.client"), spdlog::level::warn};
  std::jthread thread_;
};

// Blocking requests made on the caller's own thread, on a DEALER socket that
// thread alone uses: no hand-off to the I/O thread and back, so a blocking GET
// costs about what a raw round trip costs. Sockets are kept per (thread,
// endpoint) until the Client goes; past a cap of sockets, callers get nullopt
// and use the Engine instead.
class DirectRequests {
 public:
  DirectRequests(zmq::context_t& context, double ack_timeout, std::shared_ptr<const security::ClientKeys> keys = nullptr);
  ~DirectRequests();
  struct Answer {
    std::string payload;
    std::optional<Bulk> bulk;
  };
  // Throws TimeoutError when no ACK comes within the ACK timeout or no REP
  // within `timeout`.
  std::optional<Answer> request(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                                std::string_view payload, const std::optional<Bulk>& bulk, double timeout);

 private:
  struct Socket;
  // This thread's socket to `endpoint` (a new one when `fresh`); nullptr
  // when too many are open.
  Socket* socket_for(const std::string& endpoint, bool fresh = false);
  zmq::context_t& context_;
  double ack_timeout_;
  std::shared_ptr<const security::ClientKeys> keys_;
  std::mutex mutex_;
  std::map<std::pair<std::thread::id, std::string>, std::unique_ptr<Socket>> sockets_;  // (thread, endpoint)
  std::atomic<std::uint32_t> next_id_{0x80000000u};  // apart from the Engine's ids, for readable logs
};

}  // namespace mktl::detail
