// Protocol 'a' as a daemon speaks it, checked byte by byte with a raw DEALER
// and a raw SUB (independent of mktl::Client).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <set>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_daemon_protocol {

using mktl::Json;
using Frames = std::vector<std::string>;

namespace {

const char* kItems = R"({
  "temp": {"type": "numeric", "units": "degC", "initial": 20.5},
  "temperature": {"type": "numeric"},
  "name": {"type": "string"},
  "never": {"description": "never given a value"},
  "ro": {"type": "numeric", "settable": false, "initial": 1},
  "secret": {"type": "string", "gettable": false},
  "mode": {"type": "enumerated", "enumerators": {"0": "Off", "1": "On"}},
  "bits": {"type": "mask", "enumerators": {"0": "A", "1": "B", "None": "Clear"}},
  "flag": {"type": "boolean"},
  "image": {"type": "bulk"}
})";

struct Fixture {
  test::TempDir home;
  mktl::Daemon daemon{"demo", "demo1", Json::parse(kItems), test::isolated(home)};
  std::unique_ptr<test::RawDealer> dealer;
  int next = 0;
  Fixture() {
    daemon.start();
    dealer = std::make_unique<test::RawDealer>(daemon.rep_endpoint());
  }
  ~Fixture() { daemon.stop(); }
  std::string id() {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", next++);
    return buf;
  }
  Frames recv() {
    auto m = dealer->recv();
    REQUIRE(m);
    return *m;
  }
  // A request that must get [ACK] then [REP]; returns the REP.
  Frames ack_then_rep(const std::string& type, const std::string& target, const std::string& payload = {},
                      const std::optional<std::string>& bulk = std::nullopt) {
    auto i = id();
    dealer->request(i, type, target, payload, {}, bulk);
    auto ack = recv();
    CHECK(ack == Frames{"a", i, "ACK", "", "", ""});
    auto rep = recv();
    REQUIRE(rep.size() >= 6);
    CHECK(rep[0] == "a");
    CHECK(rep[1] == i);
    CHECK(rep[2] == "REP");
    CHECK(rep[3] == target);
    CHECK(rep[4].empty());
    return rep;
  }
  // A plain GET of demo.temp answers: the daemon is alive and well.
  void still_answers() {
    auto rep = ack_then_rep("GET", "demo.temp");
    auto p = mktl::json::parse(rep[5]);
    CHECK(p.contains("value"));
    CHECK(p["time"].is_number());
  }
  void set(const std::string& key, const Json& value) {
    auto rep = ack_then_rep("SET", key, mktl::json::dump(Json{{"value", value}}));
    REQUIRE(mktl::json::parse(rep[5]) == Json{{"value", true}});
  }
};

Json payload(const Frames& f) { return mktl::json::parse(f.at(5)); }

// error {type, text} of a REP (null when it succeeded).
Json error_of(const Frames& f) {
  auto p = payload(f);
  return p.is_object() && p.contains("error") ? p["error"] : Json();
}

void check_error(const Frames& rep, const std::string& type, const std::string& text) {
  auto e = error_of(rep);
  INFO(rep.at(5));
  REQUIRE(e.is_object());
  CHECK(e["type"] == type);
  CHECK(e["text"] == text);
}

std::string hex_hash(const Json& hash) { return mktl::json::dump(hash); }

}  // namespace

TEST_CASE("GET answers ACK then REP with value and time", "[protocol]") {
  Fixture f;
  auto rep = f.ack_then_rep("GET", "demo.temp");
  REQUIRE(rep.size() == 6);
  auto p = payload(rep);
  CHECK(p["value"] == Json(20.5));
  CHECK(p["time"].is_number());
  CHECK(p["time"].get<double>() > 1e9);
  CHECK_FALSE(p.contains("error"));
}

TEST_CASE("GET of an item never set answers null with a time", "[protocol]") {
  Fixture f;
  auto p = payload(f.ack_then_rep("GET", "demo.never"));
  CHECK(p.contains("value"));
  CHECK(p["value"].is_null());
  CHECK(p["time"].get<double>() > 1e9);
}

