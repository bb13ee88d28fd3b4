// Golden frames of protocol 'a' (PROTOCOL.md "Request and response frames",
// "Payload", "Broadcasts"), byte for byte as the Python reference writes them.
#include <catch2/catch.hpp>

#include "protocol/codec.hpp"

#include <mktl/error.hpp>
#include <mktl/item.hpp>
#include <mktl/reading.hpp>

#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_codec {

using namespace std::string_literals;
using mktl::Json;
namespace protocol = mktl::protocol;
using protocol::MessageType;

namespace {

using Frames = std::vector<std::string>;

// Decoded bulk views point into the frames: keep every test's frames alive.
const Frames& keep(Frames frames) {
  static std::deque<Frames> kept;
  kept.push_back(std::move(frames));
  return kept.back();
}

protocol::Decoded decode(Frames frames) {
  const Frames& held = keep(std::move(frames));
  std::vector<std::string_view> views(held.begin(), held.end());
  return protocol::decode(views);
}

std::optional<protocol::DecodedBroadcast> decode_broadcast(Frames frames, std::string* error = nullptr) {
  const Frames& held = keep(std::move(frames));
  std::vector<std::string_view> views(held.begin(), held.end());
  return protocol::decode_broadcast(views, error);
}

std::optional<protocol::ResponseView> decode_response(Frames frames, std::string* error = nullptr) {
  const Frames& held = keep(std::move(frames));
  std::vector<std::string_view> views(held.begin(), held.end());
  return protocol::decode_response(views, error);
}

}  // namespace

TEST_CASE("codec: GET request frames", "[codec]") {
  Frames frames = protocol::encode("0000002a", MessageType::GET, "demo.temp", 0, "");
  CHECK(frames == Frames{"a", "0000002a", "GET", "demo.temp", "", ""});

  auto d = decode(frames);
  REQUIRE(d.message);
  CHECK_FALSE(d.error);
  const auto& m = *d.message;
  CHECK(m.id == "0000002a");
  CHECK(m.type == MessageType::GET);
  CHECK(m.target == "demo.temp");
  CHECK(m.flags == 0);
  CHECK(m.payload.empty());
  CHECK_FALSE(m.has_bulk);
  CHECK(m.wants_ack());
  CHECK(m.wants_rep());

  // GET with refresh, as the Python client spells it.
  auto r = decode({"a", "00000001", "GET", "demo.temp", "", R"({"refresh": true})"});
  REQUIRE(r.message);
  CHECK(r.message->payload == R"({"refresh": true})");  // raw text, untouched
  mktl::Request req{r.message->target, protocol::parse_payload(r.message->payload), std::nullopt};
  CHECK(req.refresh());
}

TEST_CASE("codec: SET request with and without bulk", "[codec]") {
  const std::string payload = R"({"value": 12, "_user": "obs", "_pid": 4242})";
  auto d = decode({"a", "00000007", "SET", "demo.mode", "", payload});
  REQUIRE(d.message);
  CHECK(d.message->type == MessageType::SET);
  CHECK(d.message->payload == payload);
  CHECK_FALSE(d.message->has_bulk);
  Json p = protocol::parse_payload(d.message->payload);
  CHECK(p["value"] == 12);
  CHECK(p["value"].is_number_integer());

  const std::string bulk("\x01\x00\x02\x00\x03\x00"s);
  const std::string bulk_payload = R"({"shape": [3], "dtype": "uint16"})";
  Frames frames = {"a", "00000008", "SET", "demo.image", "", bulk_payload, bulk};
  auto b = decode(frames);
  REQUIRE(b.message);
  CHECK(b.message->has_bulk);
  CHECK(b.message->bulk == bulk);
  const Frames& held = keep(frames);
  std::vector<std::string_view> views(held.begin(), held.end());
  auto viewed = protocol::decode(views);
  CHECK(viewed.message->bulk.data() == held[6].data());  // a view, not a copy
  Json bp = protocol::parse_payload(b.message->payload);
  CHECK(bp["shape"] == Json::array({3}));
  CHECK(bp["dtype"] == "uint16");
}

