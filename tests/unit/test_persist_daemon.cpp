// Persistence through a real markd process: values survive restart, and every
// SET that was answered survives a kill -9 at any moment.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_persist_daemon {

extern char** environ;

namespace {

using mktl::Json;

// A markd child process; reads its "ready" line to learn the request port.
struct Markd {
  pid_t pid = -1;
  FILE* out = nullptr;
  int rep_port = 0;

  // `file_size_limit`: markd's RLIMIT_FSIZE (SIGXFSZ ignored), so that its
  // writes past it fail with EFBIG, as on a full disk.
  Markd(const std::string& home, const std::string& catalog, rlim_t file_size_limit = RLIM_INFINITY) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::string bin = std::string(MKTL_BIN_DIR) + "/markd";
    std::vector<std::string> args = {bin, "--no-discovery", "--bind", "127.0.0.1", "--hostname", "127.0.0.1",
                                     "-c", catalog, "pstore", "p1"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string home_var = "MKTL_HOME=" + home;
    std::vector<char*> envp = {home_var.data(), nullptr};
    // The child inherits the limit and the ignored signal; this process has
    // its own back at once.
    rlimit own{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &own) == 0);
    auto own_xfsz = ::signal(SIGXFSZ, file_size_limit == RLIM_INFINITY ? SIG_DFL : SIG_IGN);
    rlimit limited{file_size_limit, own.rlim_max};
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
    const int spawned = posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), envp.data());
    ::setrlimit(RLIMIT_FSIZE, &own);
    ::signal(SIGXFSZ, own_xfsz);
    REQUIRE(spawned == 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out = ::fdopen(fds[0], "r");
    char line[512];
    REQUIRE(std::fgets(line, sizeof line, out) != nullptr);  // markd exits (EOF) rather than hang
    std::cmatch m;
    REQUIRE(std::regex_search(line, m, std::regex("ready rep=([0-9]+)")));
    rep_port = std::stoi(m[1].str());
  }
  void kill9() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  void term() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
      CHECK(WIFEXITED(status));
      CHECK(WEXITSTATUS(status) == 0);
      pid = -1;
    }
  }
  ~Markd() {
    kill9();
    if (out) std::fclose(out);
  }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(rep_port); }
};

std::string write_catalog(const test::TempDir& dir) {
  std::string path = dir.str() + "/pstore.json";
  std::ofstream(path) << R"({
    "counter": {"type": "numeric", "persist": true, "initial": -1},
    "limited": {"type": "numeric", "persist": true, "max": 100},
    "mode": {"type": "enumerated", "persist": true, "enumerators": {"0": "Off", "1": "On"}},
    "plain": {"type": "numeric", "initial": 7}
  })";
  return path;
}

}  // namespace

TEST_CASE("persisted values survive a restart and win over initial", "[persist-daemon]") {
  test::TempDir home;
  auto catalog = write_catalog(home);
  {
    Markd d(home.str(), catalog);
    mktl::Client client(test::client_options(home));
    client.connect(d.endpoint(), "pstore");
    CHECK(client.get("pstore.counter").value == Json(-1));
    client.set("pstore.counter", Json(41));
    client.set("pstore.mode", Json("On"));
    client.set("pstore.plain", Json(8));
    d.term();
  }
  Markd d(home.str(), catalog);
  mktl::Client client(test::client_options(home));
  client.connect(d.endpoint(), "pstore");
  CHECK(client.get("pstore.counter").value == Json(41));
  CHECK(client.get("pstore.mode").value == Json(1));
  CHECK(client.get("pstore.plain").value == Json(7));  // not persistent: back to initial
}

TEST_CASE("every answered SET survives kill -9 of the daemon", "[persist-daemon]") {
  test::TempDir home;
  auto catalog = write_catalog(home);
  std::int64_t next = 0;
  for (int round = 0; round < 8; ++round) {
    Markd d(home.str(), catalog);
    std::int64_t acked = -1;
    {
      mktl::Client client(test::client_options(home));
      client.connect(d.endpoint(), "pstore");
      if (round > 0) {
        // The value after restart is the last answered one, or the one in flight when killed.
        auto v = client.get("pstore.counter").value.get<std::int64_t>();
        INFO("round " << round << " restored " << v << ", last answered " << next - 1);
        CHECK((v == next - 1 || v == next));
        next = v + 1;
      }
      // A stream of SETs; kill at a point that moves from round to round.
      int count = 5 + round * 7;
      for (int i = 0; i < count; ++i) {
        client.set("pstore.counter", Json(next));
        acked = next++;
      }
      // One more in flight, unanswered, when the kill lands.
      client.set_nowait("pstore.counter", Json(next));
      d.kill9();
    }
    REQUIRE(acked >= 0);
  }
}

