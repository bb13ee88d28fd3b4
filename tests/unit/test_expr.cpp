// mktl::Expression: the table of cases in expr_cases.json (every operator,
// function, precedence level, NULL rule and error kind), plus what a table
// cannot say: matches(), fields(), nesting limits, the function registry,
// user functions' exceptions, and evaluation from several threads.
#include <catch2/catch.hpp>

#include <mktl/error.hpp>
#include <mktl/expr.hpp>
#include <mktl/json.hpp>

#include <atomic>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_expr {

using mktl::Expression;
using mktl::ExpressionFunctions;
using mktl::Json;

namespace {

// The functions the table's cases call.
ExpressionFunctions test_functions() {
  ExpressionFunctions functions;
  functions.add("double", 1, 1, [](std::span<const Json> args) -> Json {
    if (!args[0].is_number()) throw mktl::TypeError("needs a number");
    if (args[0].is_number_float()) return args[0].get<double>() * 2;
    return args[0].get<std::int64_t>() * 2;
  });
  functions.add("Join", 1, -1, [](std::span<const Json> args) -> Json {
    std::string out;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (i > 1) out += args[0].get<std::string>();
      out += args[i].get<std::string>();
    }
    return out;
  });
  functions.add("BOOM", 0, 0, [](std::span<const Json>) -> Json { throw std::runtime_error("boom"); });
  functions.add("KEYFAIL", 0, 1, [](std::span<const Json>) -> Json { throw mktl::KeyError("no such key"); });
  functions.add("WEIRD", 0, 0, [](std::span<const Json>) -> Json { throw 42; });
  functions.add("ARGC", 0, -1, [](std::span<const Json> args) -> Json { return args.size(); });
  return functions;
}