TEST_CASE("codec: bulk frame empty versus absent", "[codec]") {
  auto absent = decode({"a", "1", "SET", "demo.image", "", "{}"});
  auto empty = decode({"a", "1", "SET", "demo.image", "", "{}", ""});
  REQUIRE(absent.message);
  REQUIRE(empty.message);
  CHECK_FALSE(absent.message->has_bulk);
  CHECK(empty.message->has_bulk);
  CHECK(empty.message->bulk.empty());

  auto b_absent = decode_broadcast({"demo.image.", "a", "{}"});
  auto b_empty = decode_broadcast({"demo.image.", "a", "{}", ""});
  REQUIRE(b_absent);
  REQUIRE(b_empty);
  CHECK_FALSE(b_absent->has_bulk);
  CHECK(b_empty->has_bulk);
  CHECK(b_empty->bulk.empty());
}

TEST_CASE("codec: ACK frames", "[codec]") {
  Frames ack = protocol::encode_ack("0000002a");
  CHECK(ack == Frames{"a", "0000002a", "ACK", "", "", ""});
  auto d = decode(ack);
  REQUIRE(d.message);
  CHECK(d.message->type == MessageType::ACK);
  CHECK(d.message->target.empty());
  CHECK(d.message->payload.empty());
  // Ids are opaque bytes, echoed verbatim (binary included).
  const std::string odd_id("\x00\xff id"s);
  CHECK(protocol::encode_ack(odd_id)[1] == odd_id);
  CHECK(decode(protocol::encode_ack(odd_id)).message->id == odd_id);
}

TEST_CASE("codec: responses as the client reads them", "[codec]") {
  auto ack = decode_response(protocol::encode_ack("0000002a"));
  REQUIRE(ack);
  CHECK(ack->type == MessageType::ACK);
  CHECK(ack->id == "0000002a");
  CHECK_FALSE(ack->has_bulk);

  Frames rep = protocol::encode("0000002b", MessageType::REP, "demo.x", 0, R"({"value":1})");
  auto r = decode_response(rep);
  REQUIRE(r);
  CHECK(r->type == MessageType::REP);
  CHECK(r->payload == R"({"value":1})");
  CHECK_FALSE(r->has_bulk);
  rep.push_back("");  // an empty bulk frame is still a bulk frame
  REQUIRE(decode_response(rep));
  CHECK(decode_response(rep)->has_bulk);

  std::string error;
  CHECK_FALSE(decode_response({"a", "1", "REP", "", ""}, &error));
  CHECK(error == "expected 6 or 7 frames, got 5");
  CHECK_FALSE(decode_response({"b", "1", "REP", "", "", ""}, &error));
  CHECK(error == "unsupported protocol version 'b', expected 'a'");
  CHECK_FALSE(decode_response({"a", "1", "NAK", "", "", ""}, &error));
  CHECK(error == "unknown message type 'NAK'");
}

TEST_CASE("codec: request ids round-trip as eight hex digits", "[codec]") {
  for (std::uint32_t id : {0u, 1u, 0x2au, 0x7fffffffu, 0x80000000u, 0xffffffffu}) {
    auto text = protocol::format_request_id(id);
    std::string_view view(text.data(), text.size());
    CHECK(view.size() == 8);
    CHECK(protocol::parse_request_id(view) == id);
  }
  auto text = protocol::format_request_id(0xdeadbeefu);
  CHECK(std::string_view(text.data(), text.size()) == "deadbeef");
  // Ids of other schemes are not ours.
  CHECK_FALSE(protocol::parse_request_id("DEADBEEF"));
  CHECK_FALSE(protocol::parse_request_id("1"));
  CHECK_FALSE(protocol::parse_request_id("0000002a0"));
  CHECK_FALSE(protocol::parse_request_id("0000002g"));
  CHECK_FALSE(protocol::parse_request_id(""));
}

TEST_CASE("codec: REP frames with target, value and error", "[codec]") {
  const std::string value = protocol::value_payload(Json(21.5), 1763770000.123456);
  CHECK(value == R"({"value":21.5,"time":1763770000.123456})");
  Frames rep = protocol::encode("0000002a", MessageType::REP, "demo.temp", 0, value);
  CHECK(rep == Frames{"a", "0000002a", "REP", "demo.temp", "", R"({"value":21.5,"time":1763770000.123456})"});
  auto d = decode(rep);
  REQUIRE(d.message);
  CHECK(d.message->type == MessageType::REP);
  CHECK(d.message->target == "demo.temp");

  const std::string err = protocol::error_payload("KeyError", "\"this daemon does not contain 'nope'\"");
  CHECK(err == R"({"error":{"type":"KeyError","text":"\"this daemon does not contain 'nope'\""}})");
  Json e = protocol::parse_payload(err);
  CHECK(e["error"]["type"] == "KeyError");
  CHECK(e["error"]["text"] == "\"this daemon does not contain 'nope'\"");
  CHECK_FALSE(e["error"].contains("debug"));

  const std::string dbg = protocol::error_payload("ValueError", "bad", "Traceback:\n  line 1");
  CHECK(dbg == R"({"error":{"type":"ValueError","text":"bad","debug":"Traceback:\n  line 1"}})");

  // A REP as the Python daemon spells it (spaces, null error).
  auto py = decode({"a", "0000002a", "REP", "demo.temp", "", R"({"value": 21.5, "time": 1763770000.123456})"});
  REQUIRE(py.message);
  Json pp = protocol::parse_payload(py.message->payload);
  CHECK(pp["value"] == 21.5);
  CHECK(pp["time"].get<double>() == 1763770000.123456);

  CHECK(protocol::set_ok_payload() == R"({"value":true})");
  CHECK(protocol::parse_payload(protocol::set_ok_payload())["value"] == true);
}

