// Item types, SET coercion (with the reference's error types and texts) and
// formatting/parsing of values for display.
#include <catch2/catch.hpp>

#include <mktl/error.hpp>
#include <mktl/format.hpp>

#include "model/python.hpp"

#include <cmath>
#include <string>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_format {

using mktl::Json;

namespace {

// Runs `f`, which must throw a mktl::Error, and returns "Type: text".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mktl::Error& e) {
    return e.type() + ": " + e.text();
  }
  return "no error";
}

Json desc(const char* text) { return Json::parse(text); }

const double kPi = 3.14159265358979323846;

}  // namespace

TEST_CASE("item_type reads the type field", "[format]") {
  CHECK(mktl::item_type(desc(R"({})")) == mktl::ItemType::typeless);
  CHECK(mktl::item_type(desc(R"({"type": ""})")) == mktl::ItemType::typeless);
  CHECK(mktl::item_type(desc(R"({"type": "Numeric Array"})")) == mktl::ItemType::numeric_array);
  CHECK(mktl::item_type(desc(R"({"type": "mask"})")) == mktl::ItemType::mask);
  CHECK(std::string(mktl::item_type_name(mktl::ItemType::numeric_array)) == "numeric array");
  CHECK(error_of([] { mktl::item_type(desc(R"({"type": "numerc"})")); }) == "ValueError: unknown item type: 'numerc'");
  CHECK(error_of([] { mktl::item_type(desc(R"({"type": 3})")); }) == "ValueError: item type must be a string, not 'int'");
}

TEST_CASE("numeric SET coercion follows int() then float()", "[format]") {
  const Json d = desc(R"({"type": "numeric"})");
  CHECK(mktl::validate_type(d, Json(17)) == Json(17));
  CHECK(mktl::validate_type(d, Json(17)).is_number_integer());
  CHECK(mktl::validate_type(d, Json(2.0)).is_number_float());
  CHECK(mktl::validate_type(d, Json("17")) == Json(17));
  CHECK(mktl::validate_type(d, Json("17")).is_number_integer());
  CHECK(mktl::validate_type(d, Json(" -1_000 ")) == Json(-1000));
  CHECK(mktl::validate_type(d, Json("1.5")) == Json(1.5));
  CHECK(mktl::validate_type(d, Json("1e3")).get<double>() == 1000.0);
  CHECK(std::isinf(mktl::validate_type(d, Json("-inf")).get<double>()));
  CHECK(mktl::validate_type(d, Json(true)) == Json(1));
  CHECK(mktl::validate_type(d, Json(true)).is_number_integer());
  CHECK(mktl::validate_type(d, Json("123456789012345678901234567890")) ==
        mktl::json::bigint("123456789012345678901234567890"));
  CHECK(error_of([&] { mktl::validate_type(d, Json("abc")); }) == "ValueError: could not convert string to float: 'abc'");
  CHECK(error_of([&] { mktl::validate_type(d, Json("it's")); }) ==
        "ValueError: could not convert string to float: \"it's\"");
  CHECK(error_of([&] { mktl::validate_type(d, Json("1__0")); }) == "ValueError: could not convert string to float: '1__0'");
  CHECK(error_of([&] { mktl::validate_type(d, Json()); }) ==
        "TypeError: float() argument must be a string or a real number, not 'NoneType'");
  CHECK(error_of([&] { mktl::validate_type(d, Json::array({1})); }) ==
        "TypeError: float() argument must be a string or a real number, not 'list'");
}

TEST_CASE("numeric min and max are enforced", "[format]") {
  const Json d = desc(R"({"type": "numeric", "min": 0, "max": 100})");
  CHECK(mktl::validate_type(d, Json(100)) == Json(100));
  CHECK(mktl::validate_type(d, Json(0)) == Json(0));
  CHECK(mktl::validate_type(d, Json("99.5")) == Json(99.5));
  CHECK(error_of([&] { mktl::validate_type(d, Json(120)); }) ==
        "ValueError: value 120 is above the maximum 100 for this item");
  CHECK(error_of([&] { mktl::validate_type(d, Json(-0.5)); }) ==
        "ValueError: value -0.5 is below the minimum 0 for this item");
  CHECK(error_of([&] { mktl::validate_type(d, Json(100.000001)); }).rfind("ValueError: value 100.000001 is above", 0) == 0);
}

