// mktl::json: the wire's JSON spellings (Python's json module, compact or not),
// NaN/Infinity, exact wide integers, and errors on malformed input.
#include <catch2/catch.hpp>

#include <mktl/error.hpp>
#include <mktl/json.hpp>

#include <cmath>
#include <limits>
#include <string>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_json {

using mktl::Json;
namespace json = mktl::json;

namespace {

// The message of the ValueError that parsing `text` throws ("" if none).
std::string parse_error(std::string_view text) {
  try {
    json::parse(text);
  } catch (const mktl::ValueError& e) {
    return e.what();
  }
  return "";
}

std::string round_trip(std::string_view text) { return json::dump(json::parse(text)); }

}  // namespace

TEST_CASE("json: Python's spaced and compact spellings parse alike", "[json]") {
  Json spaced = json::parse(R"({"a": 1, "b": [1, 2]})");
  Json compact = json::parse(R"({"a":1,"b":[1,2]})");
  Json padded = json::parse(" \t\r\n{ \"a\" :\n1 ,\"b\" : [ 1 , 2 ] }\n ");
  CHECK(spaced == compact);
  CHECK(padded == compact);
  CHECK(spaced["a"] == 1);
  CHECK(spaced["b"] == Json::array({1, 2}));
  CHECK(json::dump(spaced) == R"({"a":1,"b":[1,2]})");
}

TEST_CASE("json: literals, empty containers, nesting", "[json]") {
  CHECK(json::parse("null").is_null());
  CHECK(json::parse("true") == true);
  CHECK(json::parse("false") == false);
  CHECK(json::parse("{}") == Json::object());
  CHECK(json::parse("[]") == Json::array());
  CHECK(json::parse(R"("")") == "");
  CHECK(round_trip(R"({"x":{"y":[[],{},null,true,false,"s"]}})") == R"({"x":{"y":[[],{},null,true,false,"s"]}})");
  // Python keeps the last of repeated keys.
  CHECK(json::parse(R"({"k": 1, "k": 2})")["k"] == 2);
}

TEST_CASE("json: string escapes decode to UTF-8", "[json]") {
  CHECK(json::parse(R"("a\"b\\c\/d\b\f\n\r\t")") == std::string("a\"b\\c/d\b\f\n\r\t"));
  CHECK(json::parse(R"("\u00e9")") == std::string("\xC3\xA9"));
  CHECK(json::parse(R"("\u00E9\u20ac")") == std::string("\xC3\xA9\xE2\x82\xAC"));
  // Surrogate pair -> one 4-byte sequence (U+1F600).
  CHECK(json::parse(R"("\ud83d\ude00")") == std::string("\xF0\x9F\x98\x80"));
  // Python's ensure_ascii output and raw UTF-8 are the same string.
  CHECK(json::parse(R"({"s": "\u00e9\u00e9\ud83d\ude00\n\u0001"})") ==
        json::parse("{\"s\":\"\xC3\xA9\xC3\xA9\xF0\x9F\x98\x80\\n\\u0001\"}"));
  // A lone surrogate has no UTF-8 form; it becomes U+FFFD rather than failing.
  CHECK(json::parse(R"("\ud800x")") == std::string("\xEF\xBF\xBDx"));
  CHECK(json::parse(R"("\udc00")") == std::string("\xEF\xBF\xBD"));
}

