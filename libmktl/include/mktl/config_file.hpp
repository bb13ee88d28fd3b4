// Configuration files in JSON or TOML, and a daemon's catalog file that may
// carry mkio tables and services beside its items (see markd --catalog and
// --mkio). Pure functions apart from reading the file; thread-safe.
#pragma once

#include <mktl/json.hpp>

#include <string>
#include <string_view>

namespace mktl {

// Reads PATH: TOML when its name ends in ".toml", else JSON. TOML comes back
// in the JSON shape (tables as objects, integers as integers, floats as
// floats, dates and times as their TOML text), so the same configuration in
// either form gives the same value. Throws ConfigError naming the file (and
// for a syntax error the line and column).
Json load_config_file(const std::string& path);

// The keys an mkio file may have at its top level (tables, services, db_path,
// host, port, ...; and any key starting with '_', which mkio skips).
bool is_mkio_top_level_key(std::string_view key);

// What a daemon's catalog file holds.
struct DaemonConfig {
  Json items = Json::object();  // {key: description}
  Json collections;             // mkio-shaped {tables, services, ...}; null = none
};

// Reads a daemon's catalog file. It is a daemon configuration, split into
// `items` and the mkio document beside them, when it is TOML, or a JSON
// object with no member other than `items` and mkio top-level keys, and
// either a `services` or `tables` member that is an object or an `items`
// member whose members are all objects (not an item called "items", which
// would have a "type"). Anything else is an items object, returned as
// `items` as it is (normalise_items checks it).
DaemonConfig load_daemon_config(const std::string& path);

}  // namespace mktl