TEST_CASE("numeric NaN is rejected only when limits exist", "[format]") {
  CHECK(std::isnan(mktl::validate_type(desc(R"({"type": "numeric"})"), Json("nan")).get<double>()));
  CHECK(error_of([] { mktl::validate_type(desc(R"({"type": "numeric", "max": 1})"), Json("nan")); })
            .rfind("ValueError: value nan", 0) == 0);
}

TEST_CASE("numeric array SET coercion is element-wise", "[format]") {
  const Json d = desc(R"({"type": "numeric array", "max": 10})");
  CHECK(mktl::validate_type(d, Json::parse(R"([1, "2", "2.5", true])")) == Json::parse("[1, 2, 2.5, 1]"));
  CHECK(mktl::validate_type(d, Json::array()) == Json::array());
  CHECK(error_of([&] { mktl::validate_type(d, Json(5)); }) == "TypeError: 'int' object is not iterable");
  CHECK(error_of([&] { mktl::validate_type(d, Json()); }) == "TypeError: 'NoneType' object is not iterable");
  CHECK(error_of([&] { mktl::validate_type(d, Json("12")); }) ==
        "TypeError: a numeric array value must be a list, not 'str'");
  CHECK(error_of([&] { mktl::validate_type(d, Json::parse(R"([1, "x"])")); }) ==
        "ValueError: could not convert string to float: 'x'");
  CHECK(error_of([&] { mktl::validate_type(d, Json::parse("[1, 11]")); }) ==
        "ValueError: value 11 is above the maximum 10 for this item");
}

TEST_CASE("boolean SET coercion goes through the enumerators", "[format]") {
  const Json d = desc(R"({"type": "boolean"})");  // default enumerators False/True
  CHECK(mktl::validate_type(d, Json(true)) == Json(true));
  CHECK(mktl::validate_type(d, Json(false)) == Json(false));
  CHECK(mktl::validate_type(d, Json(1)) == Json(true));
  CHECK(mktl::validate_type(d, Json(0)) == Json(false));
  CHECK(mktl::validate_type(d, Json("1")) == Json(true));
  CHECK(mktl::validate_type(d, Json("true")) == Json(true));
  CHECK(mktl::validate_type(d, Json("FALSE")) == Json(false));
  CHECK(mktl::validate_type(d, Json(1)).is_boolean());
  const Json on_off = desc(R"({"type": "boolean", "enumerators": {"0": "Off", "1": "On"}})");
  CHECK(mktl::validate_type(on_off, Json("On")) == Json(true));
  CHECK(mktl::validate_type(on_off, Json("off")) == Json(false));
  // The wire text is Python's str(KeyError(...)): the message's repr().
  CHECK(error_of([&] { mktl::validate_type(on_off, Json("maybe")); }) == "KeyError: \"invalid enumerator: 'maybe'\"");
  CHECK(error_of([&] { mktl::validate_type(d, Json(2)); }) == "KeyError: \"invalid enumerator: '2'\"");
  CHECK(error_of([&] { mktl::validate_type(d, Json(1.0)); }) == "KeyError: \"invalid enumerator: '1.0'\"");
  CHECK(error_of([&] { mktl::validate_type(d, Json()); }) ==
        "TypeError: int() argument must be a string, a bytes-like object or a real number, not 'NoneType'");
}

TEST_CASE("enumerated SET coercion yields the integer key", "[format]") {
  const Json d = desc(R"({"type": "enumerated", "enumerators": {"0": "Idle", "1": "Moving", "7": "Fault"}})");
  CHECK(mktl::validate_type(d, Json(7)) == Json(7));
  CHECK(mktl::validate_type(d, Json("1")) == Json(1));
  CHECK(mktl::validate_type(d, Json("1")).is_number_integer());
  CHECK(mktl::validate_type(d, Json("moving")) == Json(1));
  CHECK(mktl::validate_type(d, Json("FAULT")) == Json(7));
  CHECK(mktl::validate_type(d, Json(true)) == Json(1));
  CHECK(error_of([&] { mktl::validate_type(d, Json(3)); }) == "KeyError: \"invalid enumerator: '3'\"");
  CHECK(error_of([&] { mktl::validate_type(d, Json("Parked")); }) == "KeyError: \"invalid enumerator: 'Parked'\"");
  CHECK(error_of([&] { mktl::validate_type(d, Json::array({"a"})); }) ==
        "KeyError: 'invalid enumerator: \"[\\'a\\']\"'");
}