// Equal values of the same kind: 2 and 2.0 differ, an int64 and a uint64
// holding the same number do not.
bool same(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() != b.is_number_float()) return false;
    if (a.is_number_float()) return a.get<double>() == b.get<double>();
    return a == b;
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!same(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

Json load_cases() {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "expr_cases.json";
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return mktl::json::parse(text.str());
}

// The text of the ValueError parse() throws ("" if none).
std::string parse_error(const std::string& text, const ExpressionFunctions& functions = ExpressionFunctions()) {
  try {
    Expression::parse(text, functions);
  } catch (const mktl::ValueError& e) {
    return e.what();
  }
  return "";
}

std::string repeat(const std::string& piece, std::size_t n) {
  std::string out;
  out.reserve(piece.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += piece;
  return out;
}

}  // namespace

TEST_CASE("expr: the table of cases", "[expr]") {
  const Json doc = load_cases();
  const Json& default_row = doc.at("row");
  const ExpressionFunctions functions = test_functions();
  const Json& cases = doc.at("cases");
  REQUIRE(cases.size() >= 150);

  std::size_t checked = 0;
  for (const Json& c : cases) {
    const std::string text = c.at("expr").get<std::string>();
    const Json& row = c.contains("row") ? c.at("row") : default_row;
    const std::string message = c.value("message", "");
    INFO("expression: " << text);

    if (c.value("parse_error", false)) {
      const std::string error = parse_error(text, functions);
      CHECK_FALSE(error.empty());
      if (!message.empty()) {
        INFO("error: " << error);
        CHECK(error.find(message) != std::string::npos);
      }
      ++checked;
      continue;
    }

    Expression e = Expression::parse(text, functions);
    if (c.contains("error")) {
      const std::string type = c.at("error").get<std::string>();
      try {
        const Json got = e.evaluate(row);
        FAIL_CHECK("expected " << type << ", got " << got.dump());
      } catch (const mktl::Error& error) {
        INFO("error: " << error.type() << ": " << error.what());
        CHECK(error.type() == type);
        if (!message.empty()) CHECK(std::string(error.what()).find(message) != std::string::npos);
      }
    } else {
      REQUIRE(c.contains("expect"));
      const Json& expect = c.at("expect");
      const Json got = e.evaluate(row);
      INFO("expected " << expect.dump() << ", got " << got.dump());
      CHECK(same(got, expect));
    }
    ++checked;
  }
  CHECK(checked == cases.size());
}

TEST_CASE("expr: matches() is true for TRUE only, false for FALSE and NULL", "[expr]") {
  const Json row = {{"qty", 150}, {"status", "filled"}, {"note", nullptr}, {"n", 1}};
  CHECK(Expression::parse("status == 'filled' AND qty >= 100").matches(row));
  CHECK_FALSE(Expression::parse("status == 'open'").matches(row));
  CHECK_FALSE(Expression::parse("note").matches(row));
  CHECK_THROWS_AS(Expression::parse("qty").matches(row), mktl::TypeError);
  CHECK_THROWS_AS(Expression::parse("status").matches(row), mktl::TypeError);
  CHECK_THROWS_AS(Expression::parse("nope == 1").matches(row), mktl::KeyError);
  // One row's error leaves the expression usable for the next.
  const Expression e = Expression::parse("10 / n > 1");
  CHECK(e.matches(row));
  CHECK_THROWS_AS(e.matches(Json{{"n", 0}}), mktl::ValueError);
  CHECK_FALSE(e.matches(Json{{"n", 20}}));
}

TEST_CASE("expr: fields() lists the fields read, sorted and unique, and text() the source", "[expr]") {
  const std::string text = "b + a > c AND UPPER(s) == 'X' OR a IS NULL OR Name IN (name, 'q') OR TRUE";
  const Expression e = Expression::parse(text);
  CHECK(e.fields() == std::vector<std::string>{"Name", "a", "b", "c", "name", "s"});
  CHECK(e.text() == text);
  CHECK(Expression::parse("1 + 2 * ROUND(3.5)").fields().empty());
  CHECK(Expression::parse("IF(x, y, COALESCE(z, x))").fields() == std::vector<std::string>{"x", "y", "z"});

  const Expression never_parsed;
  CHECK(never_parsed.fields().empty());
  CHECK(never_parsed.text().empty());
  CHECK_THROWS_AS(never_parsed.evaluate(Json::object()), mktl::ValueError);
  CHECK_THROWS_AS(never_parsed.matches(Json::object()), mktl::ValueError);
}

TEST_CASE("expr: nesting is bounded, the stack never overflows", "[expr]") {
  const auto depth = static_cast<std::size_t>(Expression::kMaxDepth);
  CHECK(Expression::parse(repeat("(", depth) + "a" + repeat(")", depth)).evaluate(Json{{"a", 5}}) == 5);
  CHECK(parse_error(repeat("(", depth + 1) + "a" + repeat(")", depth + 1)).find("nested more than") !=
        std::string::npos);
  CHECK(Expression::parse(repeat("NOT ", depth) + "TRUE").evaluate(Json()) == true);
  CHECK(Expression::parse(repeat("-", depth) + "3").evaluate(Json()) == 3);

  // Far past the limit: each is a ValueError, not a crash.
  CHECK(parse_error(repeat("(", 100000)).find("bytes long, the limit is") != std::string::npos);
  CHECK(parse_error(repeat("(", 60000)).find("nested more than 64 levels") != std::string::npos);
  CHECK(parse_error(repeat("NOT ", 16000) + "TRUE").find("nested more than") != std::string::npos);
  CHECK(parse_error(repeat("-", 60000) + "1").find("nested more than") != std::string::npos);
  CHECK(parse_error(repeat("UPPER(", 5000) + "s" + repeat(")", 5000)).find("nested") != std::string::npos);
  CHECK(parse_error(repeat("IF(TRUE, ", 3000) + "1" + repeat(", 2)", 3000)).find("nested") != std::string::npos);
  CHECK(parse_error(repeat("a IN (", 5000) + "1" + repeat(")", 5000)).find("nested") != std::string::npos);
  CHECK(parse_error(std::string(Expression::kMaxLength + 1, ' ')).find("the limit is") != std::string::npos);

  // Long flat chains are not nesting: they parse and evaluate iteratively.
  const Json row = {{"a", 1}, {"t", true}, {"s", "x"}};
  CHECK(Expression::parse("a" + repeat(" + a", 9999)).evaluate(row) == 10000);
  CHECK(Expression::parse("t" + repeat(" AND t", 9999)).evaluate(row) == true);
  CHECK(Expression::parse("FALSE" + repeat(" OR FALSE", 5000) + " OR t").evaluate(row) == true);
  CHECK(Expression::parse(repeat("- a * ", 10000) + "1").evaluate(row) == 1);
  CHECK(Expression::parse("s" + repeat(" + s", 4999)).evaluate(row) == std::string(5000, 'x'));
  CHECK(Expression::parse("a IN (" + repeat("0, ", 9999) + "1)").evaluate(row) == true);
}

TEST_CASE("expr: a user function's exception becomes a mktl::Error naming the function", "[expr]") {
  ExpressionFunctions functions;
  functions.add("fail_std", 0, 0, [](std::span<const Json>) -> Json { throw std::runtime_error("disk on fire"); });
  functions.add("fail_range", 0, 0, [](std::span<const Json>) -> Json { throw std::out_of_range("too far"); });
  functions.add("fail_value", 0, 0, [](std::span<const Json>) -> Json { throw mktl::ValueError("bad value"); });
  functions.add("fail_other", 0, 0, [](std::span<const Json>) -> Json { throw "a C string"; });
  functions.add("json_misuse", 1, 1, [](std::span<const Json> args) -> Json { return args[0].get<std::string>(); });

  auto error_of = [&](const std::string& text) -> std::pair<std::string, std::string> {
    try {
      Expression::parse(text, functions).evaluate(Json{{"n", 1}});
    } catch (const mktl::Error& e) {
      return {e.type(), e.what()};
    } catch (...) {
      return {"not a mktl::Error", ""};
    }
    return {"no error", ""};
  };
  CHECK(error_of("FAIL_STD()") == std::pair<std::string, std::string>{"RuntimeError", "FAIL_STD(): disk on fire"});
  CHECK(error_of("fail_range()") == std::pair<std::string, std::string>{"RuntimeError", "FAIL_RANGE(): too far"});
  CHECK(error_of("fail_value()") == std::pair<std::string, std::string>{"ValueError", "FAIL_VALUE(): bad value"});
  CHECK(error_of("fail_other()").first == "RuntimeError");
  // nlohmann's own exception (a std::exception) from inside the function.
  const auto misuse = error_of("JSON_MISUSE(n)");
  CHECK(misuse.first == "RuntimeError");
  CHECK(misuse.second.rfind("JSON_MISUSE(): ", 0) == 0);
  // The C++ type is kept too.
  CHECK_THROWS_AS(Expression::parse("fail_value()", functions).evaluate(Json::object()), mktl::ValueError);
  CHECK_THROWS_AS(Expression::parse("fail_std()", functions).matches(Json::object()), mktl::RuntimeError);
}

TEST_CASE("expr: the function registry", "[expr]") {
  auto one = [](std::span<const Json>) -> Json { return 1; };
  ExpressionFunctions functions;
  CHECK_THROWS_AS(functions.add("AND", 0, 0, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("if", 3, 3, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("null", 0, 0, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("1abc", 0, 0, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("a-b", 0, 0, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("", 0, 0, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("f", -1, 0, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("f", 2, 1, one), mktl::ValueError);
  CHECK_THROWS_AS(functions.add("f", 0, 0, nullptr), mktl::ValueError);
  CHECK(functions.find("upper") != nullptr);
  CHECK(functions.find("nope") == nullptr);

  // Replacing a built-in changes only this registry, and only expressions
  // parsed with it afterwards.
  const Expression before = Expression::parse("UPPER('a')", functions);
  ExpressionFunctions copy = functions;
  copy.add("upper", 1, 1, [](std::span<const Json>) -> Json { return "replaced"; });
  CHECK(Expression::parse("UPPER('a')", copy).evaluate(Json()) == "replaced");
  CHECK(Expression::parse("UPPER('a')", functions).evaluate(Json()) == "A");
  CHECK(Expression::parse("UPPER('a')").evaluate(Json()) == "A");
  CHECK(before.evaluate(Json()) == "A");

  // An expression keeps its functions alive after the registry is gone.
  Expression kept = [] {
    ExpressionFunctions local;
    local.add("triple", 1, 1, [](std::span<const Json> args) -> Json { return args[0].get<int>() * 3; });
    return Expression::parse("TRIPLE(x) + 1", local);
  }();
  CHECK(kept.evaluate(Json{{"x", 2}}) == 7);

  // A moved-from registry still works (with the built-ins only).
  ExpressionFunctions from;
  from.add("seven", 0, 0, [](std::span<const Json>) -> Json { return 7; });
  ExpressionFunctions to = std::move(from);
  CHECK(Expression::parse("SEVEN()", to).evaluate(Json()) == 7);
  CHECK(from.find("upper") != nullptr);  // NOLINT(bugprone-use-after-move): on purpose
  CHECK(from.find("seven") == nullptr);
  from.add("eight", 0, 0, [](std::span<const Json>) -> Json { return 8; });
  CHECK(Expression::parse("EIGHT() + ABS(-1)", from).evaluate(Json()) == 9);
  CHECK(parse_error("TRIPLE(1)").find("unknown function TRIPLE") != std::string::npos);
}

TEST_CASE("expr: values JSON text cannot hold (NaN, infinity, big integers)", "[expr]") {
  const Json row = {{"nan", std::numeric_limits<double>::quiet_NaN()},
                    {"inf", std::numeric_limits<double>::infinity()},
                    {"h", mktl::json::bigint("123456789012345678901234567890")},
                    {"h2", mktl::json::bigint("123456789012345678901234567890")}};
  auto eval = [&](const std::string& text) { return Expression::parse(text).evaluate(row); };
  CHECK(eval("nan == nan") == false);
  CHECK(eval("nan != nan") == true);
  CHECK(eval("nan < 1") == false);
  CHECK(eval("nan >= 1") == false);
  CHECK(std::isnan(eval("nan + 1").get<double>()));
  CHECK(eval("inf > 1e308") == true);
  CHECK(eval("-inf < 0") == true);
  CHECK(eval("1e308 * 10 == inf") == true);
  CHECK(std::isinf(eval("ROUND(inf, 2)").get<double>()));
  CHECK_THROWS_AS(eval("ROUND(nan)"), mktl::ValueError);
  CHECK_THROWS_AS(eval("ROUND(inf)"), mktl::ValueError);
  CHECK(eval("h == h2") == true);
  CHECK(eval("h == 1") == false);
  CHECK_THROWS_WITH(eval("h + 1"), Catch::Contains("big integer"));
}

TEST_CASE("expr: one expression evaluated by several threads at once", "[expr]") {
  ExpressionFunctions functions;
  std::atomic<int> calls{0};
  functions.add("tag", 1, 1, [&calls](std::span<const Json> args) -> Json {
    calls.fetch_add(1, std::memory_order_relaxed);
    return "#" + args[0].get<std::string>();
  });
  const Expression e = Expression::parse(
      "IF(qty > 100 AND side IN ('buy', 'sell'), TAG(UPPER(side)) + ':' + LOWER(sym), COALESCE(note, 'small')) + "
      "IF(ROUND(price * qty, 1) >= 0, '', '?')",
      functions);
  constexpr int kThreads = 4;
  constexpr int kRows = 3000;
  std::atomic<int> wrong{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRows; ++i) {
        const int qty = (i * 7 + t) % 200;
        const std::string side = (i % 2) ? "buy" : "sell";
        const std::string sym = "SYM" + std::to_string(t) + "_" + std::to_string(i);
        Json row = {{"qty", qty}, {"side", side}, {"sym", sym}, {"note", nullptr}, {"price", 1.5}};
        std::string expected = "small";
        if (qty > 100) {
          std::string lower = sym;
          for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          expected = "#" + std::string(side == "buy" ? "BUY" : "SELL") + ":" + lower;
        }
        try {
          if (e.evaluate(row) != expected) wrong.fetch_add(1);
          // A row error on one thread does not disturb the others.
          row.erase("side");
          e.evaluate(row);
          if (qty > 100) wrong.fetch_add(1);  // must have thrown: side is read
        } catch (const mktl::KeyError&) {
          errors.fetch_add(1);
        } catch (...) {
          wrong.fetch_add(1000000);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(wrong.load() == 0);
  int expected_errors = 0;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kRows; ++i) expected_errors += ((i * 7 + t) % 200) > 100 ? 1 : 0;
  CHECK(errors.load() == expected_errors);
  CHECK(calls.load() == expected_errors);
}

}  // namespace test_expr
