// Item hooks (req_refresh, validate, req_set, poll, watch) and the built-in
// items of every daemon, through a client.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <future>
#include <stdexcept>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_items {

using mktl::Json;
using namespace std::chrono_literals;

namespace {

const char* kItems = R"({
  "refreshed": {"type": "numeric"},
  "checked": {"type": "numeric"},
  "failing": {"type": "numeric"},
  "oserror": {"type": "numeric"},
  "quiet": {"type": "numeric"},
  "polled": {"type": "numeric"},
  "busy": {"type": "numeric"},
  "slow": {"type": "numeric", "initial": 0},
  "fast": {"type": "numeric"},
  "source": {"type": "numeric"},
  "derived": {"type": "numeric"}
})";

// Counts refreshes; each refresh yields the next count.
class Refreshed : public mktl::Item {
 public:
  using Item::Item;
  std::optional<mktl::Reading> req_refresh() override { return mktl::Reading(Json(++count)); }
  std::atomic<int> count{0};
};

// Refuses values above 100; turns negative values into 0.
class Checked : public mktl::Item {
 public:
  using Item::Item;
  mktl::Reading validate(mktl::Reading r) override {
    double v = r.value.get<double>();
    if (v > 100) throw mktl::ValueError("too hot: " + r.value.dump());
    if (v < 0) r.value = 0;
    return r;
  }
};

class Failing : public mktl::Item {
 public:
  using Item::Item;
  void req_set(const mktl::Reading&) override { throw std::runtime_error("hardware on fire"); }
};

class OsFailing : public mktl::Item {
 public:
  using Item::Item;
  void req_set(const mktl::Reading&) override { throw mktl::Error("OSError", "no such device"); }
};

class Quiet : public mktl::Item {
 public:
  Quiet(mktl::Daemon& d, std::string key) : Item(d, std::move(key)) { set_publish_on_set(false); }
  void req_set(const mktl::Reading& r) override { last = r.value.get<int>(); }
  std::atomic<int> last{-1};
};

// Every hook checks that it runs alone.
class Busy : public mktl::Item {
 public:
  using Item::Item;
  struct Guard {
    Busy& b;
    explicit Guard(Busy& busy) : b(busy) {
      int now = ++b.inside;
      int seen = b.max_inside;
      while (now > seen && !b.max_inside.compare_exchange_weak(seen, now)) {
      }
      for (int i = 0; i < 100; ++i) std::this_thread::yield();
    }
    ~Guard() { --b.inside; }
  };
  std::optional<mktl::Reading> req_refresh() override {
    Guard g(*this);
    ++refreshes;
    return mktl::Reading(Json(refreshes.load()));
  }
  void req_set(const mktl::Reading&) override {
    Guard g(*this);
    ++sets;
  }
  mktl::Reading validate(mktl::Reading r) override {
    Guard g(*this);
    return r;
  }
  std::atomic<int> inside{0}, max_inside{0}, refreshes{0}, sets{0};
};

// A SET that blocks until the test releases it.
class Slow : public mktl::Item {
 public:
  using Item::Item;
  void req_set(const mktl::Reading&) override {
    entered = true;
    released.wait_for(20s);
  }
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> entered{false};
};

// Ten times `source`, refreshed whenever source publishes.
class Derived : public mktl::Item {
 public:
  Derived(mktl::Daemon& d, std::string key, mktl::Item& source) : Item(d, std::move(key)), source_(source) {
    watch(source);
  }
  std::optional<mktl::Reading> req_refresh() override {
    auto v = source_.current().value;
    if (!v.is_number()) return std::nullopt;
    return mktl::Reading(Json(v.get<double>() * 10));
  }

 private:
  mktl::Item& source_;
};

class HookDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
  void setup() override {
    refreshed = &add_item<Refreshed>("refreshed");
    add_item<Checked>("checked");
    add_item<Failing>("failing");
    add_item<OsFailing>("oserror");
    quiet = &add_item<Quiet>("quiet");
    polled = &add_item<Refreshed>("polled");
    busy = &add_item<Busy>("busy");
    slow = &add_item<Slow>("slow");
    fast = &add_item<Refreshed>("fast");
    auto& source = add_item<mktl::Item>("source");
    add_item<Derived>("derived", source);
  }
  Refreshed* refreshed = nullptr;
  Quiet* quiet = nullptr;
  Refreshed* polled = nullptr;
  Busy* busy = nullptr;
  Slow* slow = nullptr;
  Refreshed* fast = nullptr;
};

