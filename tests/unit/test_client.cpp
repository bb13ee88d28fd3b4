// mktl::Client against an in-process daemon, and against raw ROUTERs that
// misbehave on purpose (no ACK; REP before ACK).
#include "support.hpp"
#include "skip.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_client {

using mktl::Json;
using namespace std::chrono_literals;

namespace {

const char* kItems = R"({
  "temp": {"type": "numeric", "units": "degC", "initial": 20.5},
  "ro": {"type": "numeric", "settable": false, "initial": 1},
  "mode": {"type": "enumerated", "enumerators": {"0": "Off", "1": "On", "2": "Auto"}},
  "name": {"type": "string"},
  "seq": {"type": "numeric"}
})";

// Records the values its SETs apply, in the order they ran.
class Recorder : public mktl::Item {
 public:
  using Item::Item;
  void req_set(const mktl::Reading& value) override {
    std::lock_guard lock(mutex);
    applied.push_back(value.value.get<int>());
  }
  std::mutex mutex;
  std::vector<int> applied;
};

class ClientDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
  void setup() override { recorder = &add_item<Recorder>("seq"); }
  Recorder* recorder = nullptr;
};

struct Fixture {
  test::TempDir home;
  ClientDaemon daemon{"demo", "demo1", Json::parse(kItems), test::isolated(home)};
  std::unique_ptr<mktl::Client> client;
  Fixture() {
    daemon.start();
    client = std::make_unique<mktl::Client>(test::client_options(home));
    REQUIRE(client->connect(daemon.rep_endpoint(), "demo") == std::vector<std::string>{"demo"});
  }
  ~Fixture() {
    client.reset();
    daemon.stop();
  }
};

// A ROUTER that serves `demo._catalog` properly and answers every other
// request in its own wrong way.
struct FakeDaemon {
  // ack_only_x: requests for x get an ACK and nothing more, all others are
  // answered properly.
  // proper: ACK, then REP.
  enum class Mode { never_ack, rep_before_ack, ack_only, ack_only_x, proper };
  std::atomic<Mode> mode;
  std::atomic<int> advertised_rep{0};  // the rep port its catalog names (0: its own)
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  zmq::socket_t pub{context, zmq::socket_type::pub};
  int rep_port = 0, pub_port = 0;
  std::atomic<int> requests{0};
  std::jthread thread;

  static int port_of(zmq::socket_t& s) {
    auto ep = s.get(zmq::sockopt::last_endpoint);
    return std::stoi(ep.substr(ep.rfind(':') + 1));
  }
  explicit FakeDaemon(Mode m) : mode(m) {
    router.set(zmq::sockopt::linger, 0);
    pub.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    pub.bind("tcp://127.0.0.1:*");
    rep_port = port_of(router);
    pub_port = port_of(pub);
    thread = std::jthread([this](std::stop_token st) { loop(st); });
  }
  ~FakeDaemon() { close(); }
  // Gone, as a killed daemon: its connections close.
  void close() {
    if (thread.joinable()) {
      thread.request_stop();
      thread.join();
    }
    router.close();
    pub.close();
  }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(rep_port); }
  Json block() const {
    Json prov = {{"stratum", 0}, {"hostname", "127.0.0.1"}, {"rep", advertised_rep ? advertised_rep.load() : rep_port},
                 {"pub", pub_port}};
    return {{"store", "demo"},
            {"alias", "fake"},
            {"uuid", "00000000-0000-4000-8000-000000000001"},
            {"time", 1.0},
            {"hash", 1},
            {"provenance", Json::array({prov})},
            {"items", {{"x", {{"type", "numeric"}}}, {"y", {{"type", "numeric"}}}}}};
  }
  void send(const std::vector<std::string>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i)
      router.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  void loop(std::stop_token st) {
    while (!st.stop_requested()) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(10)) <= 0) continue;
      std::vector<std::string> f;
      while (true) {
        zmq::message_t m;
        (void)router.recv(m, zmq::recv_flags::none);
        f.push_back(m.to_string());
        if (!m.more()) break;
      }
      if (f.size() < 7) continue;
      const std::string &identity = f[0], &id = f[2], &target = f[4];
      if (target == "demo._catalog") {
        Json value = {{block()["uuid"].get<std::string>(), block()}};
        send({identity, "a", id, "ACK", "", "", ""});
        send({identity, "a", id, "REP", target, "", mktl::json::dump(Json{{"value", value}, {"time", 1.0}})});
        continue;
      }
      ++requests;
      if (mode == Mode::never_ack) continue;
      if (mode == Mode::ack_only || (mode == Mode::ack_only_x && target == "demo.x")) {
        send({identity, "a", id, "ACK", "", "", ""});
        continue;
      }
      std::string payload = f[3] == "GET" ? R"({"value": 99, "time": 5.0})" : R"({"value": true})";
      if (mode == Mode::proper) send({identity, "a", id, "ACK", "", "", ""});
      send({identity, "a", id, "REP", target, "", payload});
      if (mode != Mode::proper) send({identity, "a", id, "ACK", "", "", ""});
    }
  }
};

