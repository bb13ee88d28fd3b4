// Catalogs: an items file ({key: description}) and the catalog blocks built
// from it. Pure functions, thread-safe.
#pragma once

#include <mktl/json.hpp>

#include <string>
#include <string_view>

namespace mktl {

// Reads and parses a JSON file; throws ConfigError naming the file on I/O or
// syntax errors.
Json load_json_file(const std::string& path);

// Normalises an items object as the reference does: lower-case keys, string
// enumerator keys, default boolean enumerators {"0":"False","1":"True"}, and
// checks every field (type names, enumerators, persist/settable/gettable are
// booleans, min/max numbers, units string or object, no leading '_' in keys).
// `source` names the file in errors. Throws ConfigError with the JSON pointer
// of the bad field and what was expected.
Json normalise_items(const Json& items, const std::string& source = {});

// A stable 128-bit hash of an items object, as a JSON big integer (or uint64
// when it happens to fit).
Json items_hash(const Json& items);

// The per-(store, alias) UUID kept at $MKTL_HOME/daemon/store/<store>/<alias>.uuid,
// created on first use.
std::string daemon_uuid(const std::string& mktl_home, const std::string& store, const std::string& alias);

// $MKTL_HOME, or $HOME/.mKTL.
std::string mktl_home();

// A new random (version 4) UUID in canonical text form.
std::string random_uuid();

}  // namespace mktl