TEST_CASE("codec: value payloads", "[codec]") {
  CHECK(protocol::value_payload(Json(), 2.0) == R"({"value":null,"time":2.0})");
  CHECK(protocol::value_payload(Json(42), 1.5) == R"({"value":42,"time":1.5})");
  CHECK(protocol::value_payload(Json("On"), 1.5) == R"({"value":"On","time":1.5})");
  CHECK(protocol::value_payload(Json(std::numeric_limits<double>::quiet_NaN()), 1.5) ==
        R"({"value":NaN,"time":1.5})");
  CHECK(protocol::value_payload(Json::array({1, 2.0, "x"}), 1.5) == R"({"value":[1,2.0,"x"],"time":1.5})");

  auto bulk = mktl::Bulk::from_vector<std::uint16_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(protocol::bulk_payload(bulk, 1763770000.5) == R"({"time":1763770000.5,"shape":[2,3],"dtype":"uint16"})");
  auto scalar = mktl::Bulk::from_vector<double>({}, {0});
  CHECK(protocol::bulk_payload(scalar, 3.0) == R"({"time":3.0,"shape":[0],"dtype":"float64"})");

  std::string out = "x=";
  protocol::append_double(out, 1.0);
  protocol::append_double(out, -std::numeric_limits<double>::infinity());
  CHECK(out == "x=1.0-Infinity");
}

TEST_CASE("codec: flags, any length, big-endian", "[codec]") {
  CHECK(protocol::encode_flags(0).empty());
  CHECK(protocol::encode_flags(1) == "\x01");
  CHECK(protocol::encode_flags(2) == "\x02");
  CHECK(protocol::encode_flags(3) == "\x03");
  CHECK(protocol::encode_flags(0x0102) == "\x01\x02");

  CHECK(protocol::decode_flags("") == 0);
  CHECK(protocol::decode_flags("\x00\x02"s) == 2);
  CHECK(protocol::decode_flags("\x00\x00\x00\x01"s) == 1);
  CHECK(protocol::decode_flags("\x01\x00"s) == 0x100);
  // Wider than 64 bits: the low 64 bits count.
  CHECK(protocol::decode_flags("\xff\x00\x00\x00\x00\x00\x00\x00\x03"s) == 3);

  struct Row {
    std::string bytes;
    bool ack, rep;
  };
  for (const auto& row : {Row{"", true, true}, Row{"\x01", false, true}, Row{"\x02", true, false},
                          Row{"\x03", false, false}, Row{"\x00\x02"s, true, false}, Row{"\x00"s, true, true}}) {
    auto d = decode({"a", "1", "SET", "demo.temp", row.bytes, R"({"value":1})"});
    REQUIRE(d.message);
    CHECK(d.message->wants_ack() == row.ack);
    CHECK(d.message->wants_rep() == row.rep);
  }
  Frames frames = protocol::encode("1", MessageType::SET, "demo.temp", protocol::NO_ACK | protocol::NO_REP, "{}");
  CHECK(frames[4] == "\x03");
}