TEST_CASE("SET answers ACK then REP {value: true}, and the value sticks", "[protocol]") {
  Fixture f;
  auto rep = f.ack_then_rep("SET", "demo.temp", R"({"value": 42})");
  CHECK(payload(rep) == Json{{"value", true}});
  auto p = payload(f.ack_then_rep("GET", "demo.temp"));
  CHECK(p["value"] == Json(42));
  CHECK(p["value"].is_number_integer());
  // Case-insensitive keys travel lower case; a string is validated as a string.
  f.set("demo.name", "hello");
  CHECK(payload(f.ack_then_rep("GET", "demo.name"))["value"] == "hello");
}

TEST_CASE("request flags NO_ACK and NO_REP", "[protocol]") {
  Fixture f;
  // After a flagged SET, a refresh GET of the same item runs in the item's
  // order: when its REP comes, any REP of the SET would have come before it.
  auto refresh_get = [&](const Json& expect) {
    auto g = f.id();
    f.dealer->request(g, "GET", "demo.temp", R"({"refresh": true})");
    CHECK(f.recv() == Frames{"a", g, "ACK", "", "", ""});
    auto rep = f.recv();
    REQUIRE(rep.size() == 6);
    CHECK(rep[1] == g);
    CHECK(rep[2] == "REP");
    CHECK(payload(rep)["value"] == expect);
  };

  SECTION("NO_ACK: only the REP") {
    auto i = f.id();
    f.dealer->request(i, "SET", "demo.temp", R"({"value": 31})", std::string("\x01", 1));
    auto rep = f.recv();
    CHECK(rep[1] == i);
    CHECK(rep[2] == "REP");
    CHECK(payload(rep) == Json{{"value", true}});
    auto g = f.id();
    f.dealer->request(g, "GET", "demo.temp", {}, std::string("\x01", 1));
    rep = f.recv();
    CHECK(rep[1] == g);
    CHECK(rep[2] == "REP");
    CHECK(payload(rep)["value"] == 31);
  }
  SECTION("NO_REP: only the ACK, and the SET is applied") {
    auto i = f.id();
    f.dealer->request(i, "SET", "demo.temp", R"({"value": 32})", std::string("\x02", 1));
    CHECK(f.recv() == Frames{"a", i, "ACK", "", "", ""});
    refresh_get(32);
  }
  SECTION("NO_ACK|NO_REP: nothing at all, and the SET is applied") {
    f.dealer->request(f.id(), "SET", "demo.temp", R"({"value": 33})", std::string("\x03", 1));
    refresh_get(33);
  }
  SECTION("multi-byte flags \\x00\\x02 mean NO_REP") {
    auto i = f.id();
    f.dealer->request(i, "SET", "demo.temp", R"({"value": 34})", std::string("\x00\x02", 2));
    CHECK(f.recv() == Frames{"a", i, "ACK", "", "", ""});
    refresh_get(34);
  }
  SECTION("a GET with NO_REP is acknowledged only") {
    auto i = f.id();
    f.dealer->request(i, "GET", "demo.temp", {}, std::string("\x02", 1));
    CHECK(f.recv() == Frames{"a", i, "ACK", "", "", ""});
    refresh_get(20.5);
  }
  f.still_answers();
}

