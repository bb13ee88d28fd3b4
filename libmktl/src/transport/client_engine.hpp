// The client's side of the transport (internal): an Engine thread owns the
// DEALER and SUB sockets of a Client for asynchronous requests and
// subscriptions, and DirectRequests lets a blocking request use a socket of
// the calling thread. Broadcasts are handed to the Client's callback strands.
#pragma once

#include "protocol/codec.hpp"
#include "transport/zmq_util.hpp"

#include <mktl/bulk.hpp>
#include <mktl/error.hpp>
#include <mktl/json.hpp>
#include <mktl/reading.hpp>

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

// One request in flight, shared by the caller and the I/O thread.
struct Pending {
  std::string endpoint;  // where it went, and its id: to abandon it
  std::string id;
  std::mutex mutex;
  std::condition_variable cv;
  bool acked = false;
  bool done = false;
  std::string payload;
  std::optional<Bulk> bulk;
  std::optional<std::pair<std::string, std::string>> failure;  // type, text (local failures)
  // For futures; runs on the I/O thread and is handed this Pending, since the
  // REP may come before send() has returned it to its caller.
  std::function<void(Pending&)> on_done;

  // Waits for the REP; throws TimeoutError after `timeout` seconds.
  void wait(double timeout, const std::string& what);
};

struct BroadcastHandler {
  virtual ~BroadcastHandler() = default;
  virtual void on_broadcast(std::string key, std::string payload, std::optional<Bulk> bulk) = 0;
};

class Engine {
 public:
  Engine(double ack_timeout, BroadcastHandler& handler);
  ~Engine();

  // Sends a request; the Pending completes with the REP (or a failure).
  std::shared_ptr<Pending> send(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                                std::uint64_t flags, std::string payload, std::optional<Bulk> bulk,
                                std::function<void(Pending&)> on_done = {});
  // Forgets a request its caller gave up on.
  void abandon(const std::string& endpoint, const std::string& id);
  // Pending::wait, and on a timeout forgets the request (no entry is left
  // behind waiting for a REP that may never come).
  void wait(Pending& pending, double timeout, const std::string& what);
  zmq::context_t& context() { return context_; }
  // SUB side: refcounted topic subscriptions per publisher endpoint.
  void subscribe(const std::string& pub_endpoint, const std::string& topic);
  void unsubscribe(const std::string& pub_endpoint, const std::string& topic);

 private:
  struct Command;
  struct Dealer;
  struct Sub;
  void run(std::stop_token stop);
  void execute(Command& cmd);
  void on_dealer(Dealer& d);
  void on_sub(Sub& s);
  void expire_acks();
  void post(std::unique_ptr<Command> cmd);

  double ack_timeout_;
  BroadcastHandler& handler_;
  // A context of the Client's own: closing it at the end waits (bounded by
  // the sockets' linger) until fire-and-forget requests are on the wire.
  zmq::context_t context_{1};
  transport::Wakeup wakeup_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Command>> queue_;
  std::unordered_map<std::string, std::unique_ptr<Dealer>> dealers_;
  std::unordered_map<std::string, std::unique_ptr<Sub>> subs_;
  std::uint32_t next_id_ = 0;
  std::mutex id_mutex_;
  std::jthread thread_;
};

// Blocking requests made on the caller's own thread, on a DEALER socket that
// thread alone uses: no hand-off to the I/O thread and back, so a blocking GET
// costs about what a raw round trip costs. Sockets are kept per (thread,
// endpoint) until the Client goes; past a cap of sockets, callers get nullopt
// and use the Engine instead.
class DirectRequests {
 public:
  DirectRequests(zmq::context_t& context, double ack_timeout);
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
  Socket* socket_for(const std::string& endpoint);
  zmq::context_t& context_;
  double ack_timeout_;
  std::mutex mutex_;
  std::map<std::pair<std::thread::id, std::string>, std::unique_ptr<Socket>> sockets_;  // (thread, endpoint)
  std::atomic<std::uint32_t> next_id_{0x80000000u};  // apart from the Engine's ids, for readable logs
};

}  // namespace mktl::detail