TEST_CASE("codec: broadcasts", "[codec]") {
  CHECK(protocol::topic("demo.temp") == "demo.temp.");
  const std::string payload = protocol::value_payload(Json(21.5), 1763770000.123456);
  Frames frames = {protocol::topic("demo.temp"), std::string(protocol::kVersion), payload};
  CHECK(frames == Frames{"demo.temp.", "a", R"({"value":21.5,"time":1763770000.123456})"});

  std::string error;
  auto b = decode_broadcast(frames, &error);
  REQUIRE(b);
  CHECK(b->key == "demo.temp");
  CHECK(b->payload == payload);
  CHECK_FALSE(b->has_bulk);
  // The trailing dot is why a subscription to "demo.temp." misses demo.temperature.
  CHECK(protocol::topic("demo.temperature").rfind(protocol::topic("demo.temp"), 0) == std::string::npos);

  const std::string bulk("\x00\x01\x02\x03"s);
  auto bb = decode_broadcast({"demo.image.", "a", R"({"time": 1.0, "shape": [2], "dtype": "uint16"})", bulk});
  REQUIRE(bb);
  CHECK(bb->key == "demo.image");
  CHECK(bb->has_bulk);
  CHECK(bb->bulk == bulk);

  // Malformed broadcasts.
  CHECK_FALSE(decode_broadcast({"demo.temp.", "a"}, &error));
  CHECK(error == "expected 3 or 4 broadcast frames, got 2");
  CHECK_FALSE(decode_broadcast({"demo.temp.", "a", "{}", "", ""}, &error));
  CHECK(error == "expected 3 or 4 broadcast frames, got 5");
  CHECK_FALSE(decode_broadcast({"demo.temp.", "b", "{}"}, &error));
  CHECK(error == "unsupported protocol version 'b', expected 'a'");
  CHECK_FALSE(decode_broadcast({"demo.temp", "a", "{}"}, &error));
  CHECK(error == "broadcast topic without a trailing '.': 'demo.temp'");
  CHECK_FALSE(decode_broadcast({"demo.\xff.", "a", "{}"}, &error));
  CHECK_FALSE(decode_broadcast({"demo.temp.", "a", "{}"}, nullptr) == std::nullopt);
}

TEST_CASE("codec: malformed requests", "[codec]") {
  SECTION("wrong version, id readable") {
    auto d = decode({"b", "0000002a", "GET", "demo.temp", "", ""});
    CHECK_FALSE(d.message);
    REQUIRE(d.error);
    REQUIRE(d.error->id);
    CHECK(*d.error->id == "0000002a");
    CHECK(d.error->text == "unsupported protocol version 'b', expected 'a'");
    auto empty = decode({"", "1", "GET", "demo.temp", "", ""});
    REQUIRE(empty.error);
    CHECK(empty.error->text == "unsupported protocol version '', expected 'a'");
  }
  SECTION("five and eight frames") {
    auto five = decode({"a", "0000002a", "GET", "demo.temp", ""});
    REQUIRE(five.error);
    CHECK_FALSE(five.message);
    CHECK(five.error->id == std::optional<std::string>("0000002a"));
    CHECK(five.error->text == "expected 6 or 7 frames, got 5");
    auto eight = decode({"a", "0000002b", "SET", "demo.temp", "", "{}", "", ""});
    REQUIRE(eight.error);
    CHECK(eight.error->id == std::optional<std::string>("0000002b"));
    CHECK(eight.error->text == "expected 6 or 7 frames, got 8");
  }
  SECTION("too few frames to read an id") {
    auto one = decode({"a"});
    REQUIRE(one.error);
    CHECK_FALSE(one.error->id);
    CHECK(one.error->text == "expected 6 or 7 frames, got 1");
    auto none = decode({});
    REQUIRE(none.error);
    CHECK_FALSE(none.error->id);
    auto two = decode({"a", "77"});
    REQUIRE(two.error);
    CHECK(two.error->id == std::optional<std::string>("77"));
  }
  SECTION("unknown type") {
    for (const char* type : {"PUB", "get", "", "GETX"}) {
      INFO(type);
      auto d = decode({"a", "0000002a", type, "demo.temp", "", ""});
      REQUIRE(d.error);
      CHECK(d.error->id == std::optional<std::string>("0000002a"));
      CHECK(d.error->text == "unknown message type '" + std::string(type) + "'");
    }
  }
  SECTION("non-UTF-8 target") {
    auto d = decode({"a", "0000002a", "GET", "demo.\xff\xfe", "", ""});
    REQUIRE(d.error);
    CHECK(d.error->id == std::optional<std::string>("0000002a"));
    CHECK(d.error->text == "target is not valid UTF-8: 'demo.\\xff\\xfe'");
    // Bad target and too few frames: nothing answers it but the log.
    auto no_id = decode({"a"});
    CHECK_FALSE(no_id.error->id);
    // Valid UTF-8 beyond ASCII is accepted.
    auto ok = decode({"a", "1", "GET", "demo.t\xC3\xA9mp", "", ""});
    REQUIRE(ok.message);
    CHECK(ok.message->target == "demo.t\xC3\xA9mp");
  }
  SECTION("payload is not parsed by decode") {
    auto d = decode({"a", "1", "SET", "demo.temp", "", "{not json"});
    REQUIRE(d.message);
    CHECK(d.message->payload == "{not json");
    CHECK_THROWS_AS(protocol::parse_payload(d.message->payload), mktl::ValueError);
  }
}