// A TCP relay on loopback in front of a port: it accepts each connection at
// once (the client's TCP connection is up) but passes bytes on only `hold`
// later, or never: the connection's ZMTP handshake waits that long, as with
// a daemon on a loaded host, or one that is stopped (whose kernel still
// accepts connections).
class HeldRelay {
 public:
  static constexpr std::chrono::milliseconds kNever{-1};
  HeldRelay(int target_port, std::chrono::milliseconds hold) : target_port_(target_port), hold_(hold) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t n = sizeof a;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &n) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::jthread([this](std::stop_token st) { loop(st); });
  }
  ~HeldRelay() {
    thread_.request_stop();
    thread_.join();
    for (auto& c : links_) close_link(c);
    ::close(listener_);
  }
  int port() const { return port_; }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }

 private:
  struct Held {
    int client = -1, server = -1;
    std::chrono::steady_clock::time_point open_at;
  };
  static void close_link(Held& c) {
    if (c.client >= 0) ::close(c.client);
    if (c.server >= 0) ::close(c.server);
    c.client = c.server = -1;
  }
  int connect_target() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(target_port_));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  // Moves what `from` holds to `to`; false at its end or on an error.
  static bool pass(int from, int to) {
    char buffer[65536];
    const ssize_t n = ::read(from, buffer, sizeof buffer);
    if (n <= 0) return false;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(to, buffer + done, static_cast<std::size_t>(n - done));
      if (w <= 0) return false;
      done += w;
    }
    return true;
  }
  void loop(std::stop_token st) {
    while (!st.stop_requested()) {
      const auto now = std::chrono::steady_clock::now();
      for (auto& c : links_)
        if (c.client >= 0 && c.server < 0 && hold_ != kNever && now >= c.open_at) {
          c.server = connect_target();
          if (c.server < 0) close_link(c);
        }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      std::vector<std::pair<Held*, bool>> sides;  // (link, from the client)
      for (auto& c : links_) {
        if (c.server < 0) continue;  // held: its bytes wait in the kernel
        fds.push_back({c.client, POLLIN, 0});
        sides.emplace_back(&c, true);
        fds.push_back({c.server, POLLIN, 0});
        sides.emplace_back(&c, false);
      }
      if (::poll(fds.data(), fds.size(), 5) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          links_.push_back({fd, -1, std::chrono::steady_clock::now() + hold_});
          ++accepted_;
        }
      }
      for (std::size_t i = 1; i < fds.size(); ++i) {
        auto [c, from_client] = sides[i - 1];
        if (!fds[i].revents || c->client < 0) continue;
        if (!(from_client ? pass(c->client, c->server) : pass(c->server, c->client))) close_link(*c);
      }
    }
  }
  int target_port_;
  std::chrono::milliseconds hold_;
  int listener_ = -1, port_ = 0;
  std::atomic<int> accepted_{0};
  std::deque<Held> links_;  // the relay thread's
  std::jthread thread_;
};

mktl::ClientOptions fast_options(const test::TempDir& home) {
  auto o = test::client_options(home);
  o.ack_timeout = 0.1;
  o.timeout = 10.0;
  o.use_cache = false;
  return o;
}

}  // namespace

TEST_CASE("client get, set, set_async and set_nowait", "[client]") {
  Fixture f;
  auto& c = *f.client;
  CHECK(c.get("demo.temp").value == 20.5);
  CHECK(c.get("DEMO.Temp").value == 20.5);  // keys are case-insensitive
  c.set("demo.temp", Json(21));
  auto r = c.get("demo.temp");
  CHECK(r.value == 21);
  CHECK(r.value.is_number_integer());
  CHECK(r.time > 1e9);

  auto fut = c.set_async("demo.temp", Json(22.5));
  REQUIRE(fut.wait_for(20s) == std::future_status::ready);
  fut.get();
  CHECK(c.get("demo.temp").value == 22.5);

  c.set_nowait("demo.temp", Json(23));
  CHECK(test::wait_until([&] { return c.get("demo.temp").value == 23; }));

  auto item = c.item("demo.name");
  item.set(Json("hello"));
  CHECK(item.get().value == "hello");
  CHECK(item.description()["type"] == "string");
  CHECK(c.items("demo").contains("_demo1clk"));
}

