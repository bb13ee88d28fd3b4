// UDP discovery and Avahi DNS-SD. Loopback only: broadcasts go to
// 127.255.255.255, never off this machine.
#include "discovery/announce.hpp"
#include "discovery/avahi.hpp"
#include "discovery/avahi_module.hpp"
#include "discovery/registry_state.hpp"
#include "discovery/udp.hpp"
#include "protocol/codec.hpp"
#include "transport/server.hpp"

#include "skip.hpp"

#include <mktl/error.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <random>
#include <set>
#include <string>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_discovery {

using namespace mktl::discovery;

namespace {

constexpr const char* kLoopbackBroadcast = "127.255.255.255";

// A raw UDP socket on 127.0.0.1 for poking at a responder.
class RawSocket {
 public:
  explicit RawSocket(int port = 0) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  int port() const {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
  }
  void send(const std::string& data, int port, const char* host = "127.0.0.1") const {
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host, &target.sin_addr);
    REQUIRE(::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&target), sizeof target) ==
            static_cast<ssize_t>(data.size()));
  }
  // One datagram within timeout_ms, or nullopt; `from_port` gets the sender's port.
  std::optional<std::string> receive(int timeout_ms, int* from_port = nullptr) const {
    pollfd fd{fd_, POLLIN, 0};
    if (::poll(&fd, 1, timeout_ms) <= 0) return std::nullopt;
    std::string buffer(65536, '\0');
    sockaddr_in sender{};
    socklen_t length = sizeof sender;
    ssize_t size = ::recvfrom(fd_, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&sender), &length);
    if (size < 0) return std::nullopt;
    if (from_port) *from_port = ntohs(sender.sin_port);
    buffer.resize(static_cast<std::size_t>(size));
    return buffer;
  }

 private:
  int fd_ = -1;
};

// A UDP port that was free a moment ago.
int free_udp_port() {
  RawSocket probe;
  return probe.port();
}

Config loopback_config() {
  Config config;
  config.broadcast = kLoopbackBroadcast;
  return config;
}

bool contains(const std::vector<Found>& found, const Found& wanted) {
  return std::find(found.begin(), found.end(), wanted) != found.end();
}

