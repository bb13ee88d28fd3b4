// The daemon's backlog of unanswered requests is bounded (issue 14, "Faults
// and load"): a flood of SETs to a persistent item from raw DEALERs that did
// not wait was read off the ROUTER as fast as it came and queued for the
// item's strand, 232,000 requests and 200 MB in 2 s, growing with the flood's
// length. Beyond ServerOptions::max_pending unanswered requests a request
// gets a RuntimeError REP at once.
#include <catch2/catch.hpp>

#include "transport/server.hpp"

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_request_backlog {

namespace {

using namespace std::chrono_literals;

struct Answer {
  std::string id, type, payload;
};

void send_get(zmq::socket_t& dealer, const std::string& id) {
  const std::vector<std::string> frames = {"a", id, "GET", "s.k", "", "{}"};
  for (std::size_t i = 0; i < frames.size(); ++i)
    dealer.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

bool receive(zmq::socket_t& dealer, Answer& out, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return false;
  std::vector<zmq::message_t> frames;
  (void)zmq::recv_multipart(dealer, std::back_inserter(frames));
  REQUIRE(frames.size() == 6);
  out = {frames[1].to_string(), frames[2].to_string(), frames[5].to_string()};
  return true;
}

}  // namespace

TEST_CASE("requests beyond max_pending unanswered ones are refused at once, and taken again once some are answered",
          "[transport]") {
  mktl::transport::ServerOptions options;
  options.rep_endpoint = "tcp://127.0.0.1:0";
  options.pub_endpoint.clear();
  options.max_pending = 3;
  std::mutex mutex;
  std::vector<mktl::transport::Reply> held;  // requests the "item code" has not answered yet
  mktl::transport::Server server(options, [&](mktl::transport::Incoming&&, mktl::transport::Reply reply) {
    std::lock_guard lock(mutex);
    held.push_back(std::move(reply));
  });
  server.start();

  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(server.rep_endpoint());
  for (int i = 1; i <= 5; ++i) send_get(dealer, "r" + std::to_string(i));

  // Five ACKs; REPs only for r4 and r5, refused.
  int acks = 0;
  std::vector<Answer> reps;
  Answer a;
  while ((acks < 5 || reps.size() < 2) && receive(dealer, a, 2000ms)) {
    if (a.type == "ACK") ++acks;
    if (a.type == "REP") reps.push_back(a);
  }
  CHECK(acks == 5);
  REQUIRE(reps.size() == 2);
  for (auto& rep : reps) {
    CHECK((rep.id == "r4" || rep.id == "r5"));
    CHECK(rep.payload.find("RuntimeError") != std::string::npos);
    CHECK(rep.payload.find("the daemon is busy: 3 requests are waiting to be served") != std::string::npos);
  }
  {
    std::lock_guard lock(mutex);
    REQUIRE(held.size() == 3);
    held[0].send(R"({"value": 1})");  // one answered: room for one more
  }
  CHECK(receive(dealer, a, 2000ms));
  CHECK(a.id == "r1");
  CHECK(a.type == "REP");

  send_get(dealer, "r6");
  CHECK(receive(dealer, a, 2000ms));
  CHECK(a.id == "r6");
  CHECK(a.type == "ACK");
  CHECK_FALSE(receive(dealer, a, 200ms));  // taken, not refused: it waits for its answer
  {
    std::lock_guard lock(mutex);
    CHECK(held.size() == 4);
  }
  server.stop();
  std::lock_guard lock(mutex);
  held.clear();  // dropped unanswered: the Replies send their own errors to a stopped server
}

}  // namespace test_request_backlog
