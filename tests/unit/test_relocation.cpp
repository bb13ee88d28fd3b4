// A client following a daemon that moves (docs/discovery.md): the daemon is
// found by UDP broadcast on loopback (127.255.255.255, private discovery
// ports), stopped, and started again on other ports; the client's
// subscription and its requests follow it without being made again.
#include "support.hpp"

#include <mktl/mktl.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <random>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_relocation {

using mktl::Json;

namespace {

// discovery.json for a home: broadcast on loopback, private ports so that
// parallel tests never find each other's daemons.
void write_discovery(const std::string& home, int daemon_port, int registry_port) {
  std::filesystem::create_directories(home);
  std::ofstream(home + "/discovery.json") << Json{{"broadcast", "127.255.255.255"},
                                                   {"daemon_port", daemon_port},
                                                   {"registry_port", registry_port}}
                                                 .dump();
}

struct Moving {
  test::TempDir daemon_home, client_home;
  std::string store;
  int daemon_port, registry_port;
  Moving() {
    std::random_device random;
    daemon_port = 20000 + static_cast<int>(random() % 20000);
    registry_port = daemon_port + 1;
    store = "moving" + std::to_string(random() % 1000000);
    write_discovery(daemon_home.str(), daemon_port, registry_port);
    write_discovery(test::client_options(client_home).home, daemon_port, registry_port);
  }
  std::unique_ptr<mktl::Daemon> start_daemon() {
    auto options = test::isolated(daemon_home);
    options.discovery = true;
    options.avahi = false;
    auto daemon = std::make_unique<mktl::Daemon>(store, "one", Json{{"x", {{"type", "numeric"}}}}, options);
    daemon->start();
    return daemon;
  }
  mktl::ClientOptions client_options() {
    auto options = test::client_options(client_home);
    options.use_cache = false;     // found by broadcast, not from the disk
    options.dns_sd_timeout = 0;
    options.ack_timeout = 0.5;
    return options;
  }
};

// Publishes `value` (and again, as a new SUB connection misses what is sent
// before it is made) until `got` has it; false after 10 s.
bool publish_until_seen(mktl::Daemon& daemon, test::Collector& got, double value) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    daemon.item("x").publish(Json(value), std::nullopt, true);
    if (got.wait_for_value(Json(value), std::chrono::milliseconds(100))) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("finding a store by broadcast waits one discovery window, for registries and daemons at once",
          "[client][discovery]") {
  Moving m;
  auto daemon = m.start_daemon();
  auto options = m.client_options();
  options.discovery_timeout = 1.5;  // no registry answers: its call waits all of it
  mktl::Client client(options);
  auto start = std::chrono::steady_clock::now();
  client.find_store(m.store);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(client.get(m.store + ".x").value.is_null());
  // One after the other, the two calls would take at least 3 s.
  CHECK(took >= std::chrono::milliseconds(1400));
  CHECK(took < std::chrono::milliseconds(2600));
  start = std::chrono::steady_clock::now();
  CHECK(client.discover() == std::vector<std::string>{m.store});
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(2600));
}

TEST_CASE("a subscription and requests follow a daemon restarted on other ports", "[client][relocate]") {
  Moving m;
  auto daemon = m.start_daemon();
  const int old_pub = daemon->pub_port();

  mktl::Client client(m.client_options());
  test::Collector got;
  auto subscription = client.subscribe(m.store + ".x", got.callback());
  REQUIRE(publish_until_seen(*daemon, got, 1.0));
  client.set(m.store + ".x", Json(2.0));
  CHECK(client.get(m.store + ".x").value == 2.0);

  daemon.reset();  // stopped: its ports close
  daemon = m.start_daemon();
  INFO("old pub port " << old_pub << ", new " << daemon->pub_port());
  // The same subscription hears the daemon at its new address.
  REQUIRE(publish_until_seen(*daemon, got, 3.0));
  // A blocking request finds it too (retried once at the new address), and so
  // does an asynchronous one sent afterwards.
  client.set(m.store + ".x", Json(4.0));
  CHECK(client.get(m.store + ".x").value == 4.0);
  CHECK(client.get_async(m.store + ".x").get().value == 4.0);
}

TEST_CASE("a request to a daemon that is gone fails with TimeoutError and a subscription waits for it",
          "[client][relocate]") {
  Moving m;
  auto daemon = m.start_daemon();
  mktl::Client client(m.client_options());
  test::Collector got;
  auto subscription = client.subscribe(m.store + ".x", got.callback());
  REQUIRE(publish_until_seen(*daemon, got, 1.0));

  daemon.reset();
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(client.get(m.store + ".x"), mktl::TimeoutError);
  // The ACK timeout plus one look at the network (0.5 s broadcast), not the REP timeout.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));

  // Back (at other ports): the subscription resumes by itself.
  daemon = m.start_daemon();
  REQUIRE(publish_until_seen(*daemon, got, 5.0));
  CHECK(client.get(m.store + ".x").value == 5.0);
}