// Sets an environment variable for the scope of a test.
class EnvVar {
 public:
  EnvVar(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~EnvVar() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("discovery call and answer texts", "[discovery]") {
  CHECK(is_call("Aloha mKTL"));
  CHECK(is_call("  Aloha mKTL\r\n"));
  CHECK_FALSE(is_call("Aloha mKTL!"));
  CHECK_FALSE(is_call("aloha mktl"));
  CHECK_FALSE(is_call(""));
  CHECK(parse_answer("E komo mai:10079") == 10079);
  CHECK(parse_answer("E komo mai:10079\n") == 10079);
  CHECK_FALSE(parse_answer("E komo mai:"));
  CHECK_FALSE(parse_answer("E komo mai:abc"));
  CHECK_FALSE(parse_answer("E komo mai:70000"));
  CHECK_FALSE(parse_answer("E komo mai:0"));
  CHECK_FALSE(parse_answer("E komo mai:12x"));
  CHECK_FALSE(parse_answer("Aloha mKTL"));
}

TEST_CASE("discovery config from environment and files", "[discovery]") {
  auto home = std::filesystem::temp_directory_path() / ("mktl-discovery-" + std::to_string(::getpid()));
  std::filesystem::create_directories(home / "client");
  {
    std::ofstream(home / "discovery.json") << R"({"broadcast": "127.1.2.255", "daemon_port": 20111, "registry_port": 20103})";
    std::ofstream(home / "client" / "registries") << "# registries\nhost-a host-b # comment\n\n  host-c\n";
  }
  ::unsetenv("MKTL_BROADCAST");
  ::unsetenv("MKTL_DAEMON_PORT");
  ::unsetenv("MKTL_REGISTRY_PORT");
  SECTION("file over defaults") {
    auto config = Config::from_env(home.string());
    CHECK(config.broadcast == "127.1.2.255");
    CHECK(config.daemon_port == 20111);
    CHECK(config.registry_port == 20103);
    CHECK(config.hosts == std::vector<std::string>{"host-a", "host-b", "host-c"});
  }
  SECTION("environment over file") {
    EnvVar broadcast("MKTL_BROADCAST", kLoopbackBroadcast);
    EnvVar daemon("MKTL_DAEMON_PORT", "30111");
    auto config = Config::from_env(home.string());
    CHECK(config.broadcast == kLoopbackBroadcast);
    CHECK(config.daemon_port == 30111);
    CHECK(config.registry_port == 20103);
  }
  SECTION("bad port in the environment") {
    EnvVar daemon("MKTL_DAEMON_PORT", "port");
    CHECK_THROWS_AS(Config::from_env(home.string()), mktl::ValueError);
  }
  SECTION("defaults without files") {
    auto empty = home / "empty";
    std::filesystem::create_directories(empty);
    auto config = Config::from_env(empty.string());
    CHECK(config.daemon_port == 10111);
    CHECK(config.registry_port == 10103);
    CHECK(config.hosts.empty());
  }
  SECTION("bad discovery.json") {
    std::ofstream(home / "discovery.json") << R"({"daemon_port": "x"})";
    CHECK_THROWS_AS(Config::from_env(home.string()), mktl::ValueError);
  }
  std::filesystem::remove_all(home);
}

TEST_CASE("responder answers a loopback broadcast", "[discovery]") {
  const int port = free_udp_port();
  Responder responder(port, 4321);
  CHECK(responder.port() == port);
  // A broadcast call sits out its whole timeout: long enough for a loaded machine.
  auto found = call(loopback_config(), port, 2.0);
  REQUIRE(found.size() == 1);
  CHECK(found[0] == Found{"127.0.0.1", 4321});

  // first_only returns as soon as the answer is in.
  auto start = std::chrono::steady_clock::now();
  found = call(loopback_config(), port, 5.0, true);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  CHECK(found == std::vector<Found>{{"127.0.0.1", 4321}});
}

TEST_CASE("two responders share one port and both answer", "[discovery]") {
  const int port = free_udp_port();
  Responder first(port, 1111);
  Responder second(port, 2222);
  auto found = call(loopback_config(), port, 2.0);
  CHECK(found.size() == 2);
  CHECK(contains(found, {"127.0.0.1", 1111}));
  CHECK(contains(found, {"127.0.0.1", 2222}));
}

TEST_CASE("call asks configured hosts directly", "[discovery]") {
  const int port = free_udp_port();
  Responder responder(port, 5555, "127.0.0.1");
  Config config;
  config.broadcast.clear();
  config.hosts = {"127.0.0.1", "no-such-host.invalid"};
  // Asking hosts only, the call ends once 127.0.0.1 has answered: the
  // timeout is a bound for a loaded machine, not a wait.
  auto found = call(config, port, 10.0);
  CHECK(found == std::vector<Found>{{"127.0.0.1", 5555}});
}

TEST_CASE("call with nobody listening finds nothing within its timeout", "[discovery]") {
  const int port = free_udp_port();
  auto start = std::chrono::steady_clock::now();
  auto found = call(loopback_config(), port, 0.2);
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(found.empty());
  CHECK(elapsed >= std::chrono::milliseconds(190));
  CHECK(elapsed < std::chrono::seconds(2));
}

TEST_CASE("responder throttles one sender to an answer a second", "[discovery]") {
  const int port = free_udp_port();
  Responder responder(port, 7777);
  RawSocket client;
  client.send("Aloha mKTL", port);
  auto answer = client.receive(2000);
  REQUIRE(answer);
  CHECK(*answer == "E komo mai:7777");

  // Same sender again at once: no answer.
  client.send("Aloha mKTL", port);
  CHECK_FALSE(client.receive(300));

  // Another sender (another port) is not throttled.
  RawSocket other;
  other.send("Aloha mKTL", port);
  CHECK(other.receive(2000) == std::optional<std::string>("E komo mai:7777"));
  CHECK(responder.answered() == 2);

  // After the second is over, the first sender is answered again.
  std::optional<std::string> again;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!again && std::chrono::steady_clock::now() < deadline) {
    client.send("Aloha mKTL", port);
    again = client.receive(250);
  }
  CHECK(again == std::optional<std::string>("E komo mai:7777"));
}

TEST_CASE("responder ignores junk and survives a 64 KiB datagram", "[discovery]") {
  const int port = free_udp_port();
  Responder responder(port, 8888);
  RawSocket client;
  client.send("hello", port);
  client.send("Aloha mKTL, how are you", port);
  client.send("E komo mai:1", port);
  client.send("", port);
  client.send(std::string(65507, 'A'), port);   // the largest IPv4 UDP payload
  CHECK_FALSE(client.receive(300));
  CHECK(responder.answered() == 0);

  // Whitespace around the call is stripped, as the reference does.
  client.send("  Aloha mKTL\n", port);
  CHECK(client.receive(2000) == std::optional<std::string>("E komo mai:8888"));
  CHECK(responder.answered() == 1);
}

TEST_CASE("call ignores malformed answers", "[discovery]") {
  RawSocket fake;   // plays a listener that answers badly, then well
  Config config;
  config.broadcast.clear();
  config.hosts = {"127.0.0.1"};
  // The call ends at the first good answer; 10 s only bounds a loaded machine
  // (1 s was once too short under AddressSanitizer in CI).
  auto result = std::async(std::launch::async, [&] { return call(config, fake.port(), 10.0); });
  int caller_port = 0;
  auto datagram = fake.receive(10000, &caller_port);
  REQUIRE(datagram);
  CHECK(*datagram == "Aloha mKTL");
  fake.send("E komo mai:abc", caller_port);
  fake.send("nonsense", caller_port);
  fake.send("E komo mai:4242", caller_port);
  fake.send("E komo mai:4242", caller_port);   // duplicates are folded
  CHECK(result.get() == std::vector<Found>{{"127.0.0.1", 4242}});
}

TEST_CASE("responder stops promptly and frees nothing it does not own", "[discovery]") {
  const int port = free_udp_port();
  auto start = std::chrono::steady_clock::now();
  {
    Responder responder(port, 1234);
    responder.stop();
    responder.stop();   // idempotent
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  // Nobody answers any more.
  CHECK(call(loopback_config(), port, 0.2).empty());
}

// ---- Avahi ---------------------------------------------------------------------

namespace {

bool run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

template <typename Predicate>
bool wait_for(Predicate predicate, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    // Polling an external daemon's state: there is nothing to wait on.
    ::poll(nullptr, 0, 50);
  }
  return predicate();
}

// Makes sure a system D-Bus and an avahi-daemon run, starting them if needed.
// Returns an empty string when ready, else why the test must be skipped.
//
// The avahi-daemon we start is confined to loopback (allow-interfaces=lo,
// IPv4 only, no wide-area, no workstation record) so that its mDNS traffic
// never leaves this machine; Avahi accepts the loopback interface as usable
// (it checks IFF_LOOPBACK or IFF_MULTICAST), so nothing else is needed. Both
// daemons are left running for later tests: stopping them could break a test
// running in parallel.
// True when something accepts connections on the system bus's socket (a
// socket file left behind by a dead dbus-daemon does not count).
bool system_bus_alive() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", "/run/dbus/system_bus_socket");
  bool alive = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return alive;
}

// Why the Avahi test cannot run here (not root, servers not installed), or
// empty when it can. Servers that are installed but do not start fail the test.
std::string avahi_unavailable() {
  if (::geteuid() != 0) return "not root: cannot start dbus-daemon and avahi-daemon";
  if (!run("command -v dbus-daemon") || !run("command -v avahi-daemon")) return "dbus-daemon or avahi-daemon missing";
  return {};
}

// Makes sure a system D-Bus and an avahi-daemon run, starting them if needed.
void ensure_avahi() {
  if (!system_bus_alive()) {
    // A dead bus leaves its socket and pid file behind; dbus-daemon refuses to
    // start over the pid file.
    run("rm -f /run/dbus/system_bus_socket /run/dbus/pid; mkdir -p /run/dbus && dbus-daemon --system --fork");
    REQUIRE(wait_for(system_bus_alive, std::chrono::seconds(10)));
  }
  if (!run("avahi-daemon --check")) {
    const std::string config = "/tmp/mktl-test-avahi-daemon.conf";
    std::ofstream(config) << "[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=lo\n"
                             "[wide-area]\nenable-wide-area=no\n"
                             "[publish]\npublish-hinfo=no\npublish-workstation=no\n";
    run("avahi-daemon --no-drop-root --daemonize --no-chroot -f " + config);
    REQUIRE(wait_for([] { return run("avahi-daemon --check"); }, std::chrono::seconds(10)));
  }
}

}  // namespace

