// Bulk values end to end: every dtype, empty arrays, an 8 MiB frame; GET, SET
// and broadcast through a real daemon and client.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <numeric>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_bulk {

using mktl::Bulk;
using mktl::Json;

namespace {

template <class T>
Bulk ramp(std::size_t n, std::vector<std::int64_t> shape = {}) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<T>(i % 97);
  return Bulk::from_vector(std::move(v), std::move(shape));
}

struct BulkFixture {
  test::TempDir home;
  mktl::Daemon daemon{"cam", "cam1", Json::parse(R"({"frame": {"type": "bulk"}, "temp": {"type": "numeric"}})"),
                      test::isolated(home)};
  std::unique_ptr<mktl::Client> client;
  BulkFixture() {
    daemon.start();
    client = std::make_unique<mktl::Client>(test::client_options(home));
    client->connect(daemon.rep_endpoint(), "cam");
  }
  ~BulkFixture() {
    client.reset();
    daemon.stop();
  }
  void round_trip(const Bulk& b) {
    client->set("cam.frame", mktl::Reading(b));
    auto r = client->get("cam.frame");
    REQUIRE(r.bulk.has_value());
    CHECK(r.bulk->dtype() == b.dtype());
    CHECK(r.bulk->shape() == b.shape());
    CHECK(*r.bulk == b);
    CHECK(r.value.is_null());
    CHECK(r.time > 0);
  }
};

}  // namespace

TEST_CASE("a bulk's element count is -1 for a shape with no count", "[bulk]") {
  CHECK(Bulk::from_bytes("", {2, 3}, "uint8").element_count() == 6);
  CHECK(Bulk::from_bytes("", {}, "uint8").element_count() == 1);
  CHECK(Bulk::from_bytes("", {4, 0, -1}, "uint8").element_count() == -1);
  CHECK(Bulk::from_bytes("", {1ll << 62, 1ll << 62, 0}, "uint8").element_count() == 0);
  CHECK(Bulk::from_bytes("", {1ll << 32, 1ll << 32}, "uint8").element_count() == -1);
  CHECK(Bulk::from_bytes("", {424, 4244444444444444444}, "uint8").element_count() == -1);
}

TEST_CASE_METHOD(BulkFixture, "bulk round trips for every dtype", "[bulk]") {
  round_trip(ramp<std::uint8_t>(10));
  round_trip(ramp<std::int8_t>(10));
  round_trip(ramp<std::uint16_t>(12, {3, 4}));
  round_trip(ramp<std::int16_t>(12, {4, 3}));
  round_trip(ramp<std::uint32_t>(8, {2, 2, 2}));
  round_trip(ramp<std::int32_t>(5));
  round_trip(ramp<std::uint64_t>(5));
  round_trip(ramp<std::int64_t>(5));
  round_trip(ramp<float>(7));
  round_trip(ramp<double>(7));
  auto r = client->get("cam.frame");
  auto values = r.bulk->as<double>();
  REQUIRE(values.size() == 7);
  CHECK(values[6] == 6.0);
  CHECK_THROWS_AS(r.bulk->as<float>(), mktl::TypeError);
}

TEST_CASE_METHOD(BulkFixture, "an empty bulk array is a value, not an absent frame", "[bulk]") {
  round_trip(Bulk::from_vector(std::vector<std::uint16_t>{}));
  round_trip(Bulk::from_vector(std::vector<float>{}, {0, 5}));
}

TEST_CASE_METHOD(BulkFixture, "an 8 MiB frame goes through GET, SET and broadcast intact", "[bulk]") {
  const std::size_t n = 8 * 1024 * 1024 / 2;
  auto frame = ramp<std::uint16_t>(n, {2048, 2048});
  test::Collector got;
  auto sub = client->subscribe("cam.frame", got.callback());
  // Small frames until the subscription is live (ZeroMQ's slow-joiner window).
  REQUIRE(test::until_subscribed(
      [&](int i) { client->set("cam.frame", mktl::Reading(ramp<std::uint8_t>(static_cast<std::size_t>(i % 50 + 1)))); },
      [&] { return got.size() > 0; }));
  round_trip(frame);
  std::unique_lock lock(got.mutex);
  REQUIRE(got.cv.wait_for(lock, std::chrono::seconds(20), [&] {
    return got.readings.back().bulk && got.readings.back().bulk->size() == frame.size();
  }));
  CHECK(*got.readings.back().bulk == frame);
}

TEST_CASE_METHOD(BulkFixture, "bulk SETs with a wrong size or dtype are refused", "[bulk]") {
  auto bytes = std::string(10, '\0');
  CHECK_THROWS_WITH(client->set("cam.frame", mktl::Reading(Bulk::from_bytes(bytes, {3, 2}, "uint16"))),
                    Catch::Contains("bulk data has 10 bytes"));
  try {
    client->set("cam.frame", mktl::Reading(Bulk::from_bytes(bytes, {10}, "uint9")));
    FAIL("a SET with an unknown dtype was accepted");
  } catch (const mktl::Error& e) {
    CHECK(e.type() == "TypeError");
    CHECK_THAT(e.what(), Catch::Contains("uint9"));
  }
  // A shape whose product overflows 64 bits (found by fuzz_daemon_request)
  // is refused, not multiplied out.
  CHECK_THROWS_WITH(client->set("cam.frame", mktl::Reading(Bulk::from_bytes(bytes, {424, 4244444444444444444}, "uint16"))),
                    Catch::Contains("describe more than 2**64 bytes"));
  CHECK_THROWS_WITH(client->set("cam.frame", mktl::Reading(Bulk::from_bytes(bytes, {1ll << 62, 2}, "uint16"))),
                    Catch::Contains("describe more than 2**64 bytes"));
  // A zero dimension makes the product zero, whatever the others.
  CHECK_THROWS_WITH(client->set("cam.frame", mktl::Reading(Bulk::from_bytes(bytes, {1ll << 62, 1ll << 62, 0}, "uint16"))),
                    Catch::Contains("need 0"));
  // A bulk frame sent to a plain item is refused too; the daemon goes on.
  CHECK_THROWS_AS(client->set("cam.temp", mktl::Reading(ramp<std::uint8_t>(4))), mktl::Error);
  client->set("cam.temp", Json(3));
  CHECK(client->get("cam.temp").value == Json(3));
}

}  // namespace test_bulk