TEST_CASE("client raises remote errors with their type and text", "[client]") {
  Fixture f;
  auto& c = *f.client;
  try {
    c.set("demo.ro", Json(5));
    FAIL("SET of a read-only item succeeded");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "TypeError");
    CHECK(e.text() == "ro is not a settable item");
  }
  try {
    c.set("demo.mode", Json("Bogus"));
    FAIL("SET of a bad enumerator succeeded");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "KeyError");
    CHECK(e.text() == "\"invalid enumerator: 'Bogus'\"");
  }
  try {
    c.request(f.daemon.rep_endpoint(), "GET", "demo.nope");
    FAIL("GET of an unknown key succeeded");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "KeyError");
    CHECK(e.text() == "\"this daemon does not contain 'nope'\"");
  }
  auto fut = c.set_async("demo.temp", Json("abc"));
  REQUIRE(fut.wait_for(20s) == std::future_status::ready);
  try {
    fut.get();
    FAIL("an invalid numeric SET succeeded");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "ValueError");
    CHECK(e.text() == "could not convert string to float: 'abc'");
  }
  // A key the catalog does not have never reaches the wire.
  CHECK_THROWS_AS(c.get("demo.nope"), mktl::KeyError);
  CHECK(c.get("demo.temp").value == 20.5);
}

TEST_CASE("client subscription receives each new value", "[client]") {
  Fixture f;
  auto& c = *f.client;
  test::Collector col;
  auto sub = c.subscribe("demo.temp", col.callback());
  REQUIRE(sub);
  REQUIRE(test::until_subscribed([&](int i) { c.set("demo.temp", Json(1000 + i)); }, [&] { return col.size() > 0; }));
  for (int v = 1; v <= 20; ++v) c.set("demo.temp", Json(v));
  REQUIRE(col.wait_for_value(20));
  std::vector<int> small;
  {
    std::lock_guard lock(col.mutex);
    for (auto& r : col.readings) {
      CHECK(r.time > 1e9);
      if (r.value.get<int>() < 1000) small.push_back(r.value.get<int>());
    }
  }
  std::vector<int> expected;
  for (int v = 1; v <= 20; ++v) expected.push_back(v);
  CHECK(small == expected);
}

TEST_CASE("broadcasts of two keys read in one burst reach each key's callbacks in order, none lost", "[client]") {
  // The client hands broadcasts to each key's strand in batches per key: a
  // burst that interleaves two keys must come out as two ordered streams.
  Fixture f;
  auto& c = *f.client;
  test::Collector temps, names;
  auto s1 = c.subscribe("demo.temp", temps.callback());
  auto s2 = c.subscribe("demo.name", names.callback());
  REQUIRE(test::until_subscribed(
      [&](int i) {
        c.set("demo.temp", Json(-1000 - i));
        c.set("demo.name", Json("sync" + std::to_string(i)));
      },
      [&] { return temps.size() > 0 && names.size() > 0; }));
  constexpr int kCount = 500;
  std::vector<mktl::Future<void>> futures;
  for (int i = 0; i < kCount; ++i) {
    futures.push_back(c.set_async("demo.temp", Json(i)));
    futures.push_back(c.set_async("demo.name", Json("n" + std::to_string(i))));
  }
  for (auto& fu : futures) REQUIRE(fu.wait_for(20s) == std::future_status::ready);
  REQUIRE(temps.wait_for_value(kCount - 1));
  REQUIRE(names.wait_for_value("n" + std::to_string(kCount - 1)));
  std::vector<int> got_temps, got_names;
  {
    std::lock_guard lock(temps.mutex);
    for (auto& r : temps.readings)
      if (r.value.get<double>() >= 0) got_temps.push_back(r.value.get<int>());
  }
  {
    std::lock_guard lock(names.mutex);
    for (auto& r : names.readings) {
      const auto& text = r.value.get_ref<const std::string&>();
      if (text.rfind("n", 0) == 0) got_names.push_back(std::stoi(text.substr(1)));
    }
  }
  std::vector<int> expected(kCount);
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(got_temps == expected);
  CHECK(got_names == expected);
}