TEST_CASE("request errors carry the reference's types and texts", "[protocol]") {
  Fixture f;
  SECTION("unknown key") {
    check_error(f.ack_then_rep("GET", "demo.nope"), "KeyError", "\"this daemon does not contain 'nope'\"");
    check_error(f.ack_then_rep("SET", "demo.nope", R"({"value": 1})"), "KeyError",
                "\"this daemon does not contain 'nope'\"");
  }
  SECTION("key of another store") {
    check_error(f.ack_then_rep("GET", "other.temp"), "ValueError",
                "this request is for 'other', but this daemon is in 'demo'");
  }
  SECTION("SET of a read-only item") {
    check_error(f.ack_then_rep("SET", "demo.ro", R"({"value": 2})"), "TypeError", "ro is not a settable item");
    CHECK(payload(f.ack_then_rep("GET", "demo.ro"))["value"] == 1);
  }
  SECTION("GET of an item that is not gettable") {
    check_error(f.ack_then_rep("GET", "demo.secret"), "TypeError", "secret is not a gettable item");
    // ...but it can still be set.
    CHECK(payload(f.ack_then_rep("SET", "demo.secret", R"({"value": "x"})")) == Json{{"value", true}});
  }
  SECTION("enumerated value that is not an enumerator") {
    check_error(f.ack_then_rep("SET", "demo.mode", R"({"value": "Bogus"})"), "KeyError",
                "\"invalid enumerator: 'Bogus'\"");
    check_error(f.ack_then_rep("SET", "demo.mode", R"({"value": 7})"), "KeyError", "\"invalid enumerator: '7'\"");
    // An enumerator name is converted to its number.
    f.set("demo.mode", "On");
    CHECK(payload(f.ack_then_rep("GET", "demo.mode"))["value"] == 1);
  }
  SECTION("boolean value that is not an enumerator") {
    auto e = error_of(f.ack_then_rep("SET", "demo.flag", R"({"value": "maybe"})"));
    CHECK(e["type"] == "KeyError");
    CHECK_THAT(e["text"].get<std::string>(), Catch::Contains("invalid enumerator"));
    f.set("demo.flag", "True");
    CHECK(payload(f.ack_then_rep("GET", "demo.flag"))["value"] == true);
  }
  SECTION("mask with unknown bits") {
    auto e = error_of(f.ack_then_rep("SET", "demo.bits", R"({"value": 8})"));
    CHECK(e["type"] == "KeyError");
    CHECK_THAT(e["text"].get<std::string>(), Catch::Contains("value contains unknown active bits: 8"));
    f.set("demo.bits", 3);
    CHECK(payload(f.ack_then_rep("GET", "demo.bits"))["value"] == 3);
  }
  SECTION("numeric value that is not a number") {
    check_error(f.ack_then_rep("SET", "demo.temp", R"({"value": "abc"})"), "ValueError",
                "could not convert string to float: 'abc'");
    // A number in a string is converted.
    f.set("demo.temp", "17");
    CHECK(payload(f.ack_then_rep("GET", "demo.temp"))["value"] == 17);
  }
  SECTION("SET with an empty payload gets an error REP, not silence") {
    CHECK(error_of(f.ack_then_rep("SET", "demo.temp", ""))["type"] == "ValueError");
  }
  SECTION("SET with a payload without value") {
    CHECK(error_of(f.ack_then_rep("SET", "demo.temp", R"({"time": 12.5})"))["type"] == "ValueError");
  }
  SECTION("invalid JSON or a non-object payload") {
    CHECK(error_of(f.ack_then_rep("SET", "demo.temp", R"({"value": )"))["type"] == "ValueError");
    CHECK(error_of(f.ack_then_rep("SET", "demo.temp", "[1, 2]"))["type"] == "ValueError");
    CHECK(error_of(f.ack_then_rep("GET", "demo.temp", "{nope"))["type"] == "ValueError");
    CHECK(error_of(f.ack_then_rep("GET", "demo.temp", "42"))["type"] == "ValueError");
    CHECK(error_of(f.ack_then_rep("GET", "demo.never", "\"refresh\""))["type"] == "ValueError");
  }
  // The value survives every refused SET.
  f.still_answers();
}