TEST_CASE("Avahi publishes a daemon and browsing finds it", "[avahi]") {
  if (auto why = avahi_unavailable(); !why.empty()) MKTL_SKIP(why);
  ensure_avahi();
  std::random_device random;
  const std::string uuid = "test-" + std::to_string(::getpid()) + "-" + std::to_string(random());
  const std::string alias = "disc" + std::to_string(::getpid());
  AvahiPublisher publisher("avahitest", alias, uuid, 43210, 43211);
  REQUIRE(publisher.wait_established(10.0));
  CHECK(publisher.name().rfind("avahitest " + alias, 0) == 0);

  std::optional<AvahiFound> mine;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (!mine && std::chrono::steady_clock::now() < deadline) {
    for (auto& found : avahi_browse(3.0)) {
      auto it = found.txt.find("uuid");
      if (it != found.txt.end() && it->second == uuid) mine = found;
    }
  }
  REQUIRE(mine);
  CHECK(mine->port == 43210);
  CHECK(mine->name == publisher.name());
  CHECK(mine->txt["store"] == "avahitest");
  CHECK(mine->txt["alias"] == alias);
  CHECK(mine->txt["pub"] == "43211");
  CHECK_FALSE(mine->address.empty());
  CHECK_FALSE(mine->host.empty());
}

