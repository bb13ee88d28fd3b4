// The registry's liveness sweep (RegistryState::sweep): dropping daemons that
// stopped answering, taking them back, forgetting them. No sockets: liveness
// and the daemons' current blocks come from the test, time is a parameter.
#include "discovery/registry_state.hpp"

#include <mktl/error.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_registry_sweep {

using mktl::Json;
using mktl::discovery::RegistryState;

namespace {

Json block(const std::string& alias, const std::string& uuid, std::vector<std::string> keys, int rep,
           Json hash = 1) {
  Json items = Json::object();
  for (const auto& key : keys) items[key] = {{"type", "numeric"}};
  return Json{{"store", "heater"}, {"alias", alias}, {"uuid", uuid}, {"time", 100.0}, {"hash", hash},
              {"provenance", Json::array({{{"stratum", 0}, {"hostname", "hosta"}, {"rep", rep}, {"pub", rep + 1}}})},
              {"items", items}};
}

// Daemons that answer (by UUID) and what they serve now (by UUID).
struct Fixture {
  std::set<std::string> live;
  std::map<std::string, Json> serving;
  RegistryState state{"registryhost", 9000,
                      [this](const Json& b) { return live.count(b.at("uuid").get<std::string>()) > 0; }};
  RegistryState::Fetch fetch = [this](const Json& b) -> std::optional<Json> {
    auto uuid = b.at("uuid").get<std::string>();
    if (!live.count(uuid) || !serving.count(uuid)) return std::nullopt;
    return serving.at(uuid);
  };
  bool knows(const std::string& uuid) {
    try {
      return state.catalog("heater").contains(uuid);
    } catch (const mktl::KeyError&) {
      return false;
    }
  }
};

}  // namespace

TEST_CASE("registry sweep: a daemon that answers stays", "[registry]") {
  Fixture f;
  f.state.process(block("one", "u1", {"temp"}, 100), false);
  f.live = {"u1"};
  for (double t : {0.0, 1.0, 10.0, 100.0}) {
    auto result = f.state.sweep(t, 2.0, 60.0, f.fetch);
    CHECK(result.dropped.empty());
  }
  CHECK(f.knows("u1"));
  CHECK(f.state.lost().empty());
}

TEST_CASE("registry sweep: silent for drop_after seconds means dropped, then taken back when it answers",
          "[registry]") {
  Fixture f;
  Json b = block("one", "u1", {"temp"}, 100);
  f.state.process(b, false);
  f.serving["u1"] = b;

  // Silent since t=0: kept until 2 s have passed.
  CHECK(f.state.sweep(0.0, 2.0, 60.0, f.fetch).dropped.empty());
  CHECK(f.state.sweep(1.5, 2.0, 60.0, f.fetch).dropped.empty());
  CHECK(f.knows("u1"));
  auto dropped = f.state.sweep(2.0, 2.0, 60.0, f.fetch);
  REQUIRE(dropped.dropped.size() == 1);
  CHECK_THAT(dropped.dropped[0], Catch::Contains("one (u1)"));
  CHECK_FALSE(f.knows("u1"));
  CHECK(f.state.hashes() == Json::object());
  CHECK(f.state.lost()["heater"].contains("u1"));

  // Still silent: stays lost.
  CHECK(f.state.sweep(3.0, 2.0, 60.0, f.fetch).relearned.empty());
  CHECK_FALSE(f.knows("u1"));

  // It answers again (its link came back): taken back with our provenance.
  f.live = {"u1"};
  auto back = f.state.sweep(4.0, 2.0, 60.0, f.fetch);
  REQUIRE(back.relearned.size() == 1);
  REQUIRE(f.knows("u1"));
  auto relayed = f.state.catalog("heater")["u1"];
  CHECK(relayed["provenance"].size() == 2);
  CHECK(relayed["provenance"][1]["hostname"] == "registryhost");
  CHECK(f.state.lost().empty());
}

