// Broadcasts dropped for a subscriber that does not keep up (issue 14, "Found
// from outside": 140,000 of 200,000 broadcasts were dropped for a subscriber
// that never read, with nothing in the log and no counter). The daemon's
// publish socket is an XPUB with NODROP: a full queue is seen; a broadcast
// waits for a subscriber that reads, and is dropped for one that stopped,
// counted (Server::broadcasts_dropped, the built-in _ALIASdrops) and logged;
// every other subscriber still gets every broadcast.
#include <catch2/catch.hpp>

#include "runtime/runtime.hpp"
#include "support.hpp"
#include "transport/server.hpp"

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_broadcast_drops {

namespace {

using namespace std::chrono_literals;

// The sequence number a test broadcast carries in its payload's first bytes.
std::uint64_t seq_of(const zmq::message_t& payload) {
  std::uint64_t seq = 0;
  if (payload.size() >= sizeof seq) std::memcpy(&seq, payload.data(), sizeof seq);
  return seq;
}

std::shared_ptr<const std::string> payload_of(std::uint64_t seq, std::size_t size) {
  std::string text(size, 'x');
  std::memcpy(text.data(), &seq, sizeof seq);
  return std::make_shared<const std::string>(std::move(text));
}

// Receives one broadcast [topic, version, payload] within `timeout`.
bool receive(zmq::socket_t& sub, std::uint64_t& seq, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return false;
  zmq::message_t frame;
  std::vector<zmq::message_t> frames;
  do {
    (void)sub.recv(frame, zmq::recv_flags::none);
    frames.emplace_back(std::move(frame));
  } while (frames.back().more());
  REQUIRE(frames.size() == 3);
  seq = seq_of(frames[2]);
  return true;
}

// Publishes probes (seq 0) until each of `a` and `b` has received one (their
// subscriptions are in place), then reads what is left of them from `b`.
void await_joined(mktl::transport::Server& server, zmq::socket_t& a, zmq::socket_t& b, std::uint64_t& seq) {
  bool a_in = false, b_in = false;
  for (int i = 0; i < 500 && !(a_in && b_in); ++i) {
    server.publish("t.probe.", payload_of(0, 16));
    a_in = a_in || receive(a, seq, 20ms);
    b_in = b_in || receive(b, seq, 20ms);
  }
  REQUIRE(a_in);
  REQUIRE(b_in);
  while (receive(b, seq, 0ms)) {}
}

}  // namespace

TEST_CASE("a full subscriber queue is counted, and the other subscribers get every broadcast", "[transport]") {
  mktl::transport::ServerOptions options;
  options.rep_endpoint = "tcp://127.0.0.1:0";
  options.pub_endpoint = "tcp://127.0.0.1:0";
  options.pub_hwm = 50;
  mktl::transport::Server server(options, [](mktl::transport::Incoming&&, mktl::transport::Reply) {});
  server.start();

  zmq::context_t context;
  zmq::socket_t slow(context, zmq::socket_type::sub), live(context, zmq::socket_type::sub);
  slow.set(zmq::sockopt::rcvhwm, 10);
  slow.set(zmq::sockopt::rcvbuf, 4096);
  for (auto* sub : {&slow, &live}) {
    sub->set(zmq::sockopt::linger, 0);
    sub->set(zmq::sockopt::subscribe, "t.");
    sub->connect(server.pub_endpoint());
  }
  std::uint64_t seq = 0;
  await_joined(server, slow, live, seq);

  // Batches of 20 (under the queue of 50): the live subscriber reads each
  // batch before the next, the slow one never reads again.
  constexpr std::uint64_t kTotal = 3000, kBatch = 20;
  std::uint64_t received = 0;
  bool in_order = true;
  for (std::uint64_t next = 1; next <= kTotal;) {
    const std::uint64_t end = std::min(kTotal + 1, next + kBatch);
    for (; next < end; ++next) server.publish("t.value.", payload_of(next, 16 * 1024));
    while (received + 1 < end) {
      if (!receive(live, seq, 10s)) break;
      if (seq == 0) continue;  // a late probe
      in_order = in_order && seq == received + 1;
      received = seq;
    }
    if (received + 1 < end) break;
  }
  CHECK(in_order);
  CHECK(received == kTotal);  // the live subscriber missed nothing
  CHECK(server.broadcasts_dropped() >= 1);

  // The slow subscriber's queue was bounded: it missed broadcasts.
  std::uint64_t slow_count = 0;
  while (receive(slow, seq, 200ms)) ++slow_count;
  CHECK(slow_count < kTotal);
  server.stop();
}

// Two subscribers with small queues: one reads as fast as it can (slower
// than publish() queues 16 KiB broadcasts, so its queue fills again and
// again), one has stopped reading. The first must get every broadcast, in
// order: a broadcast that meets its full queue waits for it. The second is
// found stalled and dropped for, counted.
TEST_CASE("a subscriber slower than the publisher gets every broadcast, and a stalled one is dropped for", "[transport][flow]") {
  mktl::transport::ServerOptions options;
  options.rep_endpoint = "tcp://127.0.0.1:0";
  options.pub_endpoint = "tcp://127.0.0.1:0";
  options.pub_hwm = 50;
  mktl::transport::Server server(options, [](mktl::transport::Incoming&&, mktl::transport::Reply) {});
  server.start();

  zmq::context_t context;
  zmq::socket_t stalled(context, zmq::socket_type::sub), live(context, zmq::socket_type::sub);
  for (auto* sub : {&stalled, &live}) {
    sub->set(zmq::sockopt::linger, 0);
    sub->set(zmq::sockopt::rcvhwm, 10);
    sub->set(zmq::sockopt::rcvbuf, 4096);
    sub->set(zmq::sockopt::subscribe, "t.");
    sub->connect(server.pub_endpoint());
  }
  std::uint64_t seq = 0;
  await_joined(server, stalled, live, seq);

  constexpr std::uint64_t kTotal = 3000;
  std::atomic<std::uint64_t> published{0};
  std::jthread publisher([&] {
    for (std::uint64_t i = 1; i <= kTotal; ++i) {
      server.publish("t.value.", payload_of(i, 16 * 1024));
      published = i;
    }
  });
  std::uint64_t received = 0;
  bool in_order = true;
  while (received < kTotal && receive(live, seq, 20s)) {
    if (seq == 0) continue;  // a late probe
    in_order = in_order && seq == received + 1;
    received = seq;
  }
  publisher.join();
  CHECK(in_order);
  CHECK(received == kTotal);
  // Counted once for each broadcast the stalled subscriber missed: most of them.
  std::uint64_t stalled_count = 0;
  while (receive(stalled, seq, 200ms)) ++stalled_count;
  INFO("stalled subscriber received " << stalled_count << ", drops counted " << server.broadcasts_dropped());
  CHECK(stalled_count < kTotal);
  CHECK(server.broadcasts_dropped() >= 1);
  CHECK(server.broadcasts_dropped() <= kTotal);
  server.stop();
}

TEST_CASE("while broadcasts wait for a full queue, requests are answered and publishers beyond the bound wait", "[transport][flow]") {
  mktl::transport::ServerOptions options;
  options.rep_endpoint = "tcp://127.0.0.1:0";
  options.pub_endpoint = "tcp://127.0.0.1:0";
  options.pub_hwm = 50;
  options.pub_queue = 100;
  // Longer than this test needs to see the publisher wait, however loaded the machine.
  options.subscriber_grace = 3s;
  mktl::transport::Server server(options, [](mktl::transport::Incoming&&, mktl::transport::Reply reply) {
    reply.send(R"({"value": 1})");
  });
  server.start();

  zmq::context_t context;
  zmq::socket_t stalled(context, zmq::socket_type::sub);
  stalled.set(zmq::sockopt::linger, 0);
  stalled.set(zmq::sockopt::rcvhwm, 10);
  stalled.set(zmq::sockopt::rcvbuf, 4096);
  stalled.set(zmq::sockopt::subscribe, "t.");
  stalled.connect(server.pub_endpoint());
  bool in = false;
  std::uint64_t seq = 0;
  for (int i = 0; i < 500 && !in; ++i) {
    server.publish("t.probe.", payload_of(0, 16));
    in = receive(stalled, seq, 20ms);
  }
  REQUIRE(in);

  // The stalled subscriber's queues and socket buffers take a few hundred
  // 16 KiB broadcasts; then 100 wait in the server, and the publisher waits.
  constexpr std::uint64_t kTotal = 3000;
  std::atomic<std::uint64_t> published{0};
  std::atomic<bool> done{false};
  const auto start = std::chrono::steady_clock::now();
  std::jthread publisher([&] {
    for (std::uint64_t i = 1; i <= kTotal; ++i) {
      server.publish("t.value.", payload_of(i, 16 * 1024));
      published = i;
    }
    done = true;
  });
  REQUIRE(test::wait_until([&] { return published.load() >= 200; }, 20s));

  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(server.rep_endpoint());
  const std::vector<std::string> request = {"a", "00000001", "GET", "s.k", "", "{}"};
  for (std::size_t i = 0; i < request.size(); ++i)
    dealer.send(zmq::buffer(request[i]), i + 1 < request.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  std::vector<std::string> types;
  for (int i = 0; i < 2; ++i) {
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, 2s) > 0);
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(dealer, std::back_inserter(frames));
    REQUIRE(frames.size() == 6);
    types.push_back(frames[2].to_string());
  }
  CHECK(types == std::vector<std::string>{"ACK", "REP"});
  if (std::chrono::steady_clock::now() - start < options.subscriber_grace) {
    // Still within the grace: the publisher is held back.
    CHECK_FALSE(done.load());
    CHECK(published.load() < kTotal);
  }
  // Once the subscriber counts as stalled, the rest goes out, dropped for it.
  CHECK(test::wait_until([&] { return done.load(); }, 60s));
  publisher.join();
  CHECK(server.broadcasts_dropped() >= 1);
  server.stop();
}