// The Avahi code is a module that libmktl loads on first use
// (discovery/avahi_module.hpp). Without it DNS-SD must fail as it does without
// avahi-daemon: publishing throws mktl::RuntimeError, browsing finds nothing.

TEST_CASE("The Avahi module is found next to libmktl", "[avahi]") {
  auto loaded = avahi_module::load("");
  INFO(loaded.error);
  REQUIRE(loaded.table);
  CHECK(loaded.table->abi_version == avahi_module::kAbiVersion);
}

TEST_CASE("A missing or foreign Avahi module is reported with the reason", "[avahi]") {
  auto missing = avahi_module::load("/nonexistent/libmktl_avahi.so");
  CHECK_FALSE(missing.table);
  CHECK_THAT(missing.error, Catch::Contains("/nonexistent/libmktl_avahi.so"));

  // A loadable library that is not the module.
  auto foreign = avahi_module::load("libc.so.6");
  CHECK_FALSE(foreign.table);
  CHECK_THAT(foreign.error, Catch::Contains(avahi_module::kEntryPoint));
}

// Run in a child process by the next test: a process loads the module once,
// so its environment must be set before the first DNS-SD call. Hidden ("[.]")
// from plain runs and from ctest.
TEST_CASE("DNS-SD without its module or daemon (child)", "[.][avahi-child]") {
  const char* expected = std::getenv("MKTL_TEST_EXPECT");
  REQUIRE(expected);
  try {
    AvahiPublisher publisher("avahitest", "unavailable", "uuid", 43210, 43211);
    FAIL("AvahiPublisher did not throw");
  } catch (const mktl::RuntimeError& e) {
    CHECK_THAT(e.what(), Catch::Contains(expected));
  }
  CHECK(avahi_browse(1.0).empty());
}

