// Items files: loading, normalisation and its errors, the hash, the per-daemon
// UUID, and the mKTL home directory.
#include <catch2/catch.hpp>

#include <mktl/catalog.hpp>
#include <mktl/error.hpp>
#include <mktl/log.hpp>

#include "config/logger.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_catalog {

using mktl::Json;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("mktl-catalog-" + std::to_string(::getpid()) + "-" + mktl::random_uuid());
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const auto file = path / name;
    std::ofstream(file) << text;
    return file.string();
  }
};

// The ConfigError message for normalising `items` from "heater.json".
std::string config_error(const char* items) {
  try {
    mktl::normalise_items(Json::parse(items), "heater.json");
  } catch (const mktl::ConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("normalise_items lower-cases keys and fills enumerators", "[catalog]") {
  const Json items = Json::parse(R"({
    "SetPoint": {"type": "Numeric", "units": {"": "K", "formatted": "degC"}, "min": 0, "max": 400,
                 "format": "%.2f", "initial": "290", "persist": true},
    "power": {"type": "boolean"},
    "fan": {"type": "boolean", "enumerators": {"1": "On"}},
    "mode": {"type": "enumerated", "enumerators": {"00": "Idle", "1": "Run"}},
    "status": {"type": "mask", "enumerators": {"None": "OK", "2": "Hot"}},
    "flags": {"type": "mask"},
    "comment": {"type": "string", "initial": ""},
    "anything": {"description": "no type", "custom_field": [1, 2]}
  })");
  const Json out = mktl::normalise_items(items, "heater.json");
  CHECK(out.contains("setpoint"));
  CHECK_FALSE(out.contains("SetPoint"));
  CHECK(out["setpoint"]["type"] == "numeric");
  CHECK(out["setpoint"]["initial"] == "290");  // kept as written; coerced when applied
  CHECK(out["power"]["enumerators"] == Json::parse(R"({"0": "False", "1": "True"})"));
  CHECK(out["fan"]["enumerators"] == Json::parse(R"({"0": "False", "1": "On"})"));
  CHECK(out["mode"]["enumerators"] == Json::parse(R"({"0": "Idle", "1": "Run"})"));
  CHECK(out["status"]["enumerators"] == Json::parse(R"({"None": "OK", "2": "Hot"})"));
  CHECK(out["flags"]["enumerators"] == Json::object());
  CHECK(out["anything"]["custom_field"] == Json::parse("[1, 2]"));
  CHECK(mktl::normalise_items(out, "heater.json") == out);  // idempotent
}

TEST_CASE("normalise_items names the file, the field and what was expected", "[catalog]") {
  CHECK(config_error(R"({"setpoint": {"type": "numerc"}})") ==
        "heater.json: /setpoint/type: expected one of boolean, enumerated, mask, numeric, numeric array, string, bulk, record, collection; "
        "got \"numerc\"");
  CHECK(config_error(R"([1])") == "heater.json: expected a JSON object of items {key: description}; got [1]");
  CHECK(config_error(R"({"_x": {}})") ==
        "heater.json: /_x: expected a key that does not start with '_' (built-in items are added by the daemon); got \"_x\"");
  CHECK(config_error(R"({"": {}})") == "heater.json: /: expected a non-empty item key");
  CHECK(config_error(R"({"a.b": {}})") == "heater.json: /a.b: expected a key without '.' or whitespace; got \"a.b\"");
  CHECK(config_error(R"({"a b": {}})") == "heater.json: /a b: expected a key without '.' or whitespace; got \"a b\"");
  CHECK(config_error(R"({"a/b": 5})") == "heater.json: /a~1b: expected an object describing the item; got 5");
  CHECK(config_error(R"({"Temp": {}, "temp": {}})").find("duplicate key") != std::string::npos);
  CHECK(config_error(R"({"t": {"type": 3}})").rfind("heater.json: /t/type: expected one of", 0) == 0);
  CHECK(config_error(R"({"t": {"persist": "yes"}})") == "heater.json: /t/persist: expected true or false; got \"yes\"");
  CHECK(config_error(R"({"t": {"settable": 1}})") == "heater.json: /t/settable: expected true or false; got 1");
  CHECK(config_error(R"({"t": {"gettable": null}})") == "heater.json: /t/gettable: expected true or false; got null");
  CHECK(config_error(R"({"t": {"description": 1}})") == "heater.json: /t/description: expected a string; got 1");
  CHECK(config_error(R"({"t": {"type": "numeric", "min": "0"}})") == "heater.json: /t/min: expected a number; got \"0\"");
  CHECK(config_error(R"({"t": {"type": "numeric", "min": 5, "max": 1}})") ==
        "heater.json: /t/max: expected a maximum not below the minimum 5; got 1");
  CHECK(config_error(R"({"t": {"type": "string", "max": 1}})") ==
        "heater.json: /t/max: expected no limit: min and max apply to numeric and numeric array items");
  CHECK(config_error(R"({"t": {"units": 5}})").rfind("heater.json: /t/units: expected a string or an object", 0) == 0);
  CHECK(config_error(R"({"t": {"units": {"formatted": "deg"}}})").rfind("heater.json: /t/units: expected", 0) == 0);
  CHECK(config_error(R"({"t": {"units": {"": "rad", "formatted": 2}}})") ==
        "heater.json: /t/units/formatted: expected a string naming units; got 2");
  CHECK(config_error(R"({"t": {"type": "enumerated", "enumerators": [1]}})") ==
        "heater.json: /t/enumerators: expected an object {\"0\": \"Name\", ...}; got [1]");
  CHECK(config_error(R"({"t": {"type": "enumerated", "enumerators": {"x": "A"}}})") ==
        "heater.json: /t/enumerators/x: expected an integer as key; got \"x\"");
  CHECK(config_error(R"({"t": {"type": "enumerated", "enumerators": {"1": 2}}})") ==
        "heater.json: /t/enumerators/1: expected a string naming the enumerator; got 2");
  CHECK(config_error(R"({"t": {"type": "enumerated", "enumerators": {"1": "A", "01": "B"}}})") ==
        "heater.json: /t/enumerators/1: duplicate enumerator key 1");
  CHECK(config_error(R"({"t": {"type": "mask", "enumerators": {"64": "A"}}})") ==
        "heater.json: /t/enumerators/64: expected a bit number 0..63; got \"64\"");
  CHECK(config_error(R"({"t": {"type": "numeric", "format": "%d %d"}})").rfind("heater.json: /t/format: expected a printf format", 0) == 0);
  CHECK(config_error(R"({"t": {"type": "numeric", "format": "%n"}})").rfind("heater.json: /t/format: expected", 0) == 0);
  CHECK(config_error(R"({"t": {"type": "numeric", "format": 3}})") == "heater.json: /t/format: expected a printf format string; got 3");
  CHECK(config_error(R"({"t": {"type": "numeric", "initial": "warm"}})") ==
        "heater.json: /t/initial: expected a valid value for a numeric item (could not convert string to float: 'warm'); "
        "got \"warm\"");
  CHECK(config_error(R"({"t": {"type": "numeric", "max": 10, "initial": 11}})") ==
        "heater.json: /t/initial: expected a valid value for a numeric item (value 11 is above the maximum 10 for this "
        "item); got 11");
  CHECK(config_error(R"({"t": {"type": "boolean", "initial": "maybe"}})").find("/t/initial") != std::string::npos);
  // Without a source the error still says where.
  try {
    mktl::normalise_items(Json::parse(R"({"t": {"persist": 1}})"));
    FAIL("no error");
  } catch (const mktl::ConfigError& e) {
    CHECK(e.pointer() == "/t/persist");
    CHECK(e.type() == "ValueError");
  }
}

// Found from outside (issue 14): a NaN limit silently meant no limit, an
// infinite one refused every SET ("above the maximum -inf").
TEST_CASE("non-finite limits and initial values are refused at load", "[catalog]") {
  // mktl::json::parse reads NaN, Infinity and 1e999 (inf) as the wire does.
  auto error = [](const char* items) {
    try {
      mktl::normalise_items(mktl::json::parse(items), "heater.json");
    } catch (const mktl::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error(R"({"a": {"type": "numeric", "min": NaN, "max": 5}})") ==
        "heater.json: /a/min: expected a finite number (NaN and infinities are not limits); got NaN");
  CHECK(error(R"({"a": {"type": "numeric", "min": 0, "max": -Infinity}})") ==
        "heater.json: /a/max: expected a finite number (NaN and infinities are not limits); got -Infinity");
  CHECK(error(R"({"a": {"type": "numeric", "max": NaN}})") ==
        "heater.json: /a/max: expected a finite number (NaN and infinities are not limits); got NaN");
  CHECK(error(R"({"a": {"type": "numeric", "max": 1e999}})") ==
        "heater.json: /a/max: expected a finite number (NaN and infinities are not limits); got Infinity");
  CHECK(error(R"({"a": {"type": "numeric array", "min": -1e999}})") ==
        "heater.json: /a/min: expected a finite number (NaN and infinities are not limits); got -Infinity");
  const std::string initial = "expected a finite initial value for a numeric item (NaN and infinities are refused here; "
                              "they may still be set or published)";
  CHECK(error(R"({"a": {"type": "numeric", "initial": NaN}})") == "heater.json: /a/initial: " + initial + "; got NaN");
  CHECK(error(R"({"a": {"type": "numeric", "initial": 1e999}})") == "heater.json: /a/initial: " + initial + "; got Infinity");
  CHECK(error(R"({"a": {"type": "numeric", "initial": "-inf"}})") == "heater.json: /a/initial: " + initial + "; got \"-inf\"");
  CHECK(error(R"({"a": {"type": "numeric array", "initial": [1, NaN]}})") ==
        "heater.json: /a/initial: expected a finite initial value for a numeric array item (NaN and infinities are refused "
        "here; they may still be set or published); got [1,NaN]");
  CHECK(error(R"({"a": {"type": "numeric array", "min": 0, "max": 9, "initial": [1, Infinity]}})").rfind(
            "heater.json: /a/initial: expected a valid value for a numeric array item (value inf is above the maximum 9", 0) == 0);
  // Finite limits, initial values and non-numeric items are unaffected.
  CHECK(error(R"({"a": {"type": "numeric", "min": -1e300, "max": 1e300, "initial": 0.5},
                  "b": {"type": "numeric array", "initial": [1, 2.5]}, "c": {"type": "string", "initial": "NaN"}})") ==
        "no error");
}

TEST_CASE("valid formats are accepted", "[catalog]") {
  CHECK_NOTHROW(mktl::normalise_items(Json::parse(R"({
    "a": {"type": "numeric", "format": "%.3f"},
    "b": {"type": "numeric", "format": "%2d:%2.2d:%04.1f", "units": {"": "rad", "formatted": "deg"}},
    "c": {"type": "numeric", "format": "%5.1f%%"},
    "d": {"type": "string", "format": "whatever"}
  })")));
}

TEST_CASE("load_json_file reports the file and the position", "[catalog]") {
  TempDir dir;
  const auto good = dir.write("good.json", R"({"a": {"type": "numeric", "initial": 1}})");
  CHECK(mktl::load_json_file(good)["a"]["initial"] == Json(1));
  const auto bad = dir.write("bad.json", "{\n  \"a\": {\"type\": }\n}");
  try {
    mktl::load_json_file(bad);
    FAIL("no error");
  } catch (const mktl::ConfigError& e) {
    const std::string text = e.what();
    CHECK(e.file() == bad);
    CHECK(text.rfind(bad + ": ", 0) == 0);
    CHECK(text.find("line 2, column 17") != std::string::npos);
  }
  try {
    mktl::load_json_file((dir.path / "missing.json").string());
    FAIL("no error");
  } catch (const mktl::ConfigError& e) {
    CHECK(std::string(e.what()).find("missing.json: cannot read file: No such file or directory") != std::string::npos);
  }
}

TEST_CASE("items_hash is stable and follows the items", "[catalog]") {
  const Json a = Json::parse(R"({"x": {"type": "numeric"}, "y": {"type": "string"}})");
  const Json b = Json::parse(R"({"y": {"type": "string"}, "x": {"type": "numeric"}})");  // same items, other order
  const Json c = Json::parse(R"({"x": {"type": "numeric", "units": "K"}, "y": {"type": "string"}})");
  CHECK(mktl::items_hash(a) == mktl::items_hash(a));
  CHECK(mktl::items_hash(a) == mktl::items_hash(b));
  CHECK(mktl::items_hash(a) != mktl::items_hash(c));
  CHECK(mktl::items_hash(Json::object()) != mktl::items_hash(a));
  // A 128-bit integer written as bare digits, the same from run to run.
  const std::string digits = mktl::json::bigint_digits(mktl::items_hash(a));
  CHECK(std::regex_match(digits, std::regex("[0-9]+")));
  CHECK(digits.size() > 20);
  CHECK(mktl::json::dump(mktl::items_hash(Json::object())) == "11301467476620553031312243139358905781");
}

TEST_CASE("random_uuid makes version 4 UUIDs", "[catalog]") {
  const std::regex form("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const auto uuid = mktl::random_uuid();
    CHECK(std::regex_match(uuid, form));
    seen.insert(uuid);
  }
  CHECK(seen.size() == 100);
}

TEST_CASE("daemon_uuid is created once and kept", "[catalog]") {
  TempDir dir;
  const std::string home = (dir.path / "home").string();
  const auto first = mktl::daemon_uuid(home, "Demo", "disp1");
  CHECK(first.size() == 36);
  const fs::path file = dir.path / "home" / "daemon" / "store" / "demo" / "disp1.uuid";
  REQUIRE(fs::exists(file));
  std::string on_disk;
  std::getline(std::ifstream(file), on_disk);
  CHECK(on_disk == first);
  CHECK(mktl::daemon_uuid(home, "demo", "disp1") == first);
  CHECK(mktl::daemon_uuid(home, "demo", "disp2") != first);
  // A file written by the reference (or by hand) is read back verbatim, trimmed.
  std::ofstream(dir.path / "home" / "daemon" / "store" / "demo" / "old.uuid") << "  0f1e2d3c-aaaa-4bbb-8ccc-123456789abc\n";
  CHECK(mktl::daemon_uuid(home, "demo", "old") == "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc");
  // No temporary files are left behind.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path / "home" / "daemon" / "store" / "demo")) {
    (void)entry;
    ++files;
  }
  CHECK(files == 3);
  CHECK_THROWS_AS(mktl::daemon_uuid(home, "demo", "../x"), mktl::ValueError);
}

TEST_CASE("daemon_uuid agrees between concurrent starters", "[catalog]") {
  TempDir dir;
  const std::string home = dir.path.string();
  std::vector<std::string> results(4);
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < results.size(); ++i)
      threads.emplace_back([&, i] { results[i] = mktl::daemon_uuid(home, "race", "a"); });
  }
  for (const auto& r : results) CHECK(r == results[0]);
}