TEST_CASE("asynchronous requests check a location from the disk cache before they go", "[client][relocate]") {
  Moving m;
  auto daemon = m.start_daemon();
  // The block the daemon cached at its first start, for a client of its own.
  auto options = m.client_options();
  options.use_cache = true;
  const auto cache = std::filesystem::path(options.home) / "client" / "cache";
  std::filesystem::create_directories(cache.parent_path());
  std::filesystem::copy(std::filesystem::path(m.daemon_home.str()) / "client" / "cache", cache,
                        std::filesystem::copy_options::recursive);
  daemon.reset();
  daemon = m.start_daemon();  // at other ports: the copied cache is stale
  mktl::Client client(options);
  // Sent to the cached address, they would fail (nobody acknowledges them
  // there) and could not be sent again: they find the daemon first.
  client.set_async(m.store + ".x", mktl::Reading(Json(6.0))).get();
  CHECK(client.get_async(m.store + ".x").get().value == 6.0);
}

TEST_CASE("a store whose cached daemon does not answer fails with TimeoutError saying why, not KeyError",
          "[client][relocate]") {
  using Catch::Matchers::Contains;
  Moving m;
  auto daemon = m.start_daemon();
  const std::string rep = daemon->rep_endpoint();
  auto options = m.client_options();
  options.use_cache = true;
  options.discovery_timeout = 0.2;  // nobody else knows the store: the broadcast waits all of it
  const auto cache = std::filesystem::path(options.home) / "client" / "cache";
  std::filesystem::create_directories(cache.parent_path());
  std::filesystem::copy(std::filesystem::path(m.daemon_home.str()) / "client" / "cache", cache,
                        std::filesystem::copy_options::recursive);
  daemon.reset();  // nothing listens at the cached address
  // What the GET of a new client says: checked in a function, as each
  // client is a new one (a client that failed once has dropped the block).
  auto failure = [&] {
    mktl::Client client(options);
    try {
      client.get(m.store + ".x");
    } catch (const mktl::TimeoutError& e) {
      return std::string(e.what());
    }
    return std::string("the GET succeeded");
  };
  const std::string refused = failure();
  CHECK_THAT(refused, Contains("(from the cache) did not answer"));
  CHECK_THAT(refused, Contains("no registry or other daemon knows the store"));
  // Something that takes the connection and never answers: a daemon hung.
  zmq::context_t context;
  zmq::socket_t hung(context, zmq::socket_type::router);
  hung.set(zmq::sockopt::linger, 0);
  hung.bind("tcp://*:" + rep.substr(rep.rfind(':') + 1));
  const std::string unanswered = failure();
  CHECK_THAT(unanswered, Contains("(from the cache) did not answer: no acknowledgement received in 0.500 s"));
  CHECK_THAT(unanswered, !Contains("no connection could be made"));
}

TEST_CASE("a store reached by connect() is not looked for elsewhere", "[client][relocate]") {
  Moving m;
  auto daemon = m.start_daemon();
  mktl::Client client(m.client_options());
  client.connect(daemon->rep_endpoint(), m.store);
  CHECK(client.get(m.store + ".x").value.is_null());
  daemon.reset();
  daemon = m.start_daemon();  // findable by broadcast, at other ports
  // Pinned to the address given: the request times out there.
  CHECK_THROWS_AS(client.get(m.store + ".x", false, 1.0), mktl::TimeoutError);
}

TEST_CASE("a client with a pinned server key finds CURVE and plain daemons by broadcast and follows a restart",
          "[client][relocate][security]") {
  if (!mktl::curve_available()) return;
  Moving m;
  mktl::KeyPair client_key = mktl::KeyPair::generate();
  const std::string client_key_file = client_key.save("me", m.client_home.str());
  mktl::KeyPair::generate().save("daemon", m.daemon_home.str());
  auto start_secure = [&](const std::string& rep, const std::string& pub) {
    auto options = test::isolated(m.daemon_home);
    options.discovery = true;
    options.avahi = false;
    options.rep_endpoint = rep;
    options.pub_endpoint = pub;
    options.security.curve = true;
    options.security.server_key = "daemon";
    options.security.clients = {{"me", client_key.public_key}};
    options.security.acl = {{"*", {"me"}, {"me"}, {"me"}}};
    auto daemon = std::make_unique<mktl::Daemon>(m.store, "one", Json{{"x", {{"type", "numeric"}}}}, options);
    daemon->start();
    return daemon;
  };
  auto daemon = start_secure("tcp://127.0.0.1:0", "tcp://127.0.0.1:0");
  const std::string rep = daemon->rep_endpoint(), pub = daemon->pub_endpoint();
  auto options = m.client_options();
  options.key = client_key_file;
  options.server_key = mktl::KeyPair::load("daemon", m.daemon_home.str()).public_key;
  mktl::Client client(options);
  // Found by broadcast alone: asked with CURVE and the pinned key.
  test::Collector got;
  auto subscription = client.subscribe(m.store + ".x", got.callback());
  REQUIRE(publish_until_seen(*daemon, got, 1.0));

  // A plain daemon found the same way is asked in plain text after that.
  auto plain_options = test::isolated(m.daemon_home);
  plain_options.discovery = true;
  plain_options.avahi = false;
  mktl::Daemon plain(m.store + "plain", "one", Json{{"y", {{"type", "numeric"}, {"initial", 7}}}}, plain_options);
  plain.start();
  CHECK(client.get(m.store + "plain.y").value == 7);

  SECTION("back on the same ports") {
    daemon.reset();
    daemon = start_secure(rep, pub);
  }
  SECTION("back on other ports") {
    daemon.reset();
    daemon = start_secure("tcp://127.0.0.1:0", "tcp://127.0.0.1:0");
  }
  REQUIRE(publish_until_seen(*daemon, got, 3.0));
  client.set(m.store + ".x", Json(4.0));
  CHECK(client.get(m.store + ".x").value == 4.0);
  CHECK(client.get_async(m.store + ".x").get().value == 4.0);
}