namespace {

// Runs the hidden child test case above in a new process of this test binary
// with `environment` prepended; returns its exit status and prints its output.
int run_child(const std::string& environment) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  // -w NoTests: fail if the filter selected nothing, so this cannot pass vacuously.
  const std::string command = environment + " '" + self + "' '[avahi-child]' -w NoTests 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe);
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  int status = ::pclose(pipe);
  UNSCOPED_INFO(command << "\n" << output);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("Without the Avahi module, publishing throws and browsing finds nothing", "[avahi]") {
  CHECK(run_child("MKTL_AVAHI_MODULE=/nonexistent/libmktl_avahi.so MKTL_TEST_EXPECT=/nonexistent/libmktl_avahi.so") ==
        0);
}

TEST_CASE("The Avahi module's RuntimeError reaches the caller when D-Bus is unreachable", "[avahi]") {
  // The module loads, and avahi_client_new fails inside it: the exception
  // crosses from libmktl_avahi.so into libmktl and this binary.
  CHECK(run_child("DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent MKTL_TEST_EXPECT=avahi-daemon") == 0);
}

// ---- announce ---------------------------------------------------------------------

namespace {

// A minimal in-process registry: RegistryState behind a transport::Server,
// found through a Responder on a free UDP port.
struct MiniRegistry {
  std::set<std::string> live;
  std::unique_ptr<RegistryState> state;
  mktl::transport::Server server{mktl::transport::ServerOptions{"tcp://127.0.0.1:0", "", 1000},
                                 [this](mktl::transport::Incoming&& request, mktl::transport::Reply reply) {
                                   try {
                                     if (request.target != "_catalog") throw mktl::ValueError("unexpected " + request.target);
                                     auto payload = mktl::protocol::parse_payload(request.payload);
                                     state->process(payload.at("value"), payload.value("override", false));
                                     reply.send(std::string(mktl::protocol::set_ok_payload()));
                                   } catch (const mktl::Error& e) {
                                     reply.error(e.type(), e.text());
                                   }
                                 }};
  std::unique_ptr<Responder> responder;
  int udp_port = free_udp_port();

  MiniRegistry() {
    server.start();
    state = std::make_unique<RegistryState>("127.0.0.1", server.rep_port(), [this](const mktl::Json& block) {
      return live.count(block.at("uuid").get<std::string>()) > 0;
    });
    responder = std::make_unique<Responder>(udp_port, server.rep_port());
  }
};

mktl::Json announced_block(const std::string& alias, const std::string& uuid, const std::string& key) {
  return {{"store", "heater"},
          {"alias", alias},
          {"uuid", uuid},
          {"time", 1.5},
          {"hash", mktl::json::bigint("170141183460469231731687303715884105757")},
          {"provenance", mktl::Json::array({{{"stratum", 0}, {"hostname", "127.0.0.1"}, {"rep", 5000}, {"pub", 5001}}})},
          {"items", {{key, {{"type", "numeric"}}}}}};
}

}  // namespace

TEST_CASE("announce reaches a registry and reports its rejection", "[discovery]") {
  MiniRegistry registry;
  Config config = loopback_config();
  config.registry_port = registry.udp_port;

  CHECK(announce(announced_block("one", "u1", "temp"), config, false, 0.3) == 1);
  auto catalog = registry.state->catalog("heater");
  REQUIRE(catalog.contains("u1"));
  CHECK(catalog["u1"]["hash"] == mktl::json::bigint("170141183460469231731687303715884105757"));

  registry.live = {"u1"};
  try {
    announce(announced_block("two", "u2", "temp"), config, true, 0.3);
    FAIL("a rejected announcement did not throw");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "ValueError");
    CHECK(std::string(e.what()).find("registry at 127.0.0.1:" + std::to_string(registry.server.rep_port())) !=
          std::string::npos);
    CHECK(std::string(e.what()).find("heater.temp") != std::string::npos);
  }

  // Override travels with the announcement (in the payload and in the block).
  registry.live.clear();
  CHECK(announce(announced_block("two", "u2", "temp"), config, true, 0.3) == 1);
  catalog = registry.state->catalog("heater");
  CHECK(catalog.contains("u2"));
  CHECK_FALSE(catalog.contains("u1"));
}

TEST_CASE("announce with no registry around is fine", "[discovery]") {
  Config config = loopback_config();
  config.registry_port = free_udp_port();
  CHECK(announce(announced_block("one", "u1", "temp"), config, false, 0.2) == 0);
}

}  // namespace test_discovery