TEST_CASE("codec: parse_payload", "[codec]") {
  CHECK(protocol::parse_payload("").is_null());
  CHECK(protocol::parse_payload("{}") == Json::object());
  CHECK(protocol::parse_payload(R"({"value": NaN})")["value"].is_number_float());
  CHECK_THROWS_AS(protocol::parse_payload("[1]"), mktl::ValueError);
  CHECK_THROWS_AS(protocol::parse_payload("42"), mktl::ValueError);
  CHECK_THROWS_AS(protocol::parse_payload("null"), mktl::ValueError);
  CHECK_THROWS_WITH(protocol::parse_payload("{\"a\":"), Catch::Contains("byte 5"));
}

TEST_CASE("codec: split_target and type names", "[codec]") {
  auto t = protocol::split_target("demo.temp.raw");
  REQUIRE(t);
  CHECK(t->store == "demo");
  CHECK(t->key == "temp.raw");
  auto empty_key = protocol::split_target("demo.");
  REQUIRE(empty_key);
  CHECK(empty_key->key.empty());
  CHECK_FALSE(protocol::split_target("_hash"));
  CHECK(protocol::type_name(MessageType::GET) == "GET");
  CHECK(protocol::type_name(MessageType::SET) == "SET");
  CHECK(protocol::type_name(MessageType::ACK) == "ACK");
  CHECK(protocol::type_name(MessageType::REP) == "REP");
}

TEST_CASE("codec: read_reading reads what reading_from_payload does, straight from the text", "[codec]") {
  const char* payloads[] = {
      R"({"value": 42.5, "time": 1712345678.25})",
      R"({"time": 5, "value": [1, 2, {"a": null}]})",
      R"( {"value": "x", "extra": {"deep": [1]}, "time": "not a number"} )",
      R"({"value": 1, "value": 2})",
      R"({"value": NaN, "time": 1.0})",
      R"({})",
      "",
  };
  for (const char* text : payloads) {
    INFO(text);
    auto expected = protocol::reading_from_payload(protocol::parse_payload(text), std::nullopt, 7.0);
    Json error = "unset";
    auto got = protocol::read_reading(text, std::nullopt, 7.0, &error);
    CHECK(got.same_value(expected));
    CHECK(got.time == expected.time);
    CHECK(error.is_null());
  }
  Json error;
  auto failed = protocol::read_reading(R"({"value": null, "error": {"type": "KeyError", "text": "no"}})", std::nullopt,
                                       0.0, &error);
  CHECK(failed.value.is_null());
  CHECK(error == Json{{"type", "KeyError"}, {"text", "no"}});
  // With a bulk frame: shape and dtype applied to its bytes, any value ignored.
  auto frame = mktl::Bulk::from_vector<std::uint16_t>({1, 2, 3, 4, 5, 6});
  auto image = protocol::read_reading(R"({"value": 9, "shape": [2, 3], "dtype": "uint16", "time": 3.5})", frame, 0.0);
  REQUIRE(image.bulk);
  CHECK(image.value.is_null());
  CHECK(image.bulk->shape() == std::vector<std::int64_t>{2, 3});
  CHECK(image.bulk->as<std::uint16_t>()[5] == 6);
  CHECK(image.time == 3.5);
  CHECK_THROWS_WITH(protocol::read_reading(R"({"shape": [2.5]})", frame, 0.0), Catch::Contains("list of integers"));
  // Bad text fails as parse_payload fails.
  CHECK_THROWS_WITH(protocol::read_reading("[1]", std::nullopt, 0.0), Catch::Contains("not a JSON object"));
  CHECK_THROWS_WITH(protocol::read_reading("{\"a\":", std::nullopt, 0.0), Catch::Contains("byte 5"));
  CHECK_THROWS_AS(protocol::read_reading(R"({"value": 1} x)", std::nullopt, 0.0), mktl::ValueError);
  CHECK_THROWS_AS(protocol::read_reading(R"({"value" 1})", std::nullopt, 0.0), mktl::ValueError);
}

