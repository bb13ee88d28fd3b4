// The request/broadcast server under a daemon (and a registry): one I/O thread
// owns a bound ROUTER and a bound PUB socket, ACKs every request the moment it
// is decoded, answers malformed requests with an error REP when their id can be
// read, and hands each good request to a dispatch function.
//
// Threading promise: `dispatch` runs on the I/O thread and must not block: it
// answers at once (a cached value) or moves the Reply to a worker. Reply,
// publish() and stop() may be used from any thread.
#pragma once

#include "protocol/codec.hpp"
#include "security/policy.hpp"

#include <mktl/bulk.hpp>
#include <mktl/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mktl::transport {

struct ServerShared;

// The answer to one request. Move-only; answering twice is a no-op. A Reply
// destroyed unanswered sends an error REP (RuntimeError "request dropped") so
// that no client ever waits for nothing. With NO_REP nothing is sent.
class Reply {
 public:
  Reply() = default;
  Reply(Reply&&) noexcept = default;
  Reply& operator=(Reply&&) noexcept;
  ~Reply();

  void send(std::string payload, std::optional<Bulk> bulk = std::nullopt);
  // Shares an already-encoded payload (the cached GET answer) without copying.
  void send_shared(std::shared_ptr<const std::string> payload, std::optional<Bulk> bulk = std::nullopt);
  void error(std::string_view type, std::string_view text);
  explicit operator bool() const noexcept { return static_cast<bool>(shared_); }
  const std::string& id() const noexcept { return id_; }

 private:
  friend class Server;
  std::shared_ptr<ServerShared> shared_;
  std::string identity_;
  std::string id_;
  std::string target_;
  bool wants_rep_ = true;
};

// One decoded request as the dispatch function sees it.
struct Incoming {
  protocol::MessageType type;
  std::string target;
  std::uint64_t flags = 0;
  std::string payload;          // raw JSON text (may be empty)
  std::optional<Bulk> bulk;     // the bulk frame, zero-copy
};

struct ServerOptions {
  std::string rep_endpoint = "tcp://*:0";
  std::string pub_endpoint = "tcp://*:0";   // empty = no PUB socket
  int pub_hwm = 10000;
  // Largest request, all frames together, in bytes: a bigger one gets a
  // ValueError REP (when its id can be read) and is released at once. A
  // single frame beyond twice this plus 1 MiB makes ZeroMQ drop the
  // connection instead of buffering it whole. 0 = no limit.
  std::uint64_t max_request_bytes = 128ull << 20;
  // Requests handed to dispatch and not answered yet (waiting for item code,
  // the disk or a transaction), at most: beyond it a request gets a
  // RuntimeError REP at once, so that a flood of requests the daemon cannot
  // serve as fast as they come is refused instead of queued without bound.
  std::size_t max_pending = 10000;
  // Broadcasts waiting for the I/O thread, at most (and their payload and
  // bulk bytes, at most): a thread that publishes beyond either waits until
  // there is room (docs/reliability.md). Broadcasts published on the I/O
  // thread itself (a SET answered inline) never wait: past the bound the I/O
  // thread stops reading requests until it is below again.
  std::size_t pub_queue = 10000;
  std::uint64_t pub_queue_bytes = 64ull << 20;
  // A subscriber whose queue is full waits (the broadcast stays queued, the
  // publishers behind it wait) as long as it takes bytes; one that has taken
  // nothing for this long while bytes wait for it is stalled, and broadcasts
  // are then dropped for it (counted: broadcasts_dropped()). A broadcast
  // waits at most 10 times this, whatever the reason. 0 = no waiting: a full
  // queue drops at once.
  std::chrono::milliseconds subscriber_grace{200};
  // CurveZMQ on both sockets, clients admitted by the policy's ZAP domain,
  // and each request checked against its ACL (PermissionError REP). Null =
  // plain sockets, every request served.
  std::shared_ptr<const security::Policy> security = nullptr;
};

class Server {
 public:
  using Dispatch = std::function<void(Incoming&& request, Reply reply)>;
  Server(ServerOptions options, Dispatch dispatch);
  ~Server();   // stop()s

  // Binds and starts the I/O thread; throws mktl::Error on bind failure.
  void start();
  // Stops taking new requests (they wait in ZeroMQ's queues) while replies
  // and broadcasts still go out: the first step of a clean shutdown.
  void stop_receiving();
  // Stops; messages already queued are sent first; joins the thread.
  void stop();

  // Bound endpoints with their real ports ("tcp://0.0.0.0:40123").
  std::string rep_endpoint() const;
  std::string pub_endpoint() const;
  int rep_port() const;
  int pub_port() const;

  // Queue a broadcast [topic, 'a', payload(, bulk)]; any thread. The payload
  // is shared, never re-serialised per subscriber.
  void publish(std::string topic, std::shared_ptr<const std::string> payload, std::optional<Bulk> bulk = std::nullopt);

  // The request path without sockets, for the fuzzer (tests/fuzz/): on a
  // Server that was never start()ed, runs `frames` (the ROUTER identity
  // first, as recv_multipart gives them) through the I/O thread's own
  // decoding, ACK and dispatch, then `settle` (which waits for the work the
  // dispatch handed elsewhere), then the reply queue. Returns every frame set
  // the ROUTER would have sent, identity first. One caller at a time.
  std::vector<std::vector<std::string>> exchange(std::vector<std::string> frames, const std::function<void()>& settle);

  // Broadcasts dropped for a subscriber since start, once per subscriber
  // that missed one: each broadcast sent while a subscriber was stalled on
  // its topic, and each sent after a full queue waited its longest. Every
  // other subscriber got them. Any thread.
  std::uint64_t broadcasts_dropped() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mktl::transport