TEST_CASE("json: dump writes UTF-8 raw and escapes control characters", "[json]") {
  CHECK(json::dump(Json("\xC3\xA9\xF0\x9F\x98\x80")) == "\"\xC3\xA9\xF0\x9F\x98\x80\"");
  CHECK(json::dump(Json(std::string("q\"b\\n\nt\t\x01\x1f\x7f"))) == R"("q\"b\\n\nt\t\u0001\u001f)" "\x7f\"");
  CHECK(json::dump(Json(std::string("\0", 1))) == R"("\u0000")");
  // Invalid UTF-8 must not crash nor reach the wire: each bad byte -> U+FFFD.
  CHECK(json::dump(Json(std::string("a\xFF" "b"))) == "\"a\xEF\xBF\xBD" "b\"");
  CHECK(json::dump(Json(std::string("\xC3"))) == "\"\xEF\xBF\xBD\"");                     // truncated
  CHECK(json::dump(Json(std::string("\xED\xA0\x80"))) == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // CESU surrogate
  // Keys are escaped the same way.
  Json obj = {{"k\"\n", 1}};
  CHECK(json::dump(obj) == R"({"k\"\n":1})");
  // Everything dumped parses back to itself.
  std::string all;
  for (int c = 0; c < 128; ++c) all.push_back(static_cast<char>(c));
  all += "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  CHECK(json::parse(json::dump(Json(all))) == all);
}

TEST_CASE("json: NaN and Infinity round trip", "[json]") {
  Json v = json::parse("[NaN, Infinity, -Infinity]");
  REQUIRE(v.size() == 3);
  CHECK(std::isnan(v[0].get<double>()));
  CHECK(v[1].get<double>() == std::numeric_limits<double>::infinity());
  CHECK(v[2].get<double>() == -std::numeric_limits<double>::infinity());
  CHECK(json::dump(v) == "[NaN,Infinity,-Infinity]");
  CHECK(json::parse(R"({"value": NaN, "time": 1.5})")["value"].is_number_float());
  CHECK(parse_error("nan") != "");
  CHECK(parse_error("-NaN") != "");
  CHECK(parse_error("Inf") != "");
  CHECK(parse_error("infinity") != "");
}

TEST_CASE("json: integers stay integers, floats stay floats", "[json]") {
  Json i = json::parse("42");
  CHECK(i.is_number_integer());
  CHECK_FALSE(i.is_number_float());
  CHECK(i.get<std::int64_t>() == 42);
  CHECK(json::dump(i) == "42");
  CHECK(json::parse("-7").get<std::int64_t>() == -7);
  CHECK(json::parse("-0").is_number_integer());

  Json f = json::parse("1.0");
  CHECK(f.is_number_float());
  CHECK(json::dump(f) == "1.0");
  CHECK(json::dump(Json(1.0)) == "1.0");
  CHECK(json::dump(Json(-0.0)) == "-0.0");
  CHECK(json::parse("1e2").is_number_float());
  CHECK(json::parse("1E+2").get<double>() == 100.0);
  CHECK(json::parse("2.5e-3").get<double>() == 0.0025);
}

TEST_CASE("json: doubles print as Python's repr and read back exactly", "[json]") {
  // Spellings checked against CPython 3 json.dumps / repr.
  CHECK(json::dump(Json(1e16)) == "1e+16");
  CHECK(json::dump(Json(1e15)) == "1000000000000000.0");
  CHECK(json::dump(Json(1e-5)) == "1e-05");
  CHECK(json::dump(Json(0.0001)) == "0.0001");
  CHECK(json::dump(Json(123.456)) == "123.456");
  CHECK(json::dump(Json(0.1 + 0.2)) == "0.30000000000000004");
  CHECK(json::dump(Json(5e-324)) == "5e-324");
  CHECK(json::dump(Json(1.7976931348623157e308)) == "1.7976931348623157e+308");
  CHECK(json::dump(Json(1763770000.123456)) == "1763770000.123456");
  CHECK(json::dump(Json(-2.5)) == "-2.5");
  CHECK(json::dump(Json(12345678.0)) == "12345678.0");
  for (double d : {0.1, 1.0 / 3.0, 6.02214076e23, -1e-300, 2.2250738585072014e-308, 1763770000.123456, 4.35}) {
    Json back = json::parse(json::dump(Json(d)));
    CHECK(back.get<double>() == d);
  }
  // Out of double range: Python gives inf / 0.0, so do we.
  CHECK(json::parse("1e400").get<double>() == std::numeric_limits<double>::infinity());
  CHECK(json::parse("-1e400").get<double>() == -std::numeric_limits<double>::infinity());
  CHECK(json::parse("1e-400").get<double>() == 0.0);
}