TEST_CASE("mask SET coercion checks the bits", "[format]") {
  const Json d = desc(R"({"type": "mask", "enumerators": {"None": "OK", "0": "Timeout", "1": "Error", "3": "Warning"}})");
  CHECK(mktl::validate_type(d, Json(0)) == Json(0));
  CHECK(mktl::validate_type(d, Json(11)) == Json(11));
  CHECK(mktl::validate_type(d, Json("3")) == Json(3));
  CHECK(mktl::validate_type(d, Json(1.7)) == Json(1));  // int() truncates, as in Python
  CHECK(mktl::validate_type(d, Json(true)) == Json(1));
  CHECK(error_of([&] { mktl::validate_type(d, Json(4)); }) == "KeyError: 'value contains unknown active bits: 4'");
  CHECK(error_of([&] { mktl::validate_type(d, Json(-1)); }) == "KeyError: 'value contains unknown active bits: -1'");
  // Floats beyond 64 bits either way (-1e19 once overflowed a cast to int64:
  // tests/fuzz/regressions/json_payload/mask-float-below-int64).
  CHECK(error_of([&] { mktl::validate_type(d, Json(-1e19)); }) ==
        "KeyError: 'value contains unknown active bits: -10000000000000000000'");
  CHECK(error_of([&] { mktl::validate_type(d, Json(1e20)); }) ==
        "KeyError: 'value contains unknown active bits: 100000000000000000000'");
  CHECK(error_of([&] { mktl::validate_type(d, Json(-2.5)); }) == "KeyError: 'value contains unknown active bits: -2'");
  CHECK(error_of([&] { mktl::validate_type(d, Json("abc")); }) ==
        "ValueError: invalid literal for int() with base 10: 'abc'");
  CHECK(error_of([&] { mktl::validate_type(d, Json("nan")); }) ==
        "ValueError: invalid literal for int() with base 10: 'nan'");
  CHECK(error_of([&] { mktl::validate_type(d, Json(std::nan(""))); }) ==
        "ValueError: cannot convert float NaN to integer");
  CHECK(error_of([&] { mktl::validate_type(d, Json::object()); }) ==
        "TypeError: int() argument must be a string, a bytes-like object or a real number, not 'dict'");
}

TEST_CASE("string, bulk and typeless values pass unchanged", "[format]") {
  for (const char* d : {R"({"type": "string"})", R"({"type": "bulk"})", R"({})"}) {
    CHECK(mktl::validate_type(desc(d), Json(5)) == Json(5));
    CHECK(mktl::validate_type(desc(d), Json("x")) == Json("x"));
    CHECK(mktl::validate_type(desc(d), Json::parse(R"({"a": [1]})")) == Json::parse(R"({"a": [1]})"));
  }
}

TEST_CASE("python text helpers spell values as Python does", "[format]") {
  using namespace mktl::python;
  CHECK(repr("abc") == "'abc'");
  CHECK(repr("it's") == "\"it's\"");
  CHECK(repr("a'b\"c") == "'a\\'b\"c'");
  CHECK(repr("tab\there\n") == "'tab\\there\\n'");
  CHECK(str(Json(1.0)) == "1.0");
  CHECK(str(Json(1e16)) == "1e+16");
  CHECK(str(Json(0.0001)) == "0.0001");
  CHECK(str(Json(1e-5)) == "1e-05");
  CHECK(str(Json(true)) == "True");
  CHECK(str(Json()) == "None");
  CHECK(str(Json::parse(R"([1, 2.5, "a", null])")) == "[1, 2.5, 'a', None]");
  CHECK(str(Json::parse(R"({"a": false})")) == "{'a': False}");
  CHECK(mktl::KeyError::python("this daemon does not contain 'x'").text() == "\"this daemon does not contain 'x'\"");
  CHECK(!parse_int("1.0"));
  CHECK(!parse_int("_1"));
  CHECK(*parse_int("+007") == Json(7));
  CHECK(*parse_float(".5") == 0.5);
  CHECK(*parse_float("5.") == 5.0);
  CHECK(!parse_float("."));
  CHECK(!parse_float("1e"));
  CHECK(!parse_float("0x10"));
  CHECK(std::isinf(*parse_float("1e999")));
}

