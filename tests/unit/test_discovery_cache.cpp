// The client catalog cache (discovery/cache.hpp), and a discovery call cut
// short by a stop request. Loopback only.
#include "discovery/cache.hpp"
#include "discovery/udp.hpp"

#include "support.hpp"

#include <mktl/error.hpp>
#include <mktl/json.hpp>

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <stop_token>
#include <string>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_discovery_cache {

using mktl::Json;
using namespace mktl::discovery;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::size_t entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& entry : fs::directory_iterator(dir)) ++n;
  return n;
}

Json sample_block() {
  Json block = Json::object();
  block["store"] = "demo";
  block["alias"] = "demo1";
  block["uuid"] = "5f0c2a3e-8d1b-4c57-9e1a-2b3c4d5e6f70";
  block["time"] = 1733000000.25;
  block["hash"] = mktl::json::bigint("300000000000000000000000000000000000001");
  block["items"] = Json::parse(R"({"temp": {"type": "numeric", "units": "degC"}})");
  block["provenance"] = Json::parse(R"([{"stratum": 0, "hostname": "127.0.0.1", "rep": 40001, "pub": 40002}])");
  return block;
}

}  // namespace

TEST_CASE("a block is cached in the reference's layout and read back", "[discovery][cache]") {
  test::TempDir home;
  const Json block = sample_block();
  const fs::path root = fs::path(home.str()) / "client" / "cache";
  const fs::path file = root / "demo" / "5f0c2a3e-8d1b-4c57-9e1a-2b3c4d5e6f70.json";

  write_cached_block(home.str(), "demo", block);
  REQUIRE(fs::is_regular_file(file));
  CHECK(mktl::json::dump(mktl::json::parse(read_text(file))) == mktl::json::dump(block));
  CHECK((fs::status(file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write |
                                                             fs::perms::group_read | fs::perms::group_write |
                                                             fs::perms::others_read));
  CHECK(entries(root / "demo") == 1);
  CHECK(entries(root) == 1);  // no temporary file left beside the store directory
  Json read = read_cached_blocks(home.str(), "demo");
  REQUIRE(read.size() == 1);
  CHECK(mktl::json::dump(read[block["uuid"].get<std::string>()]) == mktl::json::dump(block));

  SECTION("writing the same UUID again replaces the file") {
    Json changed = block;
    changed["hash"] = 7;
    write_cached_block(home.str(), "demo", changed);
    CHECK(entries(root / "demo") == 1);
    CHECK(read_cached_blocks(home.str(), "demo")[block["uuid"].get<std::string>()]["hash"] == 7);
  }
  SECTION("files that are not cached blocks are skipped") {
    std::ofstream(root / "demo" / "junk.json") << "not JSON";
    std::ofstream(root / "demo" / "empty.json") << "{}";
    std::ofstream(root / "demo" / "number-uuid.json") << R"({"uuid": 5})";
    Json other = block;
    other["uuid"] = "another";
    std::ofstream(root / "demo" / "another.json.tmp") << mktl::json::dump(other);
    Json blocks = read_cached_blocks(home.str(), "demo");
    CHECK(blocks.size() == 1);
    CHECK(blocks.contains(block["uuid"].get<std::string>()));
  }
  SECTION("a store with no cache has no blocks") {
    CHECK(read_cached_blocks(home.str(), "other") == Json::object());
  }
}

TEST_CASE("a block that cannot name its cache file is refused", "[discovery][cache]") {
  test::TempDir home;
  Json block = sample_block();
  SECTION("no uuid") {
    block.erase("uuid");
    CHECK_THROWS_AS(write_cached_block(home.str(), "demo", block), mktl::ValueError);
  }
  SECTION("a uuid that is a path") {
    block["uuid"] = "../../escape";
    CHECK_THROWS_AS(write_cached_block(home.str(), "demo", block), mktl::ValueError);
  }
  SECTION("not an object") {
    CHECK_THROWS_AS(write_cached_block(home.str(), "demo", Json::array()), mktl::ValueError);
  }
  CHECK_FALSE(fs::exists(fs::path(home.str()) / "client"));
}

TEST_CASE("a discovery call ends when a stop is requested", "[discovery]") {
  // A UDP socket that receives the call and never answers it.
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const int port = ntohs(address.sin_port);

  Config config;
  config.broadcast.clear();
  config.hosts = {"127.0.0.1"};

  SECTION("while it waits for answers") {
    std::stop_source stop;
    auto answers = std::async(std::launch::async, [&] { return call(config, port, 60.0, false, stop.get_token()); });
    // The call has sent its datagram: it is waiting (or about to).
    pollfd sent{fd, POLLIN, 0};
    REQUIRE(::poll(&sent, 1, 10000) == 1);
    stop.request_stop();
    REQUIRE(answers.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    CHECK(answers.get().empty());
  }
  SECTION("before it starts: nothing is sent") {
    std::stop_source stop;
    stop.request_stop();
    CHECK(call(config, port, 60.0, false, stop.get_token()).empty());
    pollfd sent{fd, POLLIN, 0};
    CHECK(::poll(&sent, 1, 0) == 0);
  }
  ::close(fd);
}

}  // namespace test_discovery_cache