struct Fixture {
  test::TempDir home;
  HookDaemon daemon{"demo", "demo1", Json::parse(kItems), test::isolated(home)};
  std::unique_ptr<mktl::Client> client;
  Fixture() {
    daemon.start();
    client = std::make_unique<mktl::Client>(test::client_options(home));
    client->connect(daemon.rep_endpoint(), "demo");
  }
  ~Fixture() {
    daemon.slow->release.set_value();
    client.reset();
    daemon.stop();
  }
};

}  // namespace

TEST_CASE("req_refresh serves a GET with refresh", "[items]") {
  Fixture f;
  auto& c = *f.client;
  CHECK(c.get("demo.refreshed").value.is_null());  // a plain GET runs no hook
  CHECK(f.daemon.refreshed->count == 0);
  CHECK(c.get("demo.refreshed", true).value == 1);
  CHECK(c.get("demo.refreshed", true).value == 2);
  CHECK(c.get("demo.refreshed").value == 2);  // the cached value
  CHECK(f.daemon.refreshed->count == 2);
}

TEST_CASE("validate rejects and converts, and req_set errors reach the client", "[items]") {
  Fixture f;
  auto& c = *f.client;
  auto e = test::remote_error([&] { c.set("demo.checked", Json(150)); });
  CHECK(e.type() == "ValueError");
  CHECK(e.text() == "too hot: 150");
  c.set("demo.checked", Json(-5));
  CHECK(c.get("demo.checked").value == 0);
  c.set("demo.checked", Json("42"));  // the type's own conversion runs first
  CHECK(c.get("demo.checked").value == 42);

  e = test::remote_error([&] { c.set("demo.failing", Json(1)); });
  CHECK(e.type() == "RuntimeError");
  CHECK(e.text() == "hardware on fire");
  CHECK(c.get("demo.failing").value.is_null());  // a failed SET publishes nothing

  e = test::remote_error([&] { c.set("demo.oserror", Json(1)); });
  CHECK(e.type() == "OSError");
  CHECK(e.text() == "no such device");
}

TEST_CASE("publish_on_set false leaves publishing to the item", "[items]") {
  Fixture f;
  auto& c = *f.client;
  c.set("demo.quiet", Json(5));
  CHECK(f.daemon.quiet->last == 5);
  CHECK(c.get("demo.quiet").value.is_null());
  f.daemon.quiet->publish(Json(6));
  CHECK(c.get("demo.quiet").value == 6);
}

TEST_CASE("poll(period) publishes repeatedly and poll(0) stops", "[items]") {
  Fixture f;
  auto& c = *f.client;
  test::Collector col;
  auto sub = c.subscribe("demo.polled", col.callback());
  f.daemon.polled->poll(0.01);
  CHECK(f.daemon.polled->poll_period() == 0.01);
  REQUIRE(col.wait_for_count(5));
  CHECK(c.get("demo.polled").value.get<int>() >= 5);
  f.daemon.polled->poll(0);
  CHECK(f.daemon.polled->poll_period() == 0);
  int stopped_at = f.daemon.polled->count;
  // A poll in progress and one already queued may still finish; 20 periods pass otherwise quiet.
  CHECK_FALSE(test::wait_until([&] { return f.daemon.polled->count > stopped_at + 2; }, 200ms));
}

TEST_CASE("hooks of one item never run concurrently", "[items]") {
  Fixture f;
  auto& c = *f.client;
  f.daemon.busy->poll(0.001);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < 40; ++i) {
          if ((i + t) % 2)
            c.get("demo.busy", true);
          else
            c.set("demo.busy", Json(i));
        }
      } catch (const std::exception&) {
        ++failures;
      }
    });
  std::vector<mktl::Future<void>> futures;
  for (int i = 0; i < 100; ++i) futures.push_back(c.set_async("demo.busy", Json(1000 + i)));
  for (auto& th : threads) th.join();
  for (auto& fu : futures) REQUIRE(fu.wait_for(20s) == std::future_status::ready);
  f.daemon.busy->poll(0);
  CHECK(failures == 0);
  CHECK(f.daemon.busy->sets >= 180);
  CHECK(f.daemon.busy->refreshes >= 80);
  CHECK(f.daemon.busy->max_inside == 1);
}