TEST_CASE("with subscribers that keep up nothing is counted as dropped", "[transport]") {
  mktl::transport::ServerOptions options;
  options.rep_endpoint = "tcp://127.0.0.1:0";
  options.pub_endpoint = "tcp://127.0.0.1:0";
  mktl::transport::Server server(options, [](mktl::transport::Incoming&&, mktl::transport::Reply) {});
  server.start();
  zmq::context_t context;
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  // Many topics: the XPUB hands each subscription up, and the server drains
  // them. (A SUB drops subscriptions beyond its send queue of 1000.)
  for (int i = 0; i < 900; ++i) sub.set(zmq::sockopt::subscribe, "t." + std::to_string(i) + ".");
  sub.connect(server.pub_endpoint());
  std::uint64_t seq = 0;
  bool in = false;
  // The last subscription sent is in place: so are all before it.
  for (int i = 0; i < 500 && !in; ++i) {
    server.publish("t.899.", payload_of(0, 16));
    in = receive(sub, seq, 20ms);
  }
  REQUIRE(in);
  while (receive(sub, seq, 0ms)) {}
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    server.publish("t." + std::to_string(i % 900) + ".", payload_of(i, 64));
    INFO("broadcast " << i);
    REQUIRE(receive(sub, seq, 10s));
    CHECK(seq == i);
  }
  CHECK(server.broadcasts_dropped() == 0);
  server.stop();
}

