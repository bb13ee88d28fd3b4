// Fuzz target: the expression language (libmktl/src/expr/): parse, then
// evaluate and matches() against a row, as a collection's `where` and
// `publish` do.
//
// Input: the expression text; after a NUL byte, optionally a JSON row
// (otherwise the row of tests/unit/expr_cases.json).
//
// Checks, besides sanitizers: only mktl errors escape (parse: ValueError);
// fields() is sorted and unique; evaluating twice gives the same value.
#include "fuzz.hpp"

#include <mktl/expr.hpp>
#include <mktl/json.hpp>

#include <algorithm>

using mktl::Json;
using mktl::fuzz::expect;
using mktl::fuzz::guarded;

namespace {

const Json& default_row() {
  static const Json row = mktl::json::parse(
      R"({"a": 1, "b": 2, "c": 3, "i": 7, "n": -4, "f": 2.5, "z": 0, "zf": 0.0, "s": "Hello World", "e": "",
          "t": true, "fl": false, "nul": null, "tags": ["red", "blue", 3], "obj": {"k": 1}, "status": "filled",
          "qty": 150, "price": 10.25, "Name": "upper-N", "name": "lower-n", "_under_1": "u",
          "big": 9223372036854775807, "ubig": 18446744073709551615, "neg_big": -9223372036854775808,
          "nan": NaN, "inf": Infinity})");
  return row;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parts = mktl::fuzz::split(mktl::fuzz::text(data, size), '\0', 2);
  Json row = default_row();
  if (parts.size() == 2 && !guarded("json::parse", [&] { row = mktl::json::parse(parts[1]); })) return 0;

  mktl::Expression e;
  if (!guarded("Expression::parse", [&] { e = mktl::Expression::parse(parts[0]); })) return 0;
  const auto& fields = e.fields();
  expect(std::is_sorted(fields.begin(), fields.end()) && std::adjacent_find(fields.begin(), fields.end()) == fields.end(),
         "fields() is not sorted and unique");
  expect(e.text() == parts[0], "text() is not the parsed text");

  Json first, second;
  bool ok1 = guarded("evaluate", [&] { first = e.evaluate(row); });
  bool ok2 = guarded("evaluate", [&] { second = e.evaluate(row); });
  expect(ok1 == ok2, "evaluate succeeded once and failed once");
  if (ok1) expect(mktl::json::dump(first) == mktl::json::dump(second), "evaluate gave two values");
  bool m = false;
  bool matched = guarded("matches", [&] { m = e.matches(row); });
  if (ok1 && matched) expect(m == (first == Json(true)), "matches() disagrees with evaluate()");
  return 0;
}