TEST_CASE("keys pinned per store reach daemons with key pairs of their own, and never a plain impostor",
          "[client][relocate][security]") {
  if (!mktl::curve_available()) return;
  Moving m;
  mktl::KeyPair client_key = mktl::KeyPair::generate();
  const std::string client_key_file = client_key.save("me", m.client_home.str());
  const std::string first = m.store, second = m.store + "b";
  auto start = [&](const std::string& store, const std::string& key_name) {
    auto options = test::isolated(m.daemon_home);
    options.discovery = true;
    options.avahi = false;
    if (!key_name.empty()) {
      mktl::KeyPair::generate().save(key_name, m.daemon_home.str(), true);
      options.security.curve = true;
      options.security.server_key = key_name;
      options.security.clients = {{"me", client_key.public_key}};
      options.security.acl = {{"*", {"me"}, {"me"}, {"me"}}};
    }
    auto daemon = std::make_unique<mktl::Daemon>(store, "one", Json{{"x", {{"type", "numeric"}}}}, options);
    daemon->start();
    return daemon;
  };
  auto a = start(first, "daemon-a");
  auto b = start(second, "daemon-b");
  const std::string keys = m.daemon_home.str() + "/keys/";
  auto options = m.client_options();
  options.key = client_key_file;
  options.pin_server_key(first + "=" + keys + "daemon-a.pub");
  options.pin_server_key(second + "=" + keys + "daemon-b.pub");
  {
    // Both found by broadcast alone, each asked with its own key: one key
    // pinned for all could reach only one of them.
    mktl::Client client(options);
    client.set(first + ".x", Json(1.0));
    client.set(second + ".x", Json(2.0));
    CHECK(client.get(first + ".x").value == 1.0);
    CHECK(client.get(second + ".x").value == 2.0);
  }
  {
    // discover() asks the daemons found by broadcast with each pinned key.
    mktl::Client client(options);
    auto found = client.discover();
    CHECK(std::count(found.begin(), found.end(), first) == 1);
    CHECK(std::count(found.begin(), found.end(), second) == 1);
  }
  // The second store's daemon is gone; a plain daemon of the same name
  // answers discovery in its place. Its catalog says plain text: a client
  // pinning the store's key never speaks plain text to it.
  b.reset();
  auto impostor = start(second, "");
  mktl::Client client(options);
  CHECK_THROWS_AS(client.set(second + ".x", Json(3.0)), mktl::Error);
  CHECK(impostor->item("x").current().value.is_null());
  CHECK(client.get(first + ".x").value == 1.0);  // the other store is reached as before
}

TEST_CASE("a pinned key is KEY for all stores or STORE=KEY for one", "[client][security]") {
  mktl::ClientOptions options;
  const std::string key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";  // Z85, '=' free
  const std::string with_equals = "=q:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  options.pin_server_key(key);
  CHECK(options.server_key == key);
  options.pin_server_key(with_equals);  // a key that holds '=' is a key
  CHECK(options.server_key == with_equals);
  CHECK(options.server_keys.empty());
  options.pin_server_key("/keys/a=b.pub");  // a path holding '=' is a path
  CHECK(options.server_key == "/keys/a=b.pub");
  options.pin_server_key("Heater=heater.pub");
  options.pin_server_key("camera=" + key);
  CHECK(options.server_keys == std::map<std::string, std::string>{{"heater", "heater.pub"}, {"camera", key}});
  CHECK_THROWS_AS(options.pin_server_key("=heater.pub"), mktl::ValueError);
  CHECK_THROWS_AS(options.pin_server_key("heater="), mktl::ValueError);
  CHECK_THROWS_AS(options.pin_server_key(""), mktl::ValueError);
}

}  // namespace test_relocation
