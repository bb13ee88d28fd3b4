// The client catalog cache, laid out as the reference's so that its clients
// and ours share it: $MKTL_HOME/client/cache/STORE/UUID.json, one catalog
// block per file, exactly as a daemon serves it in STORE._catalog (store,
// alias, uuid, time, hash, items, provenance). Clients write every block they
// learn; a daemon writes its own, so that a client on the same host finds the
// store from disk before any registry or broadcast is involved.
//
// Threading promise: the functions may be called from any thread and process
// at once. A file is replaced by a rename, so a reader sees the old block or
// the new one, never a part; the temporary file is written next to the store
// directories (client/cache/.STORE.UUID.*), never inside one, so that a reader
// listing a store directory never meets it, even one left by a crash.
#pragma once

#include <mktl/json.hpp>

#include <string>

namespace mktl::discovery {

// Replaces the cached copy of `block` (which must have a string "uuid") in
// the cache of `store` under `home`. The directory is made with mode 0775 and
// the file gets mode 0664 (as the reference makes them), so that the daemons
// and clients of one group share a cache. Throws mktl::Error on failure.
void write_cached_block(const std::string& home, const std::string& store, const Json& block);

// {uuid: block} of every readable block cached for `store` (an empty object if
// none). Files that are not JSON objects with a string "uuid" are skipped
// (logged at debug level).
Json read_cached_blocks(const std::string& home, const std::string& store);

}  // namespace mktl::discovery
