#include "support.hpp"

#include <catch2/catch.hpp>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_daemon_smoke {

using mktl::Json;

TEST_CASE("a plain daemon serves GET and SET to a client", "[daemon][smoke]") {
  test::TempDir home;
  Json items = Json::parse(R"({"temp": {"type": "numeric", "units": "degC", "initial": 20.5},
                               "name": {"type": "string"}})");
  mktl::Daemon daemon("demo", "demo1", items, test::isolated(home));
  daemon.start();
  mktl::Client client(test::client_options(home));
  auto stores = client.connect(daemon.rep_endpoint(), "demo");
  REQUIRE(stores == std::vector<std::string>{"demo"});
  CHECK(client.get("demo.temp").value == Json(20.5));
  client.set("demo.temp", Json(21));
  CHECK(client.get("demo.temp").value == Json(21));
  CHECK(client.get("demo.name").value.is_null());
  daemon.stop();
}

}  // namespace test_daemon_smoke