TEST_CASE("registry sweep: an answer in between restarts the silence count", "[registry]") {
  Fixture f;
  f.state.process(block("one", "u1", {"temp"}, 100), false);
  f.state.sweep(0.0, 2.0, 60.0, f.fetch);  // silent from 0
  f.live = {"u1"};
  f.state.sweep(1.0, 2.0, 60.0, f.fetch);  // answers
  f.live.clear();
  CHECK(f.state.sweep(2.5, 2.0, 60.0, f.fetch).dropped.empty());  // silent from 2.5 only
  CHECK(f.state.sweep(4.4, 2.0, 60.0, f.fetch).dropped.empty());
  CHECK(f.state.sweep(4.5, 2.0, 60.0, f.fetch).dropped.size() == 1);
}

TEST_CASE("registry sweep: a lost daemon is forgotten after forget_after", "[registry]") {
  Fixture f;
  f.state.process(block("one", "u1", {"temp"}, 100), false);
  f.state.sweep(0.0, 0.0, 10.0, f.fetch);  // drop_after 0: dropped at the first silence
  REQUIRE_FALSE(f.knows("u1"));
  CHECK(f.state.sweep(9.0, 0.0, 10.0, f.fetch).forgotten.empty());
  CHECK(f.state.sweep(10.0, 0.0, 10.0, f.fetch).forgotten.size() == 1);
  CHECK(f.state.lost().empty());
  // Answering later changes nothing: nobody asks any more.
  f.live = {"u1"};
  f.serving["u1"] = block("one", "u1", {"temp"}, 100);
  CHECK(f.state.sweep(11.0, 0.0, 10.0, f.fetch).relearned.empty());
  CHECK_FALSE(f.knows("u1"));
}

TEST_CASE("registry sweep: a daemon announcing again is no longer lost", "[registry]") {
  Fixture f;
  f.state.process(block("one", "u1", {"temp"}, 100), false);
  f.state.sweep(0.0, 0.0, 60.0, f.fetch);
  REQUIRE(f.state.lost()["heater"].contains("u1"));
  // Restarted on other ports: it announces itself.
  f.state.process(block("one", "u1", {"temp"}, 200), false);
  CHECK(f.state.lost().empty());
  CHECK(f.state.catalog("heater")["u1"]["provenance"][0]["rep"] == 200);
  // The new address answers; the old one is not asked about any more.
  f.live = {"u1"};
  auto result = f.state.sweep(1.0, 0.0, 60.0, f.fetch);
  CHECK(result.dropped.empty());
  CHECK(result.relearned.empty());
}

TEST_CASE("registry sweep: a lost daemon whose keys another daemon took is not taken back", "[registry]") {
  Fixture f;
  f.state.process(block("one", "u1", {"temp"}, 100), false);
  f.serving["u1"] = block("one", "u1", {"temp"}, 100);
  f.state.sweep(0.0, 0.0, 60.0, f.fetch);
  // Another daemon takes the key (override: u1 does not answer).
  f.state.process(block("two", "u2", {"temp"}, 300), true);
  f.live = {"u1", "u2"};
  auto result = f.state.sweep(1.0, 0.0, 60.0, f.fetch);
  CHECK(result.relearned.empty());
  CHECK_FALSE(f.knows("u1"));
  CHECK(f.knows("u2"));
  CHECK(f.state.lost().empty());  // asked once, refused, not asked again
}

TEST_CASE("registry sweep: the block taken back is the daemon's current one", "[registry]") {
  Fixture f;
  f.state.process(block("one", "u1", {"temp"}, 100, 1), false);
  f.state.sweep(0.0, 0.0, 60.0, f.fetch);
  // It restarted at the same address with another catalog.
  f.serving["u1"] = block("one", "u1", {"temp", "power"}, 100, 2);
  f.live = {"u1"};
  REQUIRE(f.state.sweep(1.0, 0.0, 60.0, f.fetch).relearned.size() == 1);
  auto known = f.state.catalog("heater")["u1"];
  CHECK(known["hash"] == 2);
  CHECK(known["items"].contains("power"));
}

}  // namespace test_registry_sweep