TEST_CASE("mktl_home follows MKTL_HOME, then HOME", "[catalog]") {
  const char* saved_mktl = std::getenv("MKTL_HOME");
  const std::string saved_mktl_value = saved_mktl ? saved_mktl : "";
  const char* saved_home = std::getenv("HOME");
  const std::string saved_home_value = saved_home ? saved_home : "";
  ::setenv("MKTL_HOME", "/tmp/somewhere", 1);
  CHECK(mktl::mktl_home() == "/tmp/somewhere");
  ::unsetenv("MKTL_HOME");
  ::setenv("HOME", "/home/observer", 1);
  CHECK(mktl::mktl_home() == "/home/observer/.mKTL");
  if (saved_mktl) ::setenv("MKTL_HOME", saved_mktl_value.c_str(), 1);
  if (saved_home) ::setenv("HOME", saved_home_value.c_str(), 1);
  else ::unsetenv("HOME");
}

TEST_CASE("library loggers exist before and after setup_logging", "[catalog]") {
  auto before = mktl::logger("mktl.test-catalog");
  REQUIRE(before);
  CHECK(mktl::logger("mktl.test-catalog") == before);  // one logger per name
  CHECK(before->should_log(spdlog::level::warn));     // errors are never silent
  mktl::setup_logging(2);
  const bool env = std::getenv("MKTL_LOG") != nullptr;
  if (!env) {
    CHECK(before->should_log(spdlog::level::debug));
    CHECK(mktl::logger("mktl.transport")->should_log(spdlog::level::debug));
    CHECK(spdlog::get("mktl.registry") != nullptr);
    CHECK(spdlog::default_logger()->should_log(spdlog::level::debug));
  }
  mktl::setup_logging(0);
  if (!env) {
    CHECK_FALSE(before->should_log(spdlog::level::info));
    CHECK(before->should_log(spdlog::level::warn));
  }
}

}  // namespace test_catalog
