// Fuzz target: collection configurations (mkio-shaped tables and services,
// libmktl/src/collections/config.cpp and toml.cpp), as markd --mkio reads
// them: TOML through collections::load (toml++, the JSON shape, the line map
// errors point into) or JSON through json::parse and collections::parse;
// then the catalog description of every record and collection item.
//
// Input: one mode byte (even: TOML, odd: JSON), then the file's text.
//
// Checks, besides sanitizers: only mktl errors escape; a TOML file gives
// the same Config as its JSON shape; describe() of a parsed config never
// throws.
#include "fuzz.hpp"

#include "collections/config.hpp"

#include <mktl/json.hpp>

using mktl::Json;
using mktl::fuzz::expect;
using mktl::fuzz::guarded;
namespace collections = mktl::collections;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool toml = data[0] % 2 == 0;
  const std::string_view text = mktl::fuzz::text(data + 1, size - 1);

  collections::Config config;
  if (toml) {
    const std::string path = mktl::fuzz::write_file("collections.toml", text);
    if (!guarded("collections::load", [&] { config = collections::load(path); })) return 0;
    // The same document as JSON parses to the same Config.
    Json shape;
    expect(guarded("toml_to_json", [&] { shape = collections::toml_to_json(std::string(text), path); }),
           "toml_to_json refuses a file load() took");
    collections::Config again;
    expect(guarded("collections::parse", [&] { again = collections::parse(shape, path); }),
           "parse() refuses the JSON shape of a TOML file load() took");
    expect(again == config, "a TOML file and its JSON shape give different configs");
  } else {
    Json document;
    if (!guarded("json::parse", [&] { document = mktl::json::parse(text); })) return 0;
    if (!guarded("collections::parse", [&] { config = collections::parse(document, "fuzz.json"); })) return 0;
  }
  try {
    for (auto& t : config.transactions)
      for (auto& set : t.op_sets) (void)collections::describe(config, t, set);
    for (auto& c : config.collections) (void)collections::describe(config, c);
  } catch (const std::exception& e) {
    mktl::fuzz::fail(std::string("describe threw: ") + e.what());
  }
  return 0;
}