TEST_CASE("a SET whose value cannot be saved fails and changes nothing", "[persist-daemon]") {
  test::TempDir home;
  const std::string catalog = home.str() + "/pstore.json";
  std::ofstream(catalog) << R"({"text": {"type": "string", "persist": true}})";
  const std::string big(1 << 20, 'b');
  {
    Markd d(home.str(), catalog, 256 * 1024);  // a 1 MiB value cannot be written
    mktl::Client client(test::client_options(home));
    client.connect(d.endpoint(), "pstore");
    test::Collector got;
    auto subscription = client.subscribe("pstore.text", got.callback());
    // A new subscription misses what is sent before it is connected.
    bool heard = false;
    for (int i = 0; i < 100 && !heard; ++i) {
      client.set("pstore.text", Json("small" + std::to_string(i)));
      heard = got.wait_for_value(Json("small" + std::to_string(i)), std::chrono::milliseconds(100));
    }
    REQUIRE(heard);
    const Json before = client.get("pstore.text").value;
    try {
      client.set("pstore.text", Json(big));
      FAIL("a SET whose value could not be saved succeeded");
    } catch (const mktl::Error& e) {
      CHECK(e.type() == "RuntimeError");
      CHECK_THAT(e.what(), Catch::Contains("pstore.text keeps its previous value: the new one could not be saved"));
    }
    CHECK(client.get("pstore.text").value == before);
    client.set("pstore.text", Json("after"));  // the database takes values again
    REQUIRE(got.wait_for_value(Json("after")));
    {
      std::lock_guard lock(got.mutex);
      for (auto& r : got.readings) CHECK(r.value != Json(big));  // never broadcast
    }
    d.term();
  }
  Markd d(home.str(), catalog);
  mktl::Client client(test::client_options(home));
  client.connect(d.endpoint(), "pstore");
  CHECK(client.get("pstore.text").value == Json("after"));
}

TEST_CASE("a persisted value that no longer validates is not restored", "[persist-daemon]") {
  test::TempDir home;
  auto catalog = write_catalog(home);
  {
    Markd d(home.str(), catalog);
    mktl::Client client(test::client_options(home));
    client.connect(d.endpoint(), "pstore");
    client.set("pstore.limited", Json(90));
    d.term();
  }
  // The catalog tightens the limit: the restored 90 fails validation.
  std::ofstream(catalog) << R"({
    "counter": {"type": "numeric", "persist": true},
    "limited": {"type": "numeric", "persist": true, "max": 50},
    "mode": {"type": "enumerated", "persist": true, "enumerators": {"0": "Off", "1": "On"}},
    "plain": {"type": "numeric"}
  })";
  Markd d(home.str(), catalog);
  mktl::Client client(test::client_options(home));
  client.connect(d.endpoint(), "pstore");
  CHECK(client.get("pstore.limited").value.is_null());
}

TEST_CASE("a corrupt persistence database stops markd with a clear message", "[persist-daemon]") {
  test::TempDir home;
  auto catalog = write_catalog(home);
  std::filesystem::create_directories(home.path / "daemon" / "persist" / "pstore");
  std::ofstream(home.path / "daemon" / "persist" / "pstore" / "p1.sqlite3") << std::string(8192, 'x');
  std::string cmd = std::string("MKTL_HOME=") + home.str() + " " + MKTL_BIN_DIR +
                    "/markd --no-discovery --bind 127.0.0.1 -c " + catalog + " pstore p1 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) output += buf;
  int status = ::pclose(p);
  CHECK(WEXITSTATUS(status) != 0);
  CHECK_THAT(output, Catch::Contains("p1.sqlite3"));
  CHECK_THAT(output, Catch::Contains("move it aside"));
}

}  // namespace test_persist_daemon