TEST_CASE("a slow hook on one item does not delay another item", "[items]") {
  Fixture f;
  auto& c = *f.client;
  auto blocked = c.set_async("demo.slow", Json(1));
  REQUIRE(test::wait_until([&] { return f.daemon.slow->entered.load(); }));
  // Item B answers, with and without running its hooks, while A blocks.
  CHECK(c.get("demo.fast", true, 5.0).value == 1);
  CHECK(c.get("demo.fast", false, 5.0).value == 1);
  c.set("demo.fast", Json(7), 5.0);
  CHECK(c.get("demo.fast", false, 5.0).value == 7);
  // A's own cached value is still served.
  CHECK(c.get("demo.slow", false, 5.0).value == 0);
  CHECK(blocked.wait_for(0s) == std::future_status::timeout);
  f.daemon.slow->release.set_value();
  f.daemon.slow->release = std::promise<void>();  // the fixture releases again
  REQUIRE(blocked.wait_for(20s) == std::future_status::ready);
  blocked.get();
  CHECK(c.get("demo.slow").value == 1);
}

TEST_CASE("a Future wakes the threads blocked on it, and is used up by get()", "[items][client]") {
  Fixture f;
  auto& c = *f.client;
  mktl::Future<void> none;
  CHECK_FALSE(none.valid());
  CHECK_FALSE(none.ready());
  CHECK_THROWS_AS(none.get(), std::future_error);
  CHECK_THROWS_AS(none.wait_for(1s), std::future_error);

  auto blocked = c.set_async("demo.slow", Json(3));
  REQUIRE(test::wait_until([&] { return f.daemon.slow->entered.load(); }));
  auto later = c.get_async("demo.fast", true);  // answered while the SET is held
  CHECK(later.get().value == 1);
  CHECK_FALSE(later.valid());
  CHECK_FALSE(blocked.ready());
  CHECK(blocked.wait_until(std::chrono::steady_clock::now() + 10ms) == std::future_status::timeout);
  // One thread blocks in wait(), this one in wait_for(); both wake on the REP.
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    blocked.wait();
    woke = true;
  });
  f.daemon.slow->release.set_value();
  f.daemon.slow->release = std::promise<void>();
  REQUIRE(blocked.wait_for(20s) == std::future_status::ready);
  waiter.join();
  CHECK(woke);
  CHECK(blocked.ready());
  blocked.get();
  CHECK_FALSE(blocked.valid());
  // A failed request's error comes out of get(), as the daemon reported it.
  auto refused = c.set_async("demo.fast", Json("not a number"));
  CHECK_THROWS_AS(refused.get(), mktl::Error);
}

TEST_CASE("watch(other) refreshes an item when the other publishes", "[items]") {
  Fixture f;
  auto& c = *f.client;
  c.set("demo.source", Json(4));
  CHECK(test::wait_until([&] { return c.get("demo.derived").value == 40.0; }));
  c.set("demo.source", Json(5));
  CHECK(test::wait_until([&] { return c.get("demo.derived").value == 50.0; }));
}

TEST_CASE("built-in items of every daemon", "[items]") {
  Fixture f;
  auto& c = *f.client;
  CHECK(c.get("demo._demo1pid").value == static_cast<std::int64_t>(::getpid()));
  CHECK(c.get("demo._demo1uuid").value == f.daemon.uuid());
  CHECK(c.get("demo._demo1host").value == "127.0.0.1");
  CHECK(c.get("demo._demo1mem").value.get<double>() > 0);

  Json cat = c.get("demo._demo1cat").value;
  Json block = f.daemon.catalog_block();
  REQUIRE(cat.is_object());
  CHECK(cat["uuid"] == block["uuid"]);
  CHECK(cat["store"] == "demo");
  CHECK(cat["alias"] == "demo1");
  CHECK(mktl::json::dump(cat["hash"]) == mktl::json::dump(block["hash"]));
  CHECK(cat["items"] == block["items"]);
  CHECK(cat["provenance"] == block["provenance"]);

  CHECK(c.get("demo._demo1dev").value == "");
  c.set("demo._demo1dev", Json("a test daemon"));
  CHECK(c.get("demo._demo1dev").value == "a test daemon");
  auto e = test::remote_error([&] { c.set("demo._demo1pid", Json(1)); });
  CHECK(e.type() == "TypeError");

  // The uptime heartbeat is published every second.
  test::Collector clk;
  auto sub = c.subscribe("demo._demo1clk", clk.callback());
  REQUIRE(clk.wait_for_count(2, 10s));
  std::lock_guard lock(clk.mutex);
  CHECK(clk.readings[1].value.get<double>() > clk.readings[0].value.get<double>());
  CHECK(clk.readings[0].value.get<double>() >= 0);
}

}  // namespace test_items
