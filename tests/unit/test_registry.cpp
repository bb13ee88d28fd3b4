// The registry's rules for announced catalog blocks (discovery/registry_state).
#include "discovery/registry_state.hpp"

#include <mktl/error.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_registry {

using mktl::Json;
using mktl::discovery::RegistryState;
using Outcome = RegistryState::Outcome;

namespace {

Json make_block(const std::string& store, const std::string& alias, const std::string& uuid,
                std::vector<std::string> keys, int rep, Json hash = 1, double time = 100.0,
                const std::string& host = "daemonhost") {
  Json items = Json::object();
  for (const auto& key : keys) items[key] = {{"type", "numeric"}, {"units", "degC"}};
  return Json{{"store", store},   {"alias", alias}, {"uuid", uuid},
              {"time", time},     {"hash", hash},
              {"provenance", Json::array({{{"stratum", 0}, {"hostname", host}, {"rep", rep}, {"pub", rep + 1}}})},
              {"items", items}};
}

// A registry whose liveness answers come from a set of live UUIDs, and which
// records every question.
struct Fixture {
  std::set<std::string> live;
  std::vector<std::string> asked;
  RegistryState state{"registryhost", 9000, [this](const Json& block) {
                        auto uuid = block.at("uuid").get<std::string>();
                        asked.push_back(uuid);
                        return live.count(uuid) > 0;
                      }};
};

}  // namespace

TEST_CASE("registry validates the block shape", "[registry]") {
  auto good = make_block("heater", "one", "u1", {"temp"}, 5000);
  CHECK_NOTHROW(RegistryState::validate(good));

  auto broken = [&](auto change) {
    Json block = good;
    change(block);
    return block;
  };
  CHECK_THROWS_AS(RegistryState::validate(Json::array()), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b.erase("store"); })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["store"] = "a.b"; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["alias"] = ""; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["uuid"] = 7; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b.erase("hash"); })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["time"] = "now"; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["provenance"] = Json::array(); })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["provenance"][0]["rep"] = 0; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["provenance"][0]["rep"] = "5000"; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["provenance"][0]["pub"] = 70000; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["provenance"][0]["stratum"] = 1; })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["provenance"][0].erase("hostname"); })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["items"] = Json::array(); })), mktl::ValueError);
  CHECK_THROWS_AS(RegistryState::validate(broken([](Json& b) { b["items"]["temp"] = 3; })), mktl::ValueError);
  try {
    RegistryState::validate(broken([](Json& b) { b["provenance"][0]["rep"] = 0; }));
  } catch (const mktl::ValueError& e) {
    CHECK(std::string(e.what()).find("/provenance/0/rep") != std::string::npos);
  }
}

TEST_CASE("registry remembers a block and appends its provenance", "[registry]") {
  Fixture f;
  auto hash = mktl::json::bigint("123456789012345678901234567890123456789");
  CHECK(f.state.process(make_block("Heater", "one", "u1", {"temp"}, 5000, hash), false) == Outcome::Accepted);
  CHECK(f.asked.empty());
  CHECK(f.state.stores() == std::vector<std::string>{"heater"});

  Json all = f.state.hashes();
  CHECK(all == Json{{"heater", {{"u1", hash}}}});
  CHECK(f.state.hashes("HEATER") == all);

  Json catalog = f.state.catalog("heater");
  REQUIRE(catalog.contains("u1"));
  const Json& provenance = catalog["u1"]["provenance"];
  REQUIRE(provenance.size() == 2);
  CHECK(provenance[1] == Json{{"stratum", 1}, {"hostname", "registryhost"}, {"rep", 9000}});
  CHECK(catalog["u1"]["store"] == "heater");
  CHECK(catalog["u1"]["items"].contains("temp"));

  CHECK_THROWS_AS(f.state.hashes("nothere"), mktl::KeyError);
  CHECK_THROWS_AS(f.state.catalog("nothere"), mktl::KeyError);
  CHECK(RegistryState("h", 1, nullptr).hashes() == Json::object());
}