TEST_CASE("codec: read_error takes only the error member, and checks the rest as parse_payload does", "[codec]") {
  // What a SET's completion reads: a transaction's rows are not built, but
  // a payload parse_payload refuses is refused the same way.
  CHECK(protocol::read_error(R"({"value": {"ref": "r1", "rows": [{"id": 1, "t": "a\u00e9"}]}, "time": 1.5})").is_null());
  CHECK(protocol::read_error("").is_null());
  CHECK(protocol::read_error(R"({})").is_null());
  CHECK(protocol::read_error(R"({"value": [-Infinity, 1e5, -0.5, 0, 123456789012345678901234567890, NaN]})").is_null());
  CHECK(protocol::read_error(R"({"value": [1, {"error": "inside a value is not the REP's"}]})").is_null());
  CHECK(protocol::read_error(R"({"value": null, "error": {"type": "KeyError", "text": "no"}})") ==
        Json{{"type", "KeyError"}, {"text", "no"}});
  CHECK(protocol::read_error(R"({"error": 1, "error": {"type": "ValueError", "text": "last"}})") ==
        Json{{"type", "ValueError"}, {"text", "last"}});
  const char* bad[] = {
      "[1]",
      "{\"a\":",
      R"({"value": [1, 2} })",
      R"({"value": {"a" 1}})",
      R"({"value": "unterminated})",
      R"({"value": "\x"})",
      R"({"value": tru})",
      R"({"value": 1} x)",
      R"({"value": -})",
      R"({"value": 1.})",
      R"({"value": [1e]})",
      R"({"value": [2, -x]})",
      R"({"value": 01})",
      R"({"value": -Inf})",
  };
  for (const char* text : bad) {
    INFO(text);
    std::string expected;
    try {
      (void)protocol::parse_payload(text);
    } catch (const mktl::ValueError& e) {
      expected = e.what();
    }
    REQUIRE_FALSE(expected.empty());
    CHECK_THROWS_WITH(protocol::read_error(text), expected);
  }
  // The nesting limit holds in a value that is not built, too.
  std::string deep = "{\"value\": " + std::string(600, '[') + std::string(600, ']') + "}";
  CHECK_THROWS_WITH(protocol::read_error(deep), Catch::Contains("nesting no deeper than 512"));
  CHECK_THROWS_WITH(protocol::parse_payload(deep), Catch::Contains("nesting no deeper than 512"));
}

TEST_CASE("codec: bulk dtypes, readings and requests", "[codec]") {
  CHECK(mktl::dtype_size("uint8") == 1);
  CHECK(mktl::dtype_size("int16") == 2);
  CHECK(mktl::dtype_size("float32") == 4);
  CHECK(mktl::dtype_size("float64") == 8);
  CHECK(mktl::dtype_size("complex128") == 16);
  CHECK(mktl::dtype_size("object") == 0);
  auto b = mktl::Bulk::from_vector<std::int32_t>({1, 2});
  CHECK(b.as<std::int32_t>().size() == 2);
  CHECK_THROWS_WITH(b.as<float>(), "bulk data is int32, not float32");

  const double t0 = mktl::now();
  CHECK(t0 > 1.7e9);
  mktl::Reading a(Json(1.5), 1.0), same(Json(1.5), 2.0), other(Json(2.5), 1.0);
  CHECK(a.same_value(same));
  CHECK_FALSE(a.same_value(other));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(mktl::Reading(Json(nan), 1.0).same_value(mktl::Reading(Json(nan), 2.0)));
  CHECK(mktl::Reading(Json::array({nan, 1}), 1.0).same_value(mktl::Reading(Json::array({nan, 1}), 2.0)));
  CHECK(mktl::Reading(b, 1.0).same_value(mktl::Reading(mktl::Bulk::from_vector<std::int32_t>({1, 2}), 2.0)));
  CHECK_FALSE(mktl::Reading(b, 1.0).same_value(mktl::Reading(mktl::Bulk::from_vector<std::int32_t>({1, 3}), 2.0)));
  CHECK_FALSE(mktl::Reading(b, 1.0).same_value(mktl::Reading(Json(), 1.0)));

  mktl::Request r;
  CHECK_FALSE(r.refresh());
  r.payload = {{"refresh", true}};
  CHECK(r.refresh());
  r.payload = {{"refresh", false}};
  CHECK_FALSE(r.refresh());
  r.payload = {{"refresh", 1}};
  CHECK(r.refresh());
  r.payload = {{"refresh", "yes"}};
  CHECK_FALSE(r.refresh());
}

}  // namespace test_codec