TEST_CASE("format_value shows enumerators and masks", "[format]") {
  const Json b = desc(R"({"type": "boolean"})");
  CHECK(mktl::format_value(b, Json(true)) == "True");
  CHECK(mktl::format_value(b, Json(0)) == "False");
  CHECK(mktl::format_value(b, Json()) == "");
  const Json e = desc(R"({"type": "enumerated", "enumerators": {"0": "Idle", "1": "Moving"}})");
  CHECK(mktl::format_value(e, Json(1)) == "Moving");
  CHECK(mktl::format_value(e, Json(5)) == "5");  // unknown: shown as itself
  const Json m = desc(R"({"type": "mask", "enumerators": {"None": "OK", "0": "Timeout", "1": "Error", "10": "Warning"}})");
  CHECK(mktl::format_value(m, Json(0)) == "OK");
  CHECK(mktl::format_value(m, Json(3)) == "Timeout, Error");
  CHECK(mktl::format_value(m, Json(1026)) == "Error, Warning");  // bit order, not text order
  CHECK(mktl::format_value(m, Json(4)) == "4");
  const Json no_none = desc(R"({"type": "mask", "enumerators": {"0": "A"}})");
  CHECK(mktl::format_value(no_none, Json(0)) == "");
}

TEST_CASE("format_value applies printf formats safely", "[format]") {
  auto fmt = [](const char* format, const Json& value) {
    return mktl::format_value(Json{{"type", "numeric"}, {"format", format}}, value);
  };
  CHECK(fmt("%.2f", Json(3.14159)) == "3.14");
  CHECK(fmt("%8.3f", Json(2)) == "   2.000");
  CHECK(fmt("%-6.1f|", Json(2.25)) == "2.2   |");
  CHECK(fmt("%+.1e", Json(12345.0)) == "+1.2e+04");
  CHECK(fmt("%g", Json(0.0001)) == "0.0001");
  CHECK(fmt("%d", Json(34.9999)) == "35");  // the reference rounds for %d
  CHECK(fmt("%d", Json(-2.5)) == "-3");
  CHECK(fmt("%i", Json(7)) == "7");
  CHECK(fmt("%05d", Json(-42)) == "-0042");
  CHECK(fmt("%.3d", Json(5)) == "005");
  CHECK(fmt("%x", Json(255)) == "ff");
  CHECK(fmt("%#x", Json(255)) == "0xff");
  CHECK(fmt("%X", Json(-255)) == "-FF");
  CHECK(fmt("%#o", Json(8)) == "0o10");  // Python's spelling
  CHECK(fmt("%s", Json(1.5)) == "1.5");
  CHECK(fmt("%s", Json(2.0)) == "2.0");
  CHECK(fmt("%5s", Json(17)) == "   17");
  CHECK(fmt("%.1f%%", Json(12.34)) == "12.3%");
  CHECK(fmt("T=%.1f K", Json(4.25)) == "T=4.2 K");
  CHECK(fmt("%ld", Json(12)) == "12");
  // Unusable formats never reach snprintf: the value is shown as itself.
  CHECK(fmt("%n", Json(1)) == "1");
  CHECK(fmt("%s %s", Json(1)) == "1");
  CHECK(fmt("%*d", Json(1)) == "1");
  CHECK(fmt("no conversion", Json(1)) == "1");
  CHECK(fmt("%d", Json("abc")) == "abc");
  CHECK(fmt("%d", Json(std::nan(""))) == "nan");
  CHECK(fmt("%.2f", Json()) == "");
  CHECK(mktl::format_value(desc(R"({"type": "numeric"})"), Json(3)) == "3");
  CHECK(mktl::format_value(desc(R"({"type": "numeric"})"), Json(3.0)) == "3.0");
}

