// Polling: one scheduler drives every poll; polls of one item never overlap
// or pile up; a slow poll delays only its own item; period changes take effect
// at once. And client callbacks: a blocked callback holds up only its key.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <latch>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_poll {

using mktl::Json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Counts polls and records the most polls ever running at once.
class Counted : public mktl::Item {
 public:
  Counted(mktl::Daemon& d, std::string key, std::chrono::milliseconds work = 0ms) : Item(d, std::move(key)), work_(work) {}
  void req_poll() override {
    ++polls;  // counted as it starts: a poll running when a test stops polling is already in the count
    int now = ++inside;
    int seen = max_inside;
    while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
    }
    if (work_ > 0ms) {
      std::unique_lock lock(m_);
      cv_.wait_for(lock, work_, [] { return false; });  // busy hardware
    }
    --inside;
  }
  std::atomic<int> polls{0}, inside{0}, max_inside{0};

 private:
  std::chrono::milliseconds work_;
  std::mutex m_;
  std::condition_variable cv_;
};

class PollDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
  void setup() override {
    fast = &add_item<Counted>("fast");
    slow = &add_item<Counted>("slow", 200ms);
    other = &add_item<Counted>("other");
  }
  ~PollDaemon() override { stop(); }
  Counted* fast = nullptr;
  Counted* slow = nullptr;
  Counted* other = nullptr;
};

const char* kItems = R"({"fast": {"type": "numeric"}, "slow": {"type": "numeric"}, "other": {"type": "numeric"}})";

}  // namespace

TEST_CASE("a 1 ms poll runs often, and stopping it takes effect at once", "[poll]") {
  test::TempDir home;
  PollDaemon d("poll", "poll1", Json::parse(kItems), test::isolated(home));
  d.start();
  d.fast->poll(0.001);
  auto start = Clock::now();
  REQUIRE(test::wait_until([&] { return d.fast->polls >= 100; }));
  // 100 polls at 1 ms take about 0.1 s; allow a loaded machine ten times that and more.
  CHECK(Clock::now() - start < 5s);
  d.fast->poll(0);
  // Once stop returns, at most one poll already queued may still run.
  int at_stop = d.fast->polls;
  d.other->poll(0.001);
  REQUIRE(test::wait_until([&] { return d.other->polls >= 50; }));
  CHECK(d.fast->polls <= at_stop + 1);
  CHECK(d.fast->max_inside == 1);
}

TEST_CASE("a poll slower than its period never overlaps or piles up, and delays no other item", "[poll]") {
  test::TempDir home;
  PollDaemon d("poll", "poll1", Json::parse(kItems), test::isolated(home));
  d.start();
  d.slow->poll(0.005);    // every 5 ms, but each poll takes 200 ms
  d.other->poll(0.005);
  REQUIRE(test::wait_until([&] { return d.slow->polls >= 3; }));
  // Meanwhile the other item kept its pace: dozens of polls, not three.
  CHECK(d.other->polls > 20);
  CHECK(d.slow->max_inside == 1);
  // No backlog: stopping leaves at most the one queued poll to run.
  d.slow->poll(0);
  int at_stop = d.slow->polls;
  mktl::Client client(test::client_options(home));
  client.connect(d.rep_endpoint(), "poll");
  CHECK(client.get("poll.other").time >= 0);  // the daemon answers at once meanwhile
  REQUIRE(test::wait_until([&] { return d.slow->inside == 0; }));
  CHECK(d.slow->polls <= at_stop + 1);
}

TEST_CASE("changing a poll period takes effect at once", "[poll]") {
  test::TempDir home;
  PollDaemon d("poll", "poll1", Json::parse(kItems), test::isolated(home));
  d.start();
  d.fast->poll(3600.0);  // hourly: nothing within the test
  d.other->poll(0.002);
  REQUIRE(test::wait_until([&] { return d.other->polls >= 20; }));
  CHECK(d.fast->polls == 0);
  d.fast->poll(0.002);  // now fast, without waiting out the hour
  REQUIRE(test::wait_until([&] { return d.fast->polls >= 20; }));
}

TEST_CASE("a client callback that blocks holds up only its own key", "[poll][client]") {
  test::TempDir home;
  mktl::Daemon d("cb", "cb1", Json::parse(R"({"a": {"type": "numeric"}, "b": {"type": "numeric"}})"),
                 test::isolated(home));
  d.start();
  mktl::Client client(test::client_options(home));
  client.connect(d.rep_endpoint(), "cb");
  std::latch release(1);
  std::atomic<int> a_calls{0};
  auto sa = client.subscribe("cb.a", [&](const std::string&, const mktl::Reading&) {
    ++a_calls;
    release.wait();  // stuck until the end of the test
  });
  test::Collector b;
  auto sb = client.subscribe("cb.b", b.callback());
  REQUIRE(test::until_subscribed([&](int i) { client.set("cb.a", Json(i)); }, [&] { return a_calls > 0; }));
  REQUIRE(test::until_subscribed([&](int i) { client.set("cb.b", Json(1000 + i)); }, [&] { return b.size() > 0; }));
  for (int i = 0; i < 20; ++i) client.set("cb.b", Json(i));
  CHECK(b.wait_for_value(Json(19)));
  release.count_down();
  d.stop();
}

}  // namespace test_poll