TEST_CASE("destroying one of two subscriptions to a key stops its callbacks, the other keeps going", "[client]") {
  Fixture f;
  auto& c = *f.client;
  std::atomic<bool> destroyed{false};
  std::atomic<int> late{0}, first_count{0};
  auto first = std::make_unique<mktl::Subscription>(c.subscribe("demo.temp", [&](const std::string&, const mktl::Reading&) {
    if (destroyed) ++late;
    ++first_count;
  }));
  test::Collector second;
  auto sub2 = c.subscribe("demo.temp", second.callback());
  REQUIRE(test::until_subscribed([&](int i) { c.set("demo.temp", Json(1000 + i)); },
                                 [&] { return first_count > 0 && second.size() > 0; }));
  // Destroy the first while broadcasts keep coming.
  std::atomic<bool> stop{false};
  std::thread setter([&] {
    for (int i = 0; i < 5000 && !stop; ++i) c.set("demo.temp", Json(2000 + i));
  });
  int before = first_count;
  CHECK(test::wait_until([&] { return first_count > before + 5; }));
  first.reset();
  destroyed = true;
  int at_destroy = first_count;
  stop = true;
  setter.join();
  c.set("demo.temp", Json(-1));
  REQUIRE(second.wait_for_value(-1));
  CHECK(late == 0);
  CHECK(first_count == at_destroy);
  // The second one still works on its own after the first is gone.
  c.set("demo.temp", Json(-2));
  CHECK(second.wait_for_value(-2));
}

TEST_CASE("subscription callbacks run off the I/O thread, one at a time per key", "[client]") {
  Fixture f;
  auto& c = *f.client;
  const auto test_thread = std::this_thread::get_id();
  std::atomic<int> inside{0}, max_inside{0}, calls{0}, nested_ok{0};
  std::atomic<bool> wrong_thread{false};
  auto callback = [&](const std::string&, const mktl::Reading&) {
    int now_inside = ++inside;
    int seen = max_inside;
    while (now_inside > seen && !max_inside.compare_exchange_weak(seen, now_inside)) {
    }
    if (std::this_thread::get_id() == test_thread) wrong_thread = true;
    // A request from inside a callback would deadlock on the I/O thread.
    if (calls++ % 10 == 0) {
      if (c.get("demo.name", false, 5.0).time > 0) ++nested_ok;
    }
    for (int i = 0; i < 200; ++i) std::this_thread::yield();
    --inside;
  };
  auto s1 = c.subscribe("demo.temp", callback);
  auto s2 = c.subscribe("demo.temp", callback);
  REQUIRE(test::until_subscribed([&](int i) { c.set("demo.temp", Json(1000 + i)); }, [&] { return calls > 0; }));
  std::vector<mktl::Future<void>> futures;
  for (int i = 0; i < 100; ++i) futures.push_back(c.set_async("demo.temp", Json(i)));
  for (auto& fu : futures) REQUIRE(fu.wait_for(20s) == std::future_status::ready);
  CHECK(test::wait_until([&] { return calls >= 200; }));
  CHECK(max_inside == 1);
  CHECK_FALSE(wrong_thread);
  CHECK(nested_ok > 0);
}

TEST_CASE("client: 200 pipelined set_async all complete", "[client]") {
  Fixture f;
  auto& c = *f.client;
  std::vector<mktl::Future<void>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(c.set_async("demo.temp", Json(i)));
  for (auto& fu : futures) {
    REQUIRE(fu.wait_for(20s) == std::future_status::ready);
    CHECK_NOTHROW(fu.get());
  }
  CHECK(c.get("demo.temp").value == 199);
}

TEST_CASE("client: threads that each wait on one request at a time are never left unsent", "[client]") {
  // Every request here finds the I/O thread idle in poll, or about to be, so
  // each one depends on the wake-up handshake between caller and I/O thread
  // (and on several callers sharing one wake-up). A lost wake-up shows as a
  // request that never completes.
  Fixture f;
  auto& c = *f.client;
  constexpr int kThreads = 4, kEach = 300;
  std::atomic<int> completed{0}, stuck{0};
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < kEach; ++i) {
          auto fu = c.get_async("demo.temp");
          if (fu.wait_for(10s) != std::future_status::ready) {
            ++stuck;
            return;
          }
          fu.get();
          ++completed;
        }
      });
    for (auto& th : threads) th.join();
  }
  CHECK(stuck == 0);
  CHECK(completed == kThreads * kEach);
}

TEST_CASE("SETs to one item apply in the order each thread sent them", "[client]") {
  Fixture f;
  auto& c = *f.client;
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::vector<mktl::Future<void>>> futures(kThreads);
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) futures[t].push_back(c.set_async("demo.seq", Json(t * 1000 + i)));
      });
    for (auto& th : threads) th.join();
  }
  for (auto& list : futures)
    for (auto& fu : list) {
      REQUIRE(fu.wait_for(20s) == std::future_status::ready);
      fu.get();
    }
  std::vector<int> applied;
  {
    std::lock_guard lock(f.daemon.recorder->mutex);
    applied = f.daemon.recorder->applied;
  }
  REQUIRE(applied.size() == kThreads * kEach);
  std::vector<int> last(kThreads, -1);
  for (int v : applied) {
    int t = v / 1000, i = v % 1000;
    CHECK(i == last[t] + 1);
    last[t] = i;
  }
  CHECK(c.get("demo.seq").value == applied.back());
}