TEST_CASE("format_value for arrays, strings and typeless", "[format]") {
  CHECK(mktl::format_value(desc(R"({"type": "numeric array"})"), Json::parse("[1, 2.5]")) == "[1, 2.5]");
  CHECK(mktl::format_value(desc(R"({"type": "numeric array", "format": "%.1f"})"), Json::parse("[1, 2.25]")) ==
        "[1.0, 2.2]");
  CHECK(mktl::format_value(desc(R"({"type": "string"})"), Json("hello")) == "hello");
  CHECK(mktl::format_value(desc(R"({})"), Json::parse(R"({"a": [true]})")) == "{'a': [True]}");
  CHECK(mktl::format_value(desc(R"({"type": "bogus"})"), Json(3)) == "3");  // never throws
}

TEST_CASE("units convert for display", "[format]") {
  const Json d = desc(R"({"type": "numeric", "format": "%.2f", "units": {"": "K", "formatted": "degC"}})");
  CHECK(mktl::display_units(d) == "degC");
  CHECK(mktl::format_value(d, Json(273.15)) == "0.00");
  CHECK(mktl::parse_formatted(d, "25").get<double>() == Approx(298.15));
  CHECK(mktl::display_units(desc(R"({"units": "mm"})")) == "mm");
  CHECK(mktl::display_units(desc(R"({"units": {"": "mm"}})")) == "mm");
  CHECK(mktl::display_units(desc(R"({})")) == "");
  // No known conversion: the value stays in wire units, and so do the units shown.
  const Json odd = desc(R"({"type": "numeric", "units": {"": "widgets", "formatted": "gadgets"}})");
  CHECK(mktl::display_units(odd) == "widgets");
  CHECK(mktl::format_value(odd, Json(3)) == "3");
}

TEST_CASE("sexagesimal formatting of angles", "[format]") {
  const Json deg = desc(R"({"type": "numeric", "format": "%d:%02d:%04.1f", "units": {"": "rad", "formatted": "deg"}})");
  const Json hrs = desc(R"({"type": "numeric", "format": "%02d:%02d:%05.2f", "units": {"": "rad", "formatted": "h"}})");
  const double deg1 = kPi / 180;
  CHECK(mktl::format_value(deg, Json(12.5 * deg1)) == "12:30:00.0");
  CHECK(mktl::format_value(deg, Json(-0.5 * deg1)) == "-0:30:00.0");
  CHECK(mktl::format_value(deg, Json(-(10 + 1.0 / 60) * deg1)) == "-10:01:00.0");
  CHECK(mktl::format_value(deg, Json(0.0)) == "0:00:00.0");
  // 59.96 s rounds to the next minute, and carries into the degrees.
  CHECK(mktl::format_value(deg, Json((12 + 59.0 / 60 + 59.96 / 3600) * deg1)) == "13:00:00.0");
  CHECK(mktl::format_value(deg, Json((12 + 29.0 / 60 + 59.94 / 3600) * deg1)) == "12:29:59.9");
  CHECK(mktl::format_value(hrs, Json(kPi)) == "12:00:00.00");
  CHECK(mktl::format_value(hrs, Json(kPi / 12 * (5 + 4.0 / 60 + 3.25 / 3600))) == "05:04:03.25");
  CHECK(mktl::format_value(hrs, Json(-kPi / 24)) == "-00:30:00.00");
  CHECK(mktl::display_units(hrs) == "h");
  // Two fields, padded minutes, as in "%2d:%2.2d".
  const Json dm = desc(R"({"type": "numeric", "format": "%3d:%2.2d", "units": {"": "deg", "formatted": "deg"}})");
  CHECK(mktl::format_value(dm, Json(5.5)) == "  5:30");
  CHECK(mktl::format_value(dm, Json(-5.5)) == "-5:30");
  CHECK(mktl::format_value(dm, Json(5.999)) == "  6:00");
  // Without units the reference shows the plain value.
  CHECK(mktl::format_value(desc(R"({"type": "numeric", "format": "%d:%02d"})"), Json(1.5)) == "1.5");
}