TEST_CASE("malformed requests get an error REP with their id, or are dropped", "[protocol]") {
  Fixture f;
  auto expect_error_rep = [&](const std::string& id) {
    auto rep = f.recv();  // no ACK for a request that could not be decoded
    REQUIRE(rep.size() == 6);
    CHECK(rep[0] == "a");
    CHECK(rep[1] == id);
    CHECK(rep[2] == "REP");
    CHECK(error_of(rep)["type"] == "ValueError");
    f.still_answers();
  };
  SECTION("wrong version") {
    auto i = f.id();
    f.dealer->send({"b", i, "GET", "demo.temp", "", ""});
    expect_error_rep(i);
  }
  SECTION("5 frames") {
    auto i = f.id();
    f.dealer->send({"a", i, "GET", "demo.temp", ""});
    expect_error_rep(i);
  }
  SECTION("8 frames") {
    auto i = f.id();
    f.dealer->send({"a", i, "SET", "demo.image", "", "{}", "bulk", "extra"});
    expect_error_rep(i);
  }
  SECTION("40 frames: those past the receive cap are read and dropped") {
    auto i = f.id();
    Frames frames = {"a", i, "SET", "demo.image", "", "{}"};
    frames.resize(40, "x");
    f.dealer->send(frames);
    expect_error_rep(i);
  }
  SECTION("unknown type FOO") {
    auto i = f.id();
    f.dealer->send({"a", i, "FOO", "demo.temp", "", ""});
    expect_error_rep(i);
  }
  SECTION("a response type sent as a request") {
    auto i = f.id();
    f.dealer->send({"a", i, "REP", "demo.temp", "", ""});
    expect_error_rep(i);
  }
  SECTION("garbage in a single frame is dropped") {
    f.dealer->send({"garbage"});
    f.dealer->send({""});
    // Nothing comes back for them: the next message is this GET's ACK.
    auto i = f.id();
    f.dealer->request(i, "GET", "demo.temp");
    CHECK(f.recv() == Frames{"a", i, "ACK", "", "", ""});
    auto rep = f.recv();
    CHECK(rep[1] == i);
    CHECK(payload(rep)["value"] == 20.5);
  }
  SECTION("many bad requests in a row") {
    for (int n = 0; n < 50; ++n) {
      f.dealer->send({"garbage", std::to_string(n)});
      f.dealer->send({std::string("\xff\xfe", 2)});
    }
    auto i = f.id();
    f.dealer->request(i, "GET", "demo.temp");
    // Each two-frame garbage has a readable id, so it gets an error REP.
    int errors = 0;
    while (true) {
      auto m = f.recv();
      if (m[1] == i) {
        CHECK(m[2] == "ACK");
        break;
      }
      CHECK(error_of(m)["type"] == "ValueError");
      ++errors;
    }
    CHECK(errors == 50);
    CHECK(payload(f.recv())["value"] == 20.5);
  }
}

TEST_CASE("special targets _hash and _catalog", "[protocol]") {
  Fixture f;
  Json block = f.daemon.catalog_block();
  const std::string uuid = f.daemon.uuid();
  REQUIRE(block["uuid"] == uuid);
  for (std::string target : {"_hash", "._hash", "demo._hash"}) {
    INFO(target);
    auto p = payload(f.ack_then_rep("GET", target));
    REQUIRE(p["value"].is_object());
    REQUIRE(p["value"].size() == 1);
    REQUIRE(p["value"]["demo"].is_object());
    REQUIRE(p["value"]["demo"].size() == 1);
    CHECK(hex_hash(p["value"]["demo"][uuid]) == hex_hash(block["hash"]));
    CHECK(p["time"].is_number());
  }
  auto cat = payload(f.ack_then_rep("GET", "demo._catalog"))["value"];
  REQUIRE(cat.is_object());
  REQUIRE(cat.size() == 1);
  auto& b = cat[uuid];
  CHECK(b["store"] == "demo");
  CHECK(b["alias"] == "demo1");
  CHECK(b["uuid"] == uuid);
  CHECK(hex_hash(b["hash"]) == hex_hash(block["hash"]));
  CHECK(b["items"]["temp"]["type"] == "numeric");
  CHECK(b["items"].contains("_demo1clk"));
  REQUIRE(b["provenance"].size() == 1);
  CHECK(b["provenance"][0]["stratum"] == 0);
  CHECK(b["provenance"][0]["rep"] == f.daemon.rep_port());
  CHECK(b["provenance"][0]["pub"] == f.daemon.pub_port());

  auto e = error_of(f.ack_then_rep("GET", "other._hash"));
  CHECK(e["type"] == "KeyError");
  CHECK(error_of(f.ack_then_rep("GET", "other._catalog"))["type"] == "KeyError");
  // A daemon is no registry.
  CHECK(error_of(f.ack_then_rep("SET", "_catalog", R"({"value": {}})")).is_object());
  f.still_answers();
}