TEST_CASE("a blocking SET after set_nowait and set_async from the same thread applies after them", "[client]") {
  // The blocking calls have a socket of their own per thread; the others go
  // through the client's shared one. One thread's SETs must still apply in
  // the order it made them, whichever calls it mixes.
  Fixture f;
  auto& c = *f.client;
  constexpr int kRounds = 20, kEach = 40;
  int value = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<mktl::Future<void>> pending;
    for (int i = 0; i < kEach; ++i) {
      if (i % 2) pending.push_back(c.set_async("demo.seq", Json(++value)));
      else c.set_nowait("demo.seq", Json(++value));
    }
    c.set("demo.seq", Json(++value));
    CHECK(c.get("demo.seq").value == value);
    for (auto& fu : pending) {
      REQUIRE(fu.wait_for(20s) == std::future_status::ready);
      fu.get();
    }
  }
  std::vector<int> applied;
  {
    std::lock_guard lock(f.daemon.recorder->mutex);
    applied = f.daemon.recorder->applied;
  }
  REQUIRE(applied.size() == static_cast<std::size_t>(value));
  int out_of_order = 0;
  for (std::size_t i = 0; i < applied.size(); ++i) out_of_order += applied[i] != static_cast<int>(i) + 1;
  CHECK(out_of_order == 0);
}

TEST_CASE("client: no ACK within ack_timeout raises TimeoutError quickly", "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::never_ack);
  mktl::Client c(fast_options(home));
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.get("demo.x"), mktl::TimeoutError);
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  try {
    c.set("demo.x", Json(1));
    FAIL("SET without ACK succeeded");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "TimeoutError");
  }
  auto fut = c.set_async("demo.x", Json(2));
  REQUIRE(fut.wait_for(5s) == std::future_status::ready);
  CHECK_THROWS_AS(fut.get(), mktl::TimeoutError);
  CHECK(fake.requests == 3);
}

TEST_CASE("client: a request sent while its connection's handshake is held counts its ACK timeout from the handshake",
          "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::proper);
  HeldRelay relay(fake.rep_port, 400ms);
  fake.advertised_rep = relay.port();  // the catalog sends requests through the relay
  mktl::Client c(fast_options(home));  // a 0.1 s ACK timeout
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  // A blocking GET, on a new connection of this thread.
  auto start = std::chrono::steady_clock::now();
  CHECK(c.get("demo.x").value == Json(99));
  CHECK(std::chrono::steady_clock::now() - start >= 350ms);  // it did wait for the relay
  // An asynchronous one, on the client's own new connection.
  start = std::chrono::steady_clock::now();
  CHECK(c.get_async("demo.y").get().value == Json(99));
  CHECK(std::chrono::steady_clock::now() - start >= 350ms);
  CHECK(relay.accepted() == 2);
  // Once the connections are up, the 0.1 s counts from the send again.
  fake.mode = FakeDaemon::Mode::never_ack;
  try {
    c.get("demo.x");
    FAIL("a GET without an ACK succeeded");
  } catch (const mktl::TimeoutError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("no acknowledgement received in 0.100 s"));
    CHECK_THAT(e.what(), !Catch::Matchers::Contains("handshake"));
  }
}

TEST_CASE("client: a connection whose handshake never completes fails the request, saying so", "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::proper);
  HeldRelay relay(fake.rep_port, HeldRelay::kNever);  // as a stopped daemon
  fake.advertised_rep = relay.port();
  mktl::Client c(fast_options(home));
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  auto start = std::chrono::steady_clock::now();
  try {
    c.get("demo.x");
    FAIL("a GET through a relay that passes nothing succeeded");
  } catch (const mktl::TimeoutError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("no acknowledgement received in 0.100 s: the connection's "
                                                   "handshake did not complete in 1000 ms"));
  }
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 900ms);  // the handshake's allowance, not the 0.1 s
  CHECK(took < 10s);
  auto pending = c.get_async("demo.y");
  REQUIRE(pending.wait_for(10s) == std::future_status::ready);
  try {
    pending.get();
    FAIL("an asynchronous GET through a relay that passes nothing succeeded");
  } catch (const mktl::TimeoutError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("handshake did not complete"));
  }
}

