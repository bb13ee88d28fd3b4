// Item code that blocks: a request whose hook misses the daemon's hook
// timeout is answered with TimeoutError by the daemon, requests queued behind
// it time out without running, and other items keep working even when the
// stuck hook holds the only worker thread.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <stdexcept>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_hook_deadline {

using namespace std::chrono_literals;
using mktl::Json;

namespace {

// A SET that blocks until the test releases it.
class Stuck : public mktl::Item {
 public:
  using Item::Item;
  void req_set(const mktl::Reading& r) override {
    ++entered;
    released.wait();
    const bool fail = fail_after_release;
    last = r.value.get<int>();
    ++left;  // the last touch of *this: the test may destroy the daemon now
    // After stop(), the daemon (and this item) may be gone: leave without
    // returning into code that would use them.
    if (fail) throw std::runtime_error("released after the daemon stopped");
  }
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> entered{0}, left{0}, last{-1};
  std::atomic<bool> fail_after_release{false};
};

// A GET that runs item code (req_get overridden), so it needs a worker.
class Counter : public mktl::Item {
 public:
  using Item::Item;
  mktl::Reading req_get(const mktl::Request&) override { return mktl::Reading(Json(++count)); }
  std::atomic<int> count{0};
};

class StuckDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
  void setup() override {
    stuck = &add_item<Stuck>("stuck");
    counter = &add_item<Counter>("counter");
  }
  Stuck* stuck = nullptr;
  Counter* counter = nullptr;
};

const char* kItems = R"({"stuck": {"type": "numeric"}, "counter": {"type": "numeric", "settable": false}})";

mktl::DaemonOptions one_worker(const test::TempDir& home, double hook_timeout) {
  auto o = test::isolated(home);
  o.workers = 1;
  o.hook_timeout = hook_timeout;
  return o;
}

}  // namespace

TEST_CASE("a hook past the hook timeout gets TimeoutError and other items keep working", "[items][deadline]") {
  test::TempDir home;
  StuckDaemon daemon("demo", "demo1", Json::parse(kItems), one_worker(home, 0.3));
  daemon.start();
  auto options = test::client_options(home);
  options.timeout = 30;  // the daemon's deadline must answer first
  mktl::Client client(options);
  client.connect(daemon.rep_endpoint(), "demo");

  // The first SET holds the only worker; a second one queues behind it.
  auto first = client.set_async("demo.stuck", mktl::Reading(Json(1)));
  REQUIRE(test::wait_until([&] { return daemon.stuck->entered == 1; }));
  auto second = client.set_async("demo.stuck", mktl::Reading(Json(2)));

  auto e1 = test::remote_error([&] { first.get(); });
  CHECK(e1.type() == "TimeoutError");
  CHECK_THAT(e1.text(), Catch::Contains("demo.stuck req_set did not return within 0.3 s"));
  auto e2 = test::remote_error([&] { second.get(); });
  CHECK(e2.type() == "TimeoutError");
  CHECK_THAT(e2.text(), Catch::Contains("waited behind"));

  // The stuck hook still holds the pool's only thread: a replacement serves
  // the other item.
  CHECK(client.get("demo.counter").value == 1);
  CHECK(client.get("demo.counter").value == 2);

  // Released, the hook ends; its late answer is dropped, and the SET queued
  // behind it never ran (its client was told it failed).
  daemon.stuck->release.set_value();
  REQUIRE(test::wait_until([&] { return daemon.stuck->left == 1; }));
  CHECK(daemon.stuck->last == 1);
  client.set("demo.stuck", Json(3));
  CHECK(daemon.stuck->entered == 2);
  CHECK(daemon.stuck->last == 3);
  CHECK(client.get("demo.stuck").value == 3);
  daemon.stop();
}

TEST_CASE("stopping with a hook that never returns ends after the hook timeout", "[items][deadline]") {
  test::TempDir home;
  StuckDaemon daemon("demo", "demo1", Json::parse(kItems), one_worker(home, 0.2));
  daemon.start();
  auto options = test::client_options(home);
  mktl::Client client(options);
  client.connect(daemon.rep_endpoint(), "demo");
  daemon.stuck->fail_after_release = true;
  auto pending = client.set_async("demo.stuck", mktl::Reading(Json(1)));
  REQUIRE(test::wait_until([&] { return daemon.stuck->entered == 1; }));
  daemon.stop();  // returns: the worker held by the hook is left behind
  auto e = test::remote_error([&] { pending.get(); });
  CHECK(e.type() == "TimeoutError");
  // Let the abandoned thread finish before the item it runs in goes away.
  daemon.stuck->release.set_value();
  REQUIRE(test::wait_until([&] { return daemon.stuck->left == 1; }));
}

TEST_CASE("a hook timeout of 0 waits for item code as long as it takes", "[items][deadline]") {
  test::TempDir home;
  StuckDaemon daemon("demo", "demo1", Json::parse(kItems), one_worker(home, 0));
  daemon.start();
  mktl::Client client(test::client_options(home));
  client.connect(daemon.rep_endpoint(), "demo");
  auto pending = client.set_async("demo.stuck", mktl::Reading(Json(7)));
  REQUIRE(test::wait_until([&] { return daemon.stuck->entered == 1; }));
  CHECK(pending.wait_for(50ms) == std::future_status::timeout);
  daemon.stuck->release.set_value();
  pending.get();
  CHECK(daemon.stuck->last == 7);
  daemon.stop();
}

}  // namespace test_hook_deadline
