// Persistence store: real SQLite files in a fresh temporary directory per test.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mktl/error.hpp"
#include "persist/store.hpp"

// This file's own namespace: a unity build compiles several test files as one.
namespace test_persist {

namespace fs = std::filesystem;
using mktl::persist::Saved;
using mktl::persist::Store;

namespace {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device random;
    path_ = fs::temp_directory_path() / ("mktl-persist-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter++) + "-" + std::to_string(random()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  // A database path in a subdirectory that does not exist yet: open() makes it.
  std::string db() const { return (path_ / "daemon" / "persist.sqlite").string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string payload(long long value) { return R"({"value":)" + std::to_string(value) + R"(,"time":1700000000.25})"; }

long long value_of(const Saved& saved) { return nlohmann::json::parse(saved.payload).at("value").get<long long>(); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string open_error(const std::string& path) {
  try {
    Store::open(path);
  } catch (const mktl::RuntimeError& e) {
    return e.what();
  }
  return "";
}

// Reads exactly `size` bytes, waiting at most `timeout` per chunk. Returns
// false at end of file or on timeout.
bool read_exact(int fd, void* buffer, std::size_t size, std::chrono::milliseconds timeout) {
  auto* out = static_cast<char*>(buffer);
  while (size > 0) {
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    ssize_t n = ::read(fd, out, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

TEST_CASE("persist: text and bulk values round trip through the file", "[persist]") {
  TempDir dir;
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 9));
  {
    auto store = Store::open(dir.db());
    CHECK(store->path() == dir.db());
    CHECK(store->load("uuid-a").empty());
    store->save("uuid-a", "text", payload(42), std::nullopt);
    store->save("uuid-a", "empty", R"({"time":1.0,"shape":[0],"dtype":"uint8"})", std::string());
    store->save("uuid-a", "image", R"({"time":2.0,"shape":[1024,1024],"dtype":"uint8"})", big);
    store->save("uuid-b", "text", payload(7), std::nullopt);
  }
  auto store = Store::open(dir.db());
  auto a = store->load("uuid-a");
  REQUIRE(a.size() == 3);
  CHECK(a.at("text").payload == payload(42));
  CHECK_FALSE(a.at("text").bulk.has_value());
  REQUIRE(a.at("empty").bulk.has_value());  // empty bulk is not absent bulk
  CHECK(a.at("empty").bulk->empty());
  CHECK(a.at("empty").payload == R"({"time":1.0,"shape":[0],"dtype":"uint8"})");
  REQUIRE(a.at("image").bulk.has_value());
  CHECK(*a.at("image").bulk == big);
  auto b = store->load("uuid-b");
  REQUIRE(b.size() == 1);
  CHECK(value_of(b.at("text")) == 7);
  CHECK(store->load("uuid-c").empty());
}

TEST_CASE("persist: the last value saved for a key wins", "[persist]") {
  TempDir dir;
  {
    auto store = Store::open(dir.db());
    store->save("u", "k", payload(1), std::string("bulk"));
    store->save("u", "k", payload(2), std::nullopt);  // replacing also drops the old bulk
    // Many queued writes of one key coalesce into one row; the last wins.
    for (int i = 3; i <= 100; ++i) store->save_async("u", "k", payload(i), std::nullopt);
    store->save("u", "other", payload(-1), std::nullopt);
    auto now = store->load("u");
    REQUIRE(now.size() == 2);
    CHECK(value_of(now.at("k")) == 100);
    CHECK_FALSE(now.at("k").bulk.has_value());
  }
  auto store = Store::open(dir.db());
  auto values = store->load("u");
  REQUIRE(values.size() == 2);
  CHECK(value_of(values.at("k")) == 100);
  CHECK(value_of(values.at("other")) == -1);
}

TEST_CASE("persist: concurrent save() calls all commit, sharing transactions", "[persist]") {
  TempDir dir;
  constexpr int threads = 8;
  constexpr int per_thread = 200;
  std::uint64_t commits = 0;
  {
    auto store = Store::open(dir.db());
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i)
          store->save("u", "t" + std::to_string(t) + "." + std::to_string(i), payload(t * 1000 + i), std::nullopt);
      });
    for (auto& worker : workers) worker.join();
    commits = store->commit_count();
  }
  // With 8 callers blocked at once, commits must have been shared.
  CHECK(commits < threads * per_thread);
  CHECK(commits > 0);
  auto values = Store::open(dir.db())->load("u");
  REQUIRE(values.size() == threads * per_thread);
  for (int t = 0; t < threads; ++t)
    for (int i = 0; i < per_thread; ++i)
      CHECK(value_of(values.at("t" + std::to_string(t) + "." + std::to_string(i))) == t * 1000 + i);
}

TEST_CASE("persist: save_async then flush makes values visible to another connection", "[persist]") {
  TempDir dir;
  auto store = Store::open(dir.db());
  store->flush();  // nothing queued: returns at once
  for (int i = 0; i < 500; ++i) store->save_async("u", "k" + std::to_string(i), payload(i), std::nullopt);
  store->flush();
  auto other = Store::open(dir.db());
  auto values = other->load("u");
  REQUIRE(values.size() == 500);
  CHECK(value_of(values.at("k499")) == 499);
}

TEST_CASE("persist: destroying the store commits what was queued", "[persist]") {
  TempDir dir;
  {
    auto store = Store::open(dir.db());
    for (int i = 0; i < 500; ++i)
      store->save_async("u", "k" + std::to_string(i), payload(i), i % 2 ? std::optional<std::string>("b") : std::nullopt);
  }
  auto values = Store::open(dir.db())->load("u");
  REQUIRE(values.size() == 500);
  CHECK(value_of(values.at("k0")) == 0);
  CHECK_FALSE(values.at("k0").bulk.has_value());
  CHECK(values.at("k1").bulk == std::optional<std::string>("b"));
}

TEST_CASE("persist: a file that is not a database is refused and left alone", "[persist]") {
  TempDir dir;
  fs::create_directories(fs::path(dir.db()).parent_path());
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage += static_cast<char>((i * 7919) % 251);
  {
    std::ofstream out(dir.db(), std::ios::binary);
    out << garbage;
  }
  std::string error = open_error(dir.db());
  CHECK_THAT(error, Catch::Contains(dir.db()));
  CHECK_THAT(error, Catch::Contains("not a database"));
  CHECK_THAT(error, Catch::Contains("move it aside"));
  CHECK(read_file(dir.db()) == garbage);  // never overwritten to start afresh
}

TEST_CASE("persist: a database with damaged pages is refused", "[persist]") {
  TempDir dir;
  {
    auto store = Store::open(dir.db());
    for (int i = 0; i < 300; ++i) store->save_async("u", "key" + std::to_string(i), payload(i), std::string(100, 'x'));
  }  // closing the last connection checkpoints the log into the main file
  REQUIRE(fs::file_size(dir.db()) > 3 * 4096);
  {
    std::fstream file(dir.db(), std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(2 * 4096 + 100);  // inside a b-tree page of the table, header intact
    std::string junk(2000, '\xA5');
    file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  std::string error = open_error(dir.db());
  CHECK_THAT(error, Catch::Contains(dir.db()));
  CHECK_THAT(error, Catch::Contains("move it aside"));
}

TEST_CASE("persist: a newer schema version is refused", "[persist]") {
  TempDir dir;
  { Store::open(dir.db())->save("u", "k", payload(1), std::nullopt); }
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(dir.db().c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, ("PRAGMA user_version=" + std::to_string(Store::schema_version + 1)).c_str(), nullptr,
                         nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  std::string error = open_error(dir.db());
  CHECK_THAT(error, Catch::Contains(dir.db()));
  CHECK_THAT(error, Catch::Contains("newer"));
  CHECK_THAT(error, Catch::Contains("move it aside"));
}

TEST_CASE("persist: an unopenable path gives a clear error", "[persist]") {
  TempDir dir;
  fs::create_directories(dir.path() / "adir");
  std::string error = open_error((dir.path() / "adir").string());  // a directory, not a file
  CHECK_THAT(error, Catch::Contains((dir.path() / "adir").string()));
}

// Found from outside (issue 14): a database truncated to 0 bytes started
// silently with the catalog's initial values.
TEST_CASE("persist: a database that held values and comes back empty is refused until its marker is deleted",
          "[persist]") {
  TempDir dir;
  const std::string marker = mktl::persist::marker_path(dir.db());
  auto refusal = [&] {
    try {
      Store::open(dir.db());
    } catch (const mktl::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  {
    auto store = Store::open(dir.db());
    CHECK_FALSE(fs::exists(marker));  // nothing saved yet: nothing to lose
    store->save("u", "a", payload(1), std::nullopt);
    store->save("u", "b", payload(2), std::nullopt);
    store->save("u", "a", payload(3), std::nullopt);  // same key: the count stays
  }
  CHECK_THAT(read_file(marker), Catch::Contains("\nvalues 2\n"));
  { Store::open(dir.db()); }  // a plain restart is fine

  fs::resize_file(dir.db(), 0);
  REQUIRE_FALSE(fs::exists(dir.db() + "-wal"));
  std::string error = refusal();
  CHECK_THAT(error, Catch::StartsWith(dir.db() + ": the persistence database is empty (0 bytes), but " + marker +
                                      " records that it held 2 saved value(s)"));
  CHECK_THAT(error, Catch::Contains("delete " + marker + " to start without persisted values"));
  CHECK(fs::file_size(dir.db()) == 0);  // left as found

  fs::remove(dir.db());
  CHECK_THAT(refusal(), Catch::StartsWith(dir.db() + ": the persistence database is missing, but " + marker));
  CHECK_FALSE(fs::exists(dir.db()));  // not created behind the user's back

  {  // a valid database without the values (replaced by a fresh one)
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(dir.db().c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  CHECK_THAT(refusal(), Catch::StartsWith(dir.db() + ": the persistence database is empty (no saved value), but " + marker));

  // The way out: delete the marker; it comes back with the first value saved.
  fs::remove(marker);
  {
    auto store = Store::open(dir.db());
    CHECK(store->load("u").empty());
    store->save("u", "c", payload(4), std::nullopt);
  }
  CHECK_THAT(read_file(marker), Catch::Contains("\nvalues 1\n"));
}

TEST_CASE("persist: a database written before markers existed gets one at open", "[persist]") {
  TempDir dir;
  { Store::open(dir.db())->save("u", "a", payload(1), std::nullopt); }
  fs::remove(mktl::persist::marker_path(dir.db()));
  { Store::open(dir.db()); }
  CHECK_THAT(read_file(mktl::persist::marker_path(dir.db())), Catch::Contains("\nvalues 1\n"));
}

TEST_CASE("persist: a database the daemon may not read or write says permission denied", "[persist]") {
  TempDir dir;
  { Store::open(dir.db())->save("u", "a", payload(1), std::nullopt); }
  // root may open anything: the child becomes nobody first. Each case runs in
  // a child so the test process keeps its identity.
  auto error_as_other_user = [&](fs::perms mode) {
    fs::permissions(dir.db(), mode);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
      std::string text = "opened";
      try {
        Store::open(dir.db());
      } catch (const std::exception& e) {
        text = e.what();
      }
      if (::write(fds[1], text.data(), text.size()) < 0) ::_exit(11);
      ::_exit(0);
    }
    ::close(fds[1]);
    std::string text;
    char buffer[512];
    ssize_t n;
    while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return text;
  };
  const bool root = ::geteuid() == 0;
  // Unreadable for the daemon's user.
  std::string error = error_as_other_user(root ? fs::perms::owner_read | fs::perms::owner_write : fs::perms::none);
  CHECK_THAT(error, Catch::Contains(dir.db()));
  CHECK_THAT(error, Catch::Contains("permission denied"));
  // Readable but not writable.
  error = error_as_other_user(root ? fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read
                                   : fs::perms::owner_read);
  CHECK_THAT(error, Catch::Contains(dir.db()));
  CHECK_THAT(error, Catch::Contains("permission denied"));
}

TEST_CASE("persist: a failed write makes save() and flush() throw", "[persist]") {
  TempDir dir;
  // The file size limit (a real EFBIG from write(2)) is set in a child so the
  // test process keeps its own limits.
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 0;
    try {
      auto store = Store::open(dir.db());
      store->save("u", "small", payload(1), std::nullopt);
      ::signal(SIGXFSZ, SIG_IGN);
      rlimit limit{256 * 1024, RLIM_INFINITY};
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
      std::string big(1 << 20, 'x');
      code = 11;
      try {
        store->save("u", "big", payload(2), big);
        ::_exit(12);  // must not report success
      } catch (const mktl::RuntimeError& e) {
        if (!std::strstr(e.what(), "not saved")) ::_exit(13);
      }
      store->save_async("u", "big", payload(3), big);
      try {
        store->flush();
        ::_exit(14);
      } catch (const mktl::RuntimeError&) {
      }
      // The same once the failed batch has ended before flush() is called
      // (a save() queued behind it returns only then): flush() still reports
      // it, once.
      store->save_async("u", "big", payload(5), big);
      try {
        store->save("u", "behind", payload(6), std::nullopt);
      } catch (const mktl::RuntimeError&) {  // it joined the failing batch
      }
      try {
        store->flush();
        ::_exit(16);
      } catch (const mktl::RuntimeError&) {
      }
      store->flush();  // reported already
      code = 15;
      store->save("u", "after", payload(4), std::nullopt);  // the store recovers
      code = 0;
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  auto values = Store::open(dir.db())->load("u");
  CHECK(values.count("small") == 1);
  CHECK(values.count("after") == 1);
  CHECK(values.count("big") == 0);
}

TEST_CASE("persist: every answered save() survives kill -9", "[persist]") {
  constexpr int writers = 4;
  struct Ack {
    std::uint32_t writer;
    std::uint32_t value;
  };
  for (int round = 0; round < 20; ++round) {
    TempDir dir;
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      try {
        auto store = Store::open(dir.db());
        std::vector<std::thread> threads;
        for (std::uint32_t w = 0; w < writers; ++w)
          threads.emplace_back([&, w] {
            for (std::uint32_t i = 0; i < 1000000; ++i) {
              store->save("u", "w" + std::to_string(w), payload(i), std::nullopt);
              Ack ack{w, i};  // written only after save() returned
              if (::write(fds[1], &ack, sizeof ack) != sizeof ack) ::_exit(3);
            }
          });
        for (auto& thread : threads) thread.join();
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    // Kill points spread from the very first answer to a few dozen in.
    const int kill_after = 1 + (round * 11) % 40;
    std::array<long long, writers> acked;
    acked.fill(-1);
    Ack ack{};
    bool ok = true;
    for (int n = 0; n < kill_after && ok; ++n) {
      ok = read_exact(fds[0], &ack, sizeof ack, std::chrono::seconds(10));
      if (ok) acked.at(ack.writer) = std::max<long long>(acked.at(ack.writer), ack.value);
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    // Answers that were in the pipe when it died count too.
    while (ok && read_exact(fds[0], &ack, sizeof ack, std::chrono::seconds(1)))
      acked.at(ack.writer) = std::max<long long>(acked.at(ack.writer), ack.value);
    ::close(fds[0]);
    INFO("round " << round << ", kill after " << kill_after << " answers");
    REQUIRE(ok);
    REQUIRE(WIFSIGNALED(status));
    auto values = Store::open(dir.db())->load("u");
    for (int w = 0; w < writers; ++w) {
      if (acked[w] < 0) continue;
      INFO("writer " << w << " last answered " << acked[w]);
      REQUIRE(values.count("w" + std::to_string(w)) == 1);
      CHECK(value_of(values.at("w" + std::to_string(w))) >= acked[w]);
    }
  }
}

// Not run by default: `mktl_tests "[.persist-bench]"` prints saves/s.
TEST_CASE("persist: group commit throughput", "[.persist-bench]") {
  for (int threads : {1, 8}) {
    TempDir dir;
    auto store = Store::open(dir.db());
    const int per_thread = 500;
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) store->save("u", "t" + std::to_string(t), payload(i), std::nullopt);
      });
    for (auto& worker : workers) worker.join();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << threads << " thread(s): " << static_cast<long>(threads * per_thread / seconds) << " saves/s, "
              << store->commit_count() << " commits for " << threads * per_thread << " saves\n";
    CHECK(store->load("u").size() == static_cast<std::size_t>(threads));
  }
}

}  // namespace test_persist