TEST_CASE("client: a request to an address where nothing listens says no connection could be made", "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::proper);
  int closed_port = 0;
  {  // a port that was free a moment ago, closed again
    zmq::context_t context;
    zmq::socket_t probe(context, zmq::socket_type::router);
    probe.set(zmq::sockopt::linger, 0);
    probe.bind("tcp://127.0.0.1:*");
    const std::string endpoint = probe.get(zmq::sockopt::last_endpoint);
    closed_port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  }
  fake.advertised_rep = closed_port;
  auto options = fast_options(home);
  options.ack_timeout = 2.0;  // time for the refused connect to be reported, on a loaded machine too
  mktl::Client c(options);
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  try {
    c.get("demo.x");
    FAIL("a GET to a closed port succeeded");
  } catch (const mktl::TimeoutError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("no acknowledgement received in 2.000 s: no connection could be "
                                                   "made (is the daemon running at that address?)"));
  }
  auto pending = c.get_async("demo.y");
  REQUIRE(pending.wait_for(10s) == std::future_status::ready);
  try {
    pending.get();
    FAIL("an asynchronous GET to a closed port succeeded");
  } catch (const mktl::TimeoutError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("no connection could be made"));
  }
}

TEST_CASE("client: asynchronous requests to a daemon whose handshake fails each end, and the client goes on",
          "[client][security]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  test::TempDir home;
  mktl::KeyPair::generate().save("secure-daemon", home.str());
  auto secure_options = test::isolated(home);
  secure_options.security.curve = true;
  secure_options.security.server_key = "secure-daemon";
  secure_options.security.clients = {{"someone", mktl::KeyPair::generate().public_key}};
  mktl::Daemon secure("secure", "secure1", Json::parse(R"({"x": {"type": "numeric"}})"), secure_options);
  secure.start();
  // The fake's catalog sends demo's requests to the CURVE daemon, and says
  // nothing of its key: the client speaks plain text, and every handshake
  // fails (after which libzmq gives the connection up for good).
  FakeDaemon fake(FakeDaemon::Mode::proper);
  fake.advertised_rep = secure.rep_port();
  mktl::Client c(fast_options(home));
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  for (int i = 0; i < 4; ++i) {
    INFO("request " << i);
    auto pending = c.get_async("demo.x");
    REQUIRE(pending.wait_for(10s) == std::future_status::ready);
    CHECK_THROWS_AS(pending.get(), mktl::TimeoutError);
  }
  // The client's own socket to the fake still works.
  CHECK(c.request(fake.endpoint(), "GET", "demo._catalog").contains("value"));
  fake.advertised_rep = 0;
}

TEST_CASE("client: an ACK without a REP times out after the request timeout", "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::ack_only);
  mktl::Client c(fast_options(home));
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.get("demo.x", false, 0.3), mktl::TimeoutError);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 250ms);  // the ACK arrived, so the ACK timeout (0.1 s) did not fire
  CHECK(took < 5s);
  CHECK_THROWS_AS(c.set("demo.x", Json(1), 0.3), mktl::TimeoutError);
}

TEST_CASE("client: an acknowledged request fails when the daemon's connection closes, not at its timeout",
          "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::ack_only_x);
  auto options = fast_options(home);
  options.ack_timeout = 5.0;  // x's ACK is late on a loaded machine; this case is about its REP
  options.timeout = 60.0;
  mktl::Client c(options);
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  auto start = std::chrono::steady_clock::now();
  auto pending = c.get_async("demo.x");
  // y's REP follows x's ACK on the same connection (asynchronous requests
  // share one; a blocking get() has its own, which the daemon may serve
  // first): once y is answered, the client holds x acknowledged and waiting
  // for its REP.
  CHECK(c.get_async("demo.y").get().value == Json(99));
  fake.close();
  REQUIRE(pending.wait_for(10s) == std::future_status::ready);
  try {
    pending.get();
    FAIL("a GET answered by a closed daemon");
  } catch (const mktl::TimeoutError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("connection to the daemon was lost"));
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("client: a REP before its ACK counts as both, and the late ACK is ignored", "[client]") {
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::rep_before_ack);
  mktl::Client c(fast_options(home));
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  auto r = c.get("demo.x");
  CHECK(r.value == 99);
  CHECK(r.time == 5.0);
  c.set("demo.x", Json(3));
  // Late ACKs of finished requests must not confuse the next ones.
  for (int i = 0; i < 20; ++i) CHECK(c.get("demo.x").value == 99);
  CHECK(fake.requests == 22);
}

namespace {

// Rewrites a cached block as a stale one: another hash, and without "temp".
void make_stale(const std::filesystem::path& cached) {
  std::ifstream in(cached);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  Json block = mktl::json::parse(text);
  block["hash"] = 1;
  block["items"].erase("temp");
  std::ofstream out(cached, std::ios::trunc);
  out << mktl::json::dump(block);
}

}  // namespace