TEST_CASE("registry: the same daemon re-announcing replaces its block", "[registry]") {
  Fixture f;
  f.live = {"u1"};
  REQUIRE(f.state.process(make_block("heater", "one", "u1", {"temp"}, 5000, 1, 100.0), false) == Outcome::Accepted);
  CHECK(f.state.process(make_block("heater", "one", "u1", {"temp", "power"}, 5000, 2, 200.0), false) ==
        Outcome::Accepted);
  CHECK(f.asked.empty());   // same address: nothing to ask
  CHECK(f.state.hashes("heater")["heater"]["u1"] == 2);
  CHECK(f.state.catalog("heater")["u1"]["items"].contains("power"));
  // Our provenance is appended once, not once per announcement.
  CHECK(f.state.catalog("heater")["u1"]["provenance"].size() == 2);

  // An older copy of the same hash does not replace the newer one.
  CHECK(f.state.process(make_block("heater", "one", "u1", {"temp", "power"}, 5000, 2, 150.0), false) ==
        Outcome::Unchanged);
  CHECK(f.state.catalog("heater")["u1"]["time"] == 200.0);
}

TEST_CASE("registry: the same UUID at another address", "[registry]") {
  Fixture f;
  REQUIRE(f.state.process(make_block("heater", "one", "u1", {"temp"}, 5000), false) == Outcome::Accepted);

  SECTION("is refused while the old copy answers, even with override") {
    f.live = {"u1"};
    CHECK_THROWS_AS(f.state.process(make_block("heater", "one", "u1", {"temp"}, 6000), false), mktl::ValueError);
    try {
      f.state.process(make_block("heater", "one", "u1", {"temp"}, 6000), true);
      FAIL("accepted a second copy of a running daemon");
    } catch (const mktl::ValueError& e) {
      CHECK(std::string(e.what()).find("daemonhost:5000") != std::string::npos);
    }
    CHECK(f.state.catalog("heater")["u1"]["provenance"][0]["rep"] == 5000);
    CHECK(f.asked == std::vector<std::string>{"u1", "u1"});
  }
  SECTION("is a restart when the old copy is gone") {
    CHECK(f.state.process(make_block("heater", "one", "u1", {"temp"}, 6000), false) == Outcome::Accepted);
    CHECK(f.state.catalog("heater")["u1"]["provenance"][0]["rep"] == 6000);
    CHECK(f.state.size() == 1);
  }
}

TEST_CASE("registry: another daemon redefining a key", "[registry]") {
  Fixture f;
  REQUIRE(f.state.process(make_block("heater", "one", "u1", {"temp", "power"}, 5000), false) == Outcome::Accepted);
  auto intruder = make_block("heater", "two", "u2", {"POWER", "volts"}, 6000);

  SECTION("is refused while the owner answers, override or not") {
    f.live = {"u1"};
    CHECK_THROWS_AS(f.state.process(intruder, false), mktl::ValueError);
    try {
      f.state.process(intruder, true);
      FAIL("override displaced a running daemon");
    } catch (const mktl::ValueError& e) {
      const std::string text = e.what();
      CHECK(text.find("heater.power") != std::string::npos);
      CHECK(text.find("daemonhost:5000") != std::string::npos);
    }
    CHECK(f.state.hashes("heater")["heater"].size() == 1);
  }
  SECTION("is refused without override when the owner is gone") {
    try {
      f.state.process(intruder, false);
      FAIL("accepted a conflicting block without override");
    } catch (const mktl::ValueError& e) {
      CHECK(std::string(e.what()).find("override") != std::string::npos);
    }
    CHECK(f.state.catalog("heater").contains("u1"));
    CHECK_FALSE(f.state.catalog("heater").contains("u2"));
  }
  SECTION("replaces the owner with override when the owner is gone") {
    CHECK(f.state.process(intruder, true) == Outcome::Accepted);
    auto catalog = f.state.catalog("heater");
    CHECK_FALSE(catalog.contains("u1"));   // the old block is forgotten, not the new one
    CHECK(catalog.contains("u2"));
  }
  SECTION("the reference's in-block override flag counts, and is not stored") {
    intruder["override"] = true;
    CHECK(f.state.process(intruder, false) == Outcome::Accepted);
    CHECK_FALSE(f.state.catalog("heater")["u2"].contains("override"));
  }
}