TEST_CASE("the built-in _ALIASdrops item counts broadcasts dropped for a subscriber", "[transport][items]") {
  test::TempDir home;
  mktl::Daemon daemon("dr", "dr1", mktl::Json::parse(R"({"v": {"type": "string"}})"), test::isolated(home));
  daemon.start();
  mktl::Client client(test::client_options(home));
  client.connect(daemon.rep_endpoint(), "dr");
  CHECK(client.get("dr._dr1drops").value == 0);
  CHECK(client.description("dr._dr1drops").value("type", "") == "numeric");

  // A subscriber that never reads, and more broadcasts than its queue
  // (10,000), its socket's and the kernel's buffers hold.
  zmq::context_t context;
  zmq::socket_t stalled(context, zmq::socket_type::sub);
  stalled.set(zmq::sockopt::linger, 0);
  stalled.set(zmq::sockopt::rcvhwm, 10);
  stalled.set(zmq::sockopt::rcvbuf, 4096);
  stalled.set(zmq::sockopt::subscribe, "");
  stalled.connect(daemon.pub_endpoint());
  bool in = false;
  for (int i = 0; i < 500 && !in; ++i) {
    daemon.item("v").publish(mktl::Json("probe " + std::to_string(i)));
    zmq::pollitem_t item{stalled.handle(), 0, ZMQ_POLLIN, 0};
    in = zmq::poll(&item, 1, 20ms) > 0;
  }
  REQUIRE(in);
  const std::string filler(1024, 'f');
  std::uint64_t published = 0;
  CHECK(test::wait_until(
      [&] {
        for (int i = 0; i < 1000; ++i) daemon.item("v").publish(mktl::Json(filler + std::to_string(published++)));
        return daemon.runtime().server()->broadcasts_dropped() > 0 || published > 100000;
      },
      60s));
  CHECK(client.get("dr._dr1drops").value.get<std::int64_t>() >= 1);
  daemon.stop();
}

}  // namespace test_broadcast_drops