TEST_CASE("client caches catalogs and revalidates the cache", "[client]") {
  test::TempDir home;
  ClientDaemon daemon("demo", "demo1", Json::parse(kItems), test::isolated(home));
  daemon.start();
  auto options = test::client_options(home);
  namespace fs = std::filesystem;
  fs::path cached = fs::path(options.home) / "client" / "cache" / "demo" / (daemon.uuid() + ".json");
  {
    mktl::Client c(options);
    c.connect(daemon.rep_endpoint(), "demo");
    REQUIRE(fs::exists(cached));
    std::ifstream in(cached);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Json block = mktl::json::parse(text);
    CHECK(block["uuid"] == daemon.uuid());
    CHECK(mktl::json::dump(block["hash"]) == mktl::json::dump(daemon.catalog_block()["hash"]));
    CHECK(block["items"].contains("temp"));
  }
  SECTION("a fresh client finds the store from the cache alone") {
    mktl::Client c(options);
    CHECK(c.get("demo.temp").value == 20.5);
    mktl::Client c2(options);
    c2.find_store("demo");
    CHECK(c2.get("demo.temp").value == 20.5);
  }
  SECTION("a stale cache is refetched") {
    make_stale(cached);
    mktl::Client c(options);
    c.find_store("demo");
    CHECK(c.get("demo.temp").value == 20.5);
    std::ifstream again(cached);
    std::string fresh((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
    Json rewritten = mktl::json::parse(fresh);
    CHECK(mktl::json::dump(rewritten["hash"]) == mktl::json::dump(daemon.catalog_block()["hash"]));
    CHECK(rewritten["items"].contains("temp"));
  }
  SECTION("a key missing from a stale cache is found after revalidation") {
    make_stale(cached);
    mktl::Client c(options);
    CHECK(c.get("demo.temp").value == 20.5);
  }
  daemon.stop();
}

TEST_CASE("client formatted get and set of an enumerated item", "[client]") {
  Fixture f;
  auto mode = f.client->item("demo.mode");
  mode.set_formatted("On");
  CHECK(mode.get().value == 1);
  CHECK(mode.get_formatted() == "On");
  mode.set_formatted("auto");  // names in any case
  CHECK(mode.get().value == 2);
  CHECK(mode.get_formatted() == "Auto");
  CHECK_THROWS_AS(mode.set_formatted("Bogus"), mktl::Error);
  CHECK(mode.get_formatted() == "Auto");
  auto temp = f.client->item("demo.temp");
  temp.set_formatted("21.25");
  CHECK(temp.get().value == 21.25);
}

TEST_CASE("a subscription may outlive its client", "[client]") {
  Fixture f;
  mktl::Subscription sub = f.client->subscribe("demo.temp", [](const std::string&, const mktl::Reading&) {});
  f.client.reset();
  sub.cancel();  // must not crash or hang
  CHECK_FALSE(sub);
}

TEST_CASE("client: 64 get_async in flight all complete with the value", "[client]") {
  Fixture f;
  auto& c = *f.client;
  c.set("demo.temp", Json(12.5));
  std::vector<mktl::Future<mktl::Reading>> futures;
  for (int i = 0; i < 64; ++i) futures.push_back(c.get_async("demo.temp"));
  for (auto& fu : futures) {
    REQUIRE(fu.wait_for(20s) == std::future_status::ready);
    CHECK(fu.get().value == Json(12.5));
  }
  // A key the catalog does not have fails before anything is sent.
  CHECK_THROWS_AS(c.get_async("demo.nope"), mktl::KeyError);
}

namespace {

// The outcome a completion handler saw, for the test thread to wait on.
struct Outcomes {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::pair<mktl::Reading, std::exception_ptr>> got;
  std::set<std::thread::id> threads;

  void add(mktl::Reading r, std::exception_ptr e) {
    {
      std::lock_guard lock(mutex);
      got.emplace_back(std::move(r), e);
      threads.insert(std::this_thread::get_id());
    }
    cv.notify_all();
  }
  bool wait_for_count(std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 20s, [&] { return got.size() >= n; });
  }
};

std::string error_type(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const mktl::Error& err) {
    return err.type() + ": " + err.text();
  } catch (...) {
    return "?";
  }
}

}  // namespace