TEST_CASE("registry: another daemon taking a known alias", "[registry]") {
  Fixture f;
  REQUIRE(f.state.process(make_block("heater", "one", "u1", {"temp"}, 5000), false) == Outcome::Accepted);
  auto same_alias = make_block("heater", "ONE", "u2", {"other"}, 6000);
  f.live = {"u1"};
  CHECK_THROWS_AS(f.state.process(same_alias, true), mktl::ValueError);
  f.live.clear();
  CHECK_THROWS_AS(f.state.process(same_alias, false), mktl::ValueError);
  CHECK(f.state.process(same_alias, true) == Outcome::Accepted);
  CHECK(f.state.catalog("heater").size() == 1);
  CHECK(f.state.catalog("heater").contains("u2"));
}

TEST_CASE("registry: unrelated blocks coexist without liveness checks", "[registry]") {
  Fixture f;
  CHECK(f.state.process(make_block("heater", "one", "u1", {"temp"}, 5000), false) == Outcome::Accepted);
  CHECK(f.state.process(make_block("heater", "two", "u2", {"power"}, 6000), false) == Outcome::Accepted);
  // The same key in another store is no conflict.
  CHECK(f.state.process(make_block("camera", "one", "u3", {"temp"}, 7000), false) == Outcome::Accepted);
  CHECK(f.asked.empty());
  CHECK(f.state.size() == 3);
  CHECK(f.state.hashes() == Json{{"camera", {{"u3", 1}}}, {"heater", {{"u1", 1}, {"u2", 1}}}});
}

TEST_CASE("registry: liveness is asked once per old block per announcement", "[registry]") {
  Fixture f;
  REQUIRE(f.state.process(make_block("heater", "one", "u1", {"a", "b"}, 5000), false) == Outcome::Accepted);
  REQUIRE(f.state.process(make_block("heater", "two", "u2", {"c"}, 5002), false) == Outcome::Accepted);
  // Clashes with both u1 (alias and keys) and u2 (key); both are gone.
  CHECK(f.state.process(make_block("heater", "one", "u3", {"a", "b", "c"}, 6000), true) == Outcome::Accepted);
  std::multiset<std::string> asked(f.asked.begin(), f.asked.end());
  CHECK(asked == std::multiset<std::string>{"u1", "u2"});
  CHECK(f.state.catalog("heater").size() == 1);
}

TEST_CASE("registry: relays and loops", "[registry]") {
  Fixture f;
  SECTION("a relayed block gets the next stratum") {
    auto relayed = make_block("heater", "one", "u1", {"temp"}, 5000);
    relayed["provenance"].push_back({{"stratum", 1}, {"hostname", "otherregistry"}, {"rep", 9100}});
    CHECK(f.state.process(relayed, false) == Outcome::Accepted);
    auto provenance = f.state.catalog("heater")["u1"]["provenance"];
    REQUIRE(provenance.size() == 3);
    CHECK(provenance[2]["stratum"] == 2);
    CHECK(provenance[2]["hostname"] == "registryhost");
    CHECK_FALSE(provenance[2].contains("pub"));
  }
  SECTION("a block that already passed through us is ignored") {
    auto looped = make_block("heater", "one", "u1", {"temp"}, 5000);
    looped["provenance"].push_back({{"stratum", 1}, {"hostname", "registryhost"}, {"rep", 9000}});
    CHECK(f.state.process(looped, false) == Outcome::Loop);
    CHECK(f.state.size() == 0);
  }
}

}  // namespace test_registry