TEST_CASE("parse_formatted inverts format_value", "[format]") {
  const Json deg = desc(R"({"type": "numeric", "format": "%d:%02d:%04.1f", "units": {"": "rad", "formatted": "deg"}})");
  const Json hrs = desc(R"({"type": "numeric", "format": "%02d:%02d:%05.2f", "units": {"": "rad", "formatted": "hours"}})");
  CHECK(mktl::parse_formatted(deg, "12:30:00").get<double>() == Approx(12.5 * kPi / 180));
  CHECK(mktl::parse_formatted(deg, "-0:30:00").get<double>() == Approx(-0.5 * kPi / 180));
  CHECK(mktl::parse_formatted(deg, "45").get<double>() == Approx(kPi / 4));
  CHECK(mktl::parse_formatted(hrs, "12:00:00").get<double>() == Approx(kPi));
  for (double v : {0.1, -0.7, 1.234, 3.0, -3.1}) {
    const std::string text = mktl::format_value(hrs, Json(v));
    CHECK(mktl::parse_formatted(hrs, text).get<double>() == Approx(v).margin(1e-6));
  }
  CHECK(error_of([&] { mktl::parse_formatted(deg, "12:xx:00"); }) == "ValueError: could not convert string to float: 'xx'");
  CHECK(error_of([] {
          mktl::parse_formatted(desc(R"({"type": "numeric", "format": "%d:%d", "units": {"": "rad", "formatted": "furlong"}})"), "1:2");
        }) == "ValueError: unrecognized target units: furlong");

  const Json e = desc(R"({"type": "enumerated", "enumerators": {"0": "Idle", "1": "Moving"}})");
  CHECK(mktl::parse_formatted(e, "moving") == Json(1));
  CHECK(mktl::parse_formatted(e, " Idle ") == Json(0));
  CHECK(mktl::parse_formatted(e, mktl::format_value(e, Json(1))) == Json(1));
  CHECK(error_of([&] { mktl::parse_formatted(e, "Parked"); }) == "KeyError: \"invalid enumeration value: 'parked'\"");
  const Json b = desc(R"({"type": "boolean"})");
  CHECK(mktl::parse_formatted(b, "true") == Json(true));
  CHECK(mktl::parse_formatted(b, "False") == Json(false));

  const Json m = desc(R"({"type": "mask", "enumerators": {"None": "OK", "0": "Timeout", "1": "Error", "3": "Warning"}})");
  CHECK(mktl::parse_formatted(m, "timeout, WARNING") == Json(9));
  CHECK(mktl::parse_formatted(m, "") == Json(0));
  CHECK(mktl::parse_formatted(m, "none") == Json(0));
  CHECK(mktl::parse_formatted(m, "OK") == Json(0));
  CHECK(mktl::parse_formatted(m, "3") == Json(3));
  CHECK(mktl::parse_formatted(m, mktl::format_value(m, Json(11))) == Json(11));
  CHECK(error_of([&] { mktl::parse_formatted(m, "Timeout, Bogus"); }) ==
        "KeyError: \"invalid bit name in mask value: 'bogus'\"");
  CHECK(error_of([&] { mktl::parse_formatted(m, "4"); }) == "KeyError: 'value contains unknown active bits: 4'");

  const Json n = desc(R"({"type": "numeric", "format": "%.2f", "max": 10})");
  CHECK(mktl::parse_formatted(n, "7") == Json(7));
  CHECK(mktl::parse_formatted(n, "7.25") == Json(7.25));
  CHECK(error_of([&] { mktl::parse_formatted(n, "abc"); }) == "ValueError: could not convert string to float: 'abc'");
  CHECK(error_of([&] { mktl::parse_formatted(n, "11"); }) == "ValueError: value 11 is above the maximum 10 for this item");

  const Json a = desc(R"({"type": "numeric array"})");
  CHECK(mktl::parse_formatted(a, "[1, 2.5]") == Json::parse("[1, 2.5]"));
  CHECK(mktl::parse_formatted(a, "(1, 2)") == Json::parse("[1, 2]"));
  CHECK(mktl::parse_formatted(a, "1, 2, 3") == Json::parse("[1, 2, 3]"));
  CHECK(error_of([&] { mktl::parse_formatted(a, "[1,"); }).rfind("ValueError: ", 0) == 0);

  CHECK(mktl::parse_formatted(desc(R"({"type": "string"})"), " keep spaces ") == Json(" keep spaces "));
  CHECK(mktl::parse_formatted(desc(R"({})"), "42") == Json("42"));
}

}  // namespace test_format
