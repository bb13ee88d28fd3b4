// Fuzz target: a daemon's configuration files as markd reads them
// (mktl/config_file.hpp: load_config_file, load_daemon_config; JSON or TOML):
// the catalog file split into items and an mkio document, the items
// normalised (normalise_items), the mkio part parsed (collections::parse),
// as markd --catalog does; and the file as an --appconfig (JSON).
//
// Input: one mode byte (even: a .toml file, odd: a .json file), then the
// file's text.
//
// Checks, besides sanitizers: only mktl errors escape; a config that
// load_daemon_config splits has object items; load_config_file and
// load_daemon_config agree on whether the file reads.
#include "fuzz.hpp"

#include "collections/config.hpp"

#include <mktl/catalog.hpp>
#include <mktl/config_file.hpp>
#include <mktl/json.hpp>

using mktl::Json;
using mktl::fuzz::expect;
using mktl::fuzz::guarded;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool toml = data[0] % 2 == 0;
  const std::string path =
      mktl::fuzz::write_file(toml ? "daemon.toml" : "daemon.json", mktl::fuzz::text(data + 1, size - 1));

  Json document;
  bool read = guarded("load_config_file", [&] { document = mktl::load_config_file(path); });
  mktl::DaemonConfig config;
  bool split = guarded("load_daemon_config", [&] { config = mktl::load_daemon_config(path); });
  if (!read) {
    expect(!split, "load_daemon_config read a file load_config_file refuses");
    return 0;
  }
  if (!split) return 0;  // an `items` member that is not an object
  if (!config.collections.is_null()) expect(config.items.is_object(), "split config with non-object items");
  Json items;
  guarded("normalise_items", [&] { items = mktl::normalise_items(config.items, path); });
  if (!config.collections.is_null()) guarded("collections::parse", [&] { (void)mktl::collections::parse(config.collections, path); });
  if (!toml) guarded("load_json_file", [&] { (void)mktl::load_json_file(path); });
  return 0;
}