TEST_CASE("bulk values: SET and GET with shape, dtype and the bulk frame", "[protocol]") {
  Fixture f;
  std::string bytes;
  for (int i = 0; i < 12; ++i) bytes.push_back(static_cast<char>(i * 7));
  SECTION("round trip") {
    auto rep = f.ack_then_rep("SET", "demo.image", R"({"shape": [2, 3], "dtype": "uint16"})", bytes);
    CHECK(payload(rep) == Json{{"value", true}});
    rep = f.ack_then_rep("GET", "demo.image");
    REQUIRE(rep.size() == 7);
    auto p = payload(rep);
    CHECK_FALSE(p.contains("value"));
    CHECK(p["shape"] == Json::array({2, 3}));
    CHECK(p["dtype"] == "uint16");
    CHECK(p["time"].is_number());
    CHECK(rep[6] == bytes);
  }
  SECTION("an empty bulk frame is a value; an absent one is not") {
    auto rep = f.ack_then_rep("SET", "demo.image", R"({"shape": [0], "dtype": "uint8"})", std::string());
    CHECK(payload(rep) == Json{{"value", true}});
    rep = f.ack_then_rep("GET", "demo.image");
    REQUIRE(rep.size() == 7);
    CHECK(rep[6].empty());
    CHECK(payload(rep)["shape"] == Json::array({0}));

    CHECK(error_of(f.ack_then_rep("SET", "demo.image", R"({"shape": [0], "dtype": "uint8"})")).is_object());
    CHECK(error_of(f.ack_then_rep("SET", "demo.image", R"({"value": [1, 2]})")).is_object());
    // The refused SETs changed nothing.
    rep = f.ack_then_rep("GET", "demo.image");
    REQUIRE(rep.size() == 7);
    CHECK(rep[6].empty());
  }
  SECTION("a bulk item never set answers like any other") {
    auto rep = f.ack_then_rep("GET", "demo.image");
    CHECK(rep.size() == 6);
    CHECK(payload(rep)["value"].is_null());
  }
  SECTION("size mismatch is a ValueError") {
    auto rep = f.ack_then_rep("SET", "demo.image", R"({"shape": [2, 3], "dtype": "uint16"})", bytes.substr(0, 10));
    CHECK(error_of(rep)["type"] == "ValueError");
    CHECK(error_of(f.ack_then_rep("SET", "demo.image", R"({"shape": [2], "dtype": "nonsense"})", bytes)).is_object());
  }
  SECTION("bulk data for an item that is not bulk") {
    CHECK(error_of(f.ack_then_rep("SET", "demo.temp", R"({"shape": [12], "dtype": "uint8"})", bytes)).is_object());
  }
  f.still_answers();
}

TEST_CASE("broadcasts use the trailing-dot topic, and bulk broadcasts have 4 frames", "[protocol]") {
  Fixture f;
  test::RawSub sub(f.daemon.pub_endpoint(), "demo.temp.");
  // Get past the slow-joiner window: set until the broadcast of a SET
  // arrives. (One of the initial value, 20.5, may come first: the daemon
  // publishes it at start, and a loaded machine may send it late.)
  std::optional<Frames> first;
  auto of_a_set = [](const Frames& m) {
    if (m.size() != 3) return true;  // the checks below say what is wrong
    auto v = mktl::json::parse(m[2]).value("value", mktl::Json());
    return !(v.is_number() && v.get<double>() < 1000);
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0; !first && std::chrono::steady_clock::now() < deadline; ++i) {
    f.set("demo.temp", 1000 + i);
    while (auto m = sub.recv(std::chrono::milliseconds(50)))
      if (of_a_set(*m)) {
        first = std::move(m);
        break;
      }
  }
  REQUIRE(first);
  REQUIRE(first->size() == 3);
  CHECK((*first)[0] == "demo.temp.");
  CHECK((*first)[1] == "a");
  auto p = mktl::json::parse((*first)[2]);
  CHECK(p["value"].get<int>() >= 1000);
  CHECK(p["time"].is_number());

  // demo.temperature. is published first but must not match demo.temp.
  f.set("demo.temperature", 5);
  f.set("demo.temp", 77);
  bool seen77 = false;
  for (int n = 0; n < 1000 && !seen77; ++n) {
    auto m = sub.recv();
    REQUIRE(m);
    REQUIRE(m->size() == 3);
    CHECK((*m)[0] == "demo.temp.");
    auto v = mktl::json::parse((*m)[2])["value"];
    CHECK(v != 5);
    seen77 = v == 77;
  }
  CHECK(seen77);

  // Only changes are published: the same value again sends nothing, so the
  // next broadcast is the one after.
  f.set("demo.temp", 77);
  f.set("demo.temp", 78);
  auto m = sub.recv();
  REQUIRE(m);
  CHECK(mktl::json::parse((*m)[2])["value"] == 78);

  // Bulk broadcast: [topic, a, payload, bulk].
  test::RawSub bulk_sub(f.daemon.pub_endpoint(), "demo.image.");
  std::optional<Frames> b;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0; !b && std::chrono::steady_clock::now() < deadline; ++i) {
    std::string bytes(4, static_cast<char>(i));
    auto rep = f.ack_then_rep("SET", "demo.image", R"({"shape": [4], "dtype": "uint8"})", bytes);
    REQUIRE(payload(rep) == Json{{"value", true}});
    b = bulk_sub.recv(std::chrono::milliseconds(50));
  }
  REQUIRE(b);
  REQUIRE(b->size() == 4);
  CHECK((*b)[0] == "demo.image.");
  CHECK((*b)[1] == "a");
  auto bp = mktl::json::parse((*b)[2]);
  CHECK_FALSE(bp.contains("value"));
  CHECK(bp["shape"] == Json::array({4}));
  CHECK(bp["dtype"] == "uint8");
  CHECK((*b)[3].size() == 4);
}

