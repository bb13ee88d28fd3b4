// Fuzz target: catalog files (model/catalog.cpp): an items object read with
// json::parse, normalised and checked by normalise_items, hashed by
// items_hash; then each item's type, and its initial value through
// validate_type and format_value as a daemon and a client would.
//
// Input: the items file's text (JSON).
//
// Checks, besides sanitizers: only mktl errors escape; normalise_items
// accepts its own output unchanged (same hash); format_value never throws.
#include "fuzz.hpp"

#include <mktl/catalog.hpp>
#include <mktl/format.hpp>
#include <mktl/json.hpp>

using mktl::Json;
using mktl::fuzz::expect;
using mktl::fuzz::guarded;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Json items;
  if (!guarded("json::parse", [&] { items = mktl::json::parse(mktl::fuzz::text(data, size)); })) return 0;
  Json normal;
  if (!guarded("normalise_items", [&] { normal = mktl::normalise_items(items, "fuzz.json"); })) return 0;
  Json hash = mktl::items_hash(normal);
  Json again;
  expect(guarded("normalise_items of its output", [&] { again = mktl::normalise_items(normal, "fuzz.json"); }),
         "normalise_items refuses its own output " + mktl::json::dump(normal));
  // Compared as text: a NaN the catalog carries through (in a field it does
  // not know) is never == itself.
  expect(mktl::json::dump(again) == mktl::json::dump(normal),
         "normalise_items is not idempotent: " + mktl::json::dump(normal));
  expect(mktl::items_hash(again) == hash, "items_hash differs for equal items");

  for (auto& entry : normal.items()) {
    const std::string& key = entry.key();  // not a structured binding: clang 14 cannot capture one
    const Json& description = entry.value();
    mktl::ItemType type{};
    expect(guarded("item_type", [&] { type = mktl::item_type(description); }),
           "item_type refuses a normalised description of " + key);
    (void)mktl::item_type_name(type);
    (void)mktl::display_units(description);
    auto initial = description.find("initial");
    if (initial == description.end()) continue;
    try {
      (void)mktl::format_value(description, *initial);
    } catch (const std::exception& e) {
      mktl::fuzz::fail(std::string("format_value threw: ") + e.what());
    }
    Json coerced;
    guarded("validate_type", [&] { coerced = mktl::validate_type(description, *initial); });
  }
  return 0;
}