TEST_CASE("json: 64-bit integer edges", "[json]") {
  Json max_i = json::parse("9223372036854775807");
  CHECK(max_i.type() == Json::value_t::number_integer);
  CHECK(max_i.get<std::int64_t>() == std::numeric_limits<std::int64_t>::max());
  Json min_i = json::parse("-9223372036854775808");
  CHECK(min_i.type() == Json::value_t::number_integer);
  CHECK(min_i.get<std::int64_t>() == std::numeric_limits<std::int64_t>::min());
  CHECK(json::dump(min_i) == "-9223372036854775808");

  Json above = json::parse("9223372036854775808");
  CHECK(above.type() == Json::value_t::number_unsigned);
  Json u = json::parse("18446744073709551615");  // 2**64-1
  CHECK(u.type() == Json::value_t::number_unsigned);
  CHECK(u.get<std::uint64_t>() == std::numeric_limits<std::uint64_t>::max());
  CHECK(json::dump(u) == "18446744073709551615");
}

TEST_CASE("json: big integers are exact", "[json]") {
  Json two64 = json::parse("18446744073709551616");  // 2**64
  CHECK(json::is_bigint(two64));
  CHECK(json::bigint_digits(two64) == "18446744073709551616");
  CHECK(json::dump(two64) == "18446744073709551616");

  // A 39-digit 128-bit catalog hash: 2**127 + 12345.
  const std::string hash = "170141183460469231731687303715884118073";
  Json h = json::parse(R"({"hash": )" + hash + "}");
  REQUIRE(json::is_bigint(h["hash"]));
  CHECK(json::bigint_digits(h["hash"]) == hash);
  CHECK(json::dump(h) == R"({"hash":)" + hash + "}");
  unsigned __int128 v = (static_cast<unsigned __int128>(1) << 127) + 12345;
  CHECK(json::bigint(v) == h["hash"]);
  CHECK(json::bigint(hash) == h["hash"]);
  CHECK(json::bigint(v) != json::bigint(v + 1));
  CHECK(json::parse(hash) != json::parse("170141183460469231731687303715884118074"));
  // 2**128-1, the widest hash.
  Json widest = json::bigint(~static_cast<unsigned __int128>(0));
  CHECK(json::dump(widest) == "340282366920938463463374607431768211455");
  CHECK(json::parse(json::dump(widest)) == widest);

  Json neg = json::parse("-170141183460469231731687303715884118073");
  CHECK(json::is_bigint(neg));
  CHECK(json::bigint_digits(neg) == "-" + hash);
  CHECK(json::dump(neg) == "-" + hash);
  CHECK(neg != h["hash"]);
  CHECK(json::is_bigint(json::parse("-9223372036854775809")));

  // A bigint that fits a native integer is that integer, so a computed hash
  // compares equal to the same hash parsed from the wire.
  CHECK(json::bigint(static_cast<unsigned __int128>(42)) == json::parse("42"));
  CHECK(json::bigint("18446744073709551615") == json::parse("18446744073709551615"));
  CHECK(json::bigint("-00") == json::parse("0"));
  CHECK(json::bigint("000018446744073709551616") == two64);
  CHECK_FALSE(json::is_bigint(json::parse("42")));
  CHECK(json::bigint_digits(json::parse("-42")) == "-42");
  CHECK_THROWS_AS(json::bigint_digits(Json("42")), mktl::TypeError);
  CHECK_THROWS_AS(json::bigint("12a"), mktl::ValueError);
  CHECK_THROWS_AS(json::bigint(""), mktl::ValueError);
  CHECK_THROWS_AS(json::bigint("-"), mktl::ValueError);
}