TEST_CASE("broadcasts reach subscribers of any prefix, also after others left and came again", "[protocol]") {
  // The daemon sends a broadcast only when some subscription matches its
  // topic (it follows the subscriptions the PUB socket hands up): a prefix,
  // the empty prefix, one that left and one that came back all get theirs.
  Fixture f;
  int n = 2000;
  auto value_of = [](const Frames& m) { return mktl::json::parse(m.at(2)).value("value", Json()); };
  // Sets demo.temp until a broadcast of it reaches `sub`; returns the value seen.
  auto reach = [&](test::RawSub& sub) {
    std::optional<Json> got;
    REQUIRE(test::until_subscribed([&](int) { f.set("demo.temp", ++n); },
                                   [&] {
                                     while (auto m = sub.recv(std::chrono::milliseconds(1)))
                                       if (m->at(0) == "demo.temp." && value_of(*m) == n) got = value_of(*m);
                                     return got.has_value();
                                   }));
    return *got;
  };
  {
    test::RawSub prefix(f.daemon.pub_endpoint(), "demo.");
    CHECK(reach(prefix) == n);
    test::RawSub everything(f.daemon.pub_endpoint(), "");
    CHECK(reach(everything) == n);
    // Both still get each broadcast.
    f.set("demo.temp", ++n);
    auto a = prefix.recv();
    while (a && (a->at(0) != "demo.temp." || value_of(*a) != n)) a = prefix.recv();
    REQUIRE(a);
    auto b = everything.recv();
    while (b && (b->at(0) != "demo.temp." || value_of(*b) != n)) b = everything.recv();
    REQUIRE(b);
  }
  // Everyone left; a new subscriber of the exact topic is served again.
  test::RawSub exact(f.daemon.pub_endpoint(), "demo.temp.");
  CHECK(reach(exact) == n);
  // Another topic's subscriber does not take this one's broadcasts.
  test::RawSub other(f.daemon.pub_endpoint(), "demo.image.");
  f.set("demo.temp", ++n);
  auto m = exact.recv();
  while (m && value_of(*m) != n) m = exact.recv();
  REQUIRE(m);
  CHECK_FALSE(other.recv(std::chrono::milliseconds(50)));
}

TEST_CASE("concurrent requests from many dealers all get answers", "[protocol]") {
  Fixture f;
  std::vector<std::unique_ptr<test::RawDealer>> dealers;
  for (int d = 0; d < 4; ++d) dealers.push_back(std::make_unique<test::RawDealer>(f.daemon.rep_endpoint()));
  for (int d = 0; d < 4; ++d)
    for (int n = 0; n < 50; ++n)
      dealers[d]->request(std::to_string(n), n % 2 ? "GET" : "SET", "demo.name",
                          n % 2 ? "" : R"({"value": "v)" + std::to_string(n) + "\"}");
  for (int d = 0; d < 4; ++d) {
    std::set<std::string> acks, reps;
    while (reps.size() < 50) {
      auto m = dealers[d]->recv();
      REQUIRE(m);
      REQUIRE(m->size() == 6);
      ((*m)[2] == "ACK" ? acks : reps).insert((*m)[1]);
      if ((*m)[2] == "REP") CHECK_FALSE(error_of(*m).is_object());
    }
    CHECK(acks.size() == 50);
  }
  f.still_answers();
}

}  // namespace test_daemon_protocol
