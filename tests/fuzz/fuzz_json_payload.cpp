// Fuzz target: the wire's JSON (json::parse and dump: NaN/Infinity, big
// integers), payloads (protocol::parse_payload, read_reading and
// reading_from_payload) and type coercion (validate_type, format_value,
// parse_formatted) for every item type.
//
// Input: one selector byte (which item description), then the text: read as
// a JSON text, as a payload, and as what a user typed for the item.
//
// Checks, besides sanitizers: only mktl errors escape; dump(parse(x)) is a
// fixed point; read_reading agrees with reading_from_payload(parse_payload);
// validate_type accepts its own result unchanged; format_value never throws.
#include "fuzz.hpp"

#include "protocol/codec.hpp"

#include <mktl/format.hpp>
#include <mktl/json.hpp>
#include <mktl/reading.hpp>

namespace {

using mktl::Json;
namespace protocol = mktl::protocol;
using mktl::fuzz::expect;
using mktl::fuzz::guarded;

const std::vector<Json>& descriptions() {
  static const std::vector<Json> all = [] {
    std::vector<Json> d;
    for (const char* text : {
             R"({})",
             R"({"type": "boolean", "enumerators": {"0": "False", "1": "True"}})",
             R"({"type": "boolean", "enumerators": {"0": "Off", "1": "On"}})",
             R"({"type": "numeric", "format": "%.2f", "min": -50, "max": 150})",
             R"({"type": "numeric", "format": "%d"})",
             R"({"type": "numeric", "format": "%x", "min": 0})",
             R"({"type": "numeric", "units": {"": "rad", "formatted": "deg"}, "format": "%d:%02d:%04.1f"})",
             R"({"type": "numeric", "units": {"": "rad", "formatted": "h"}, "format": "%+d %02d %05.2f"})",
             R"({"type": "enumerated", "enumerators": {"0": "Off", "1": "On", "2": "Auto", "-1": "Unknown"}})",
             R"({"type": "mask", "enumerators": {"0": "A", "1": "B", "5": "F", "63": "Top", "None": "clear"}})",
             R"({"type": "mask", "enumerators": {"0": "A", "2": "C"}})",
             R"({"type": "string", "format": "%s"})",
             R"({"type": "numeric array", "min": -10, "max": 10, "format": "%.1f"})",
             R"({"type": "numeric array"})",
             R"({"type": "bulk"})",
             R"({"type": "numeric", "format": "%e", "units": "s"})",
         })
      d.push_back(mktl::json::parse(text));
    return d;
  }();
  return all;
}

std::string dump_reading(const mktl::Reading& r) {
  return mktl::json::dump(r.value) + " @" + std::to_string(r.time);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Json& description = descriptions()[data[0] % descriptions().size()];
  const std::string_view text = mktl::fuzz::text(data + 1, size - 1);

  // JSON text.
  Json value;
  bool parsed = guarded("json::parse", [&] { value = mktl::json::parse(text); });
  if (parsed) {
    std::string once = mktl::json::dump(value);
    Json again;
    expect(guarded("json::parse of dump", [&] { again = mktl::json::parse(once); }),
           "json::dump wrote what json::parse refuses: " + once);
    expect(mktl::json::dump(again) == once, "dump(parse(dump(x))) != dump(x): " + once);
  }

  // Payload, two ways.
  Json payload;
  std::optional<mktl::Reading> slow, fast;
  bool payload_ok = guarded("parse_payload", [&] {
    payload = protocol::parse_payload(text);
    slow = protocol::reading_from_payload(payload, std::nullopt, 1.0);
  });
  bool fast_ok = guarded("read_reading", [&] {
    Json error;
    fast = protocol::read_reading(text, std::nullopt, 1.0, &error);
  });
  expect(payload_ok == fast_ok, "read_reading and parse_payload disagree on whether the payload is good");
  if (payload_ok && slow && fast)
    expect(dump_reading(*slow) == dump_reading(*fast),
           "read_reading " + dump_reading(*fast) + " != reading_from_payload " + dump_reading(*slow));

  // Coercion of the value, then of its own result.
  for (const Json* v : {parsed ? &value : nullptr, slow ? &slow->value : nullptr}) {
    if (!v) continue;
    Json coerced;
    if (guarded("validate_type", [&] { coerced = mktl::validate_type(description, *v); })) {
      Json twice;
      expect(guarded("validate_type of its result", [&] { twice = mktl::validate_type(description, coerced); }),
             "validate_type refuses its own result " + mktl::json::dump(coerced));
      expect(mktl::json::dump(twice) == mktl::json::dump(coerced), "validate_type is not idempotent on " +
                                                                       mktl::json::dump(*v));
    }
    try {
      (void)mktl::format_value(description, *v);
    } catch (const std::exception& e) {
      mktl::fuzz::fail(std::string("format_value threw: ") + e.what());
    }
  }

  // What a user typed.
  Json typed;
  if (guarded("parse_formatted", [&] { typed = mktl::parse_formatted(description, text); }))
    (void)mktl::format_value(description, typed);
  return 0;
}