TEST_CASE("json: other binary values are not serializable", "[json]") {
  CHECK_THROWS_AS(json::dump(Json::binary({1, 2, 3})), mktl::TypeError);
  CHECK_THROWS_AS(json::dump(Json::binary({1, 2, 3}, 7)), mktl::TypeError);
}

TEST_CASE("json: malformed input names the offset and what was expected", "[json]") {
  CHECK(parse_error("") == "invalid JSON at byte 0: expected a value, got end of input");
  CHECK(parse_error(R"({"a" 1})") == "invalid JSON at byte 5: expected ':' after an object key, got '1'");
  CHECK(parse_error("[1 2]") == "invalid JSON at byte 3: expected ',' or ']' in an array, got '2'");
  CHECK(parse_error("{\"a\":1}x") == "invalid JSON at byte 7: expected end of input after the value, got 'x'");
  CHECK(parse_error("\x01") == "invalid JSON at byte 0: expected a value, got byte 0x01");

  // Truncated inputs.
  for (const char* text : {"{", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,", "[", "[1,", "\"abc", "\"\\", "\"\\u12",
                           "tru", "nul", "-", "1.", "1e", "1e+", "Infinit", "-Infin"}) {
    INFO(text);
    CHECK(parse_error(text) != "");
  }
  // Garbage after a value.
  for (const char* text : {"1 2", "{} {}", "[]]", "nullx", "\"a\"\"b\"", "01", "1.5.2"}) {
    INFO(text);
    CHECK(parse_error(text) != "");
  }
  // Not JSON.
  for (const char* text : {"{a:1}", "{'a':1}", "[1,]", "{\"a\":1,}", "+1", ".5", "0x10", "1.e5", "[,1]", "True",
                           "\"tab\there\"", "{\"a\"}", "{1:2}", "[1;2]"}) {
    INFO(text);
    CHECK(parse_error(text) != "");
  }
  // Invalid escapes.
  for (const char* text : {R"("\x41")", R"("\U0041")", R"("\u00g0")", R"("\')", R"("\a")", R"("\ud83d\uZZZZ")"}) {
    INFO(text);
    CHECK(parse_error(text) != "");
  }
  CHECK(parse_error(R"("\q")") == "invalid JSON at byte 2: expected one of \" \\ / b f n r t u after '\\', got 'q'");
  // Invalid UTF-8 inside a string.
  CHECK(parse_error("\"\xFF\"") == "invalid JSON at byte 1: expected valid UTF-8 in a string, got byte 0xff");
  CHECK(parse_error("\"\xC3\"") != "");
  CHECK(parse_error("\"\xC0\xAF\"") != "");  // overlong '/'
}

TEST_CASE("json: hostile nesting is rejected, not a stack overflow", "[json]") {
  std::string ok = std::string(500, '[') + std::string(500, ']');
  CHECK(json::parse(ok).is_array());
  std::string deep_array(100000, '[');
  CHECK_THROWS_WITH(json::parse(deep_array), Catch::Contains("nesting no deeper than 512"));
  std::string deep_object;
  for (int i = 0; i < 100000; ++i) deep_object += "{\"a\":";
  CHECK_THROWS_AS(json::parse(deep_object), mktl::ValueError);
  CHECK_THROWS_AS(json::parse(std::string(513, '[') + std::string(513, ']')), mktl::ValueError);
  CHECK_NOTHROW(json::parse(std::string(512, '[') + std::string(512, ']')));
}

TEST_CASE("json: parse and dump round trip a typical payload", "[json]") {
  const std::string text = R"({"value": 21.5, "time": 1763770000.123456})";
  Json j = json::parse(text);
  CHECK(j["value"].get<double>() == 21.5);
  CHECK(j["time"].get<double>() == 1763770000.123456);
  // nlohmann sorts keys; spelling otherwise identical to the compact form.
  CHECK(json::dump(j) == R"({"time":1763770000.123456,"value":21.5})");
  std::string out = "prefix:";
  json::dump_to(out, j["value"]);
  CHECK(out == "prefix:21.5");
}

}  // namespace test_json