TEST_CASE("client: get_then and set_then call their handler with the outcome", "[client]") {
  Outcomes out;  // outlives the client, whose I/O thread runs the handlers
  Fixture f;
  auto& c = *f.client;
  c.set_then("demo.temp", mktl::Reading(Json(7.25)), [&](std::exception_ptr e) { out.add({}, e); });
  REQUIRE(out.wait_for_count(1));
  CHECK_FALSE(out.got[0].second);
  c.get_then("demo.temp", [&](mktl::Reading r, std::exception_ptr e) { out.add(std::move(r), e); });
  REQUIRE(out.wait_for_count(2));
  CHECK_FALSE(out.got[1].second);
  CHECK(out.got[1].first.value == Json(7.25));
  CHECK(out.got[1].first.time > 0);
  // Remote errors arrive as the exception, with the daemon's type and text.
  c.set_then("demo.temp", mktl::Reading(Json("abc")), [&](std::exception_ptr e) { out.add({}, e); });
  REQUIRE(out.wait_for_count(3));
  CHECK(error_type(out.got[2].second) == "ValueError: could not convert string to float: 'abc'");
  c.set_then("demo.ro", mktl::Reading(Json(2)), [&](std::exception_ptr e) { out.add({}, e); });
  REQUIRE(out.wait_for_count(4));
  CHECK(error_type(out.got[3].second) == "TypeError: ro is not a settable item");
  // Handlers run on the client's I/O thread, never on the caller's.
  CHECK(out.threads.size() == 1);
  CHECK(out.threads.count(std::this_thread::get_id()) == 0);
  // Nothing is sent for an unknown key, and a handler is required.
  CHECK_THROWS_AS(c.get_then("demo.nope", [](mktl::Reading, std::exception_ptr) {}), mktl::KeyError);
  CHECK_THROWS_AS(c.get_then("demo.temp", nullptr), mktl::ValueError);
}

TEST_CASE("client: handlers that issue the next request keep 64 in flight", "[client]") {
  constexpr int kTotal = 2000, kDepth = 64;
  std::atomic<int> issued{0}, good{0};
  Outcomes done;
  std::function<void()> next;  // all of these outlive the client
  Fixture f;
  auto& c = *f.client;
  c.set("demo.temp", Json(3.5));
  next = [&] {
    if (issued.fetch_add(1) >= kTotal) return;
    c.get_then("demo.temp", [&](mktl::Reading r, std::exception_ptr e) {
      if (!e && r.value == Json(3.5)) ++good;
      done.add({}, e);
      next();  // from the I/O thread itself
    });
  };
  for (int i = 0; i < kDepth; ++i) next();
  REQUIRE(done.wait_for_count(kTotal));
  CHECK(good == kTotal);
}

// SETs applied on the daemon's I/O thread each queue a broadcast; while it
// sends them, the I/O thread looks for waiting requests every few dozen,
// which takes in the notification the ROUTER's fd would have shown: the
// loop must read the ROUTER again before it waits (a stall without it).
TEST_CASE("client: 256 SETs in flight, each applied and broadcast by the I/O thread, all complete", "[client]") {
  constexpr int kTotal = 40000, kDepth = 256;
  std::atomic<int> issued{0};
  Outcomes done;
  std::function<void()> next;  // all of these outlive the client
  Fixture f;
  auto& c = *f.client;
  next = [&] {
    const int i = issued.fetch_add(1);
    if (i >= kTotal) return;
    c.set_then("demo.temp", mktl::Reading(Json(i)), [&](std::exception_ptr e) {
      done.add({}, e);
      next();
    });
  };
  for (int i = 0; i < kDepth; ++i) next();
  REQUIRE(done.wait_for_count(kTotal));
  std::lock_guard lock(done.mutex);
  auto failed = std::find_if(done.got.begin(), done.got.end(), [](auto& o) { return o.second != nullptr; });
  INFO((failed == done.got.end() ? std::string() : error_type(failed->second)));
  CHECK(failed == done.got.end());
}

TEST_CASE("client: a handler that throws is logged and the client goes on", "[client]") {
  Outcomes out;
  Fixture f;
  auto& c = *f.client;
  c.get_then("demo.temp", [](mktl::Reading, std::exception_ptr) { throw std::runtime_error("handler bug"); });
  c.get_then("demo.temp", [&](mktl::Reading r, std::exception_ptr e) { out.add(std::move(r), e); });
  REQUIRE(out.wait_for_count(1));
  CHECK_FALSE(out.got[0].second);
  CHECK(c.get("demo.temp").value == Json(20.5));
}

TEST_CASE("client: get_then without an ACK reports TimeoutError", "[client]") {
  Outcomes out;
  test::TempDir home;
  FakeDaemon fake(FakeDaemon::Mode::never_ack);
  mktl::Client c(fast_options(home));
  REQUIRE(c.connect(fake.endpoint(), "demo") == std::vector<std::string>{"demo"});
  c.get_then("demo.x", [&](mktl::Reading r, std::exception_ptr e) { out.add(std::move(r), e); });
  REQUIRE(out.wait_for_count(1));
  REQUIRE(out.got[0].second);
  CHECK_THROWS_AS(std::rethrow_exception(out.got[0].second), mktl::TimeoutError);
}

}  // namespace test_client
