// A daemon's announcement of its catalog block to the registries around it.
#pragma once

#include "discovery/udp.hpp"

#include <mktl/json.hpp>

namespace mktl::discovery {

// Finds registries (UDP on config.registry_port, broadcast plus config.hosts,
// waiting `timeout_s` for answers) and sends each `SET _catalog` with
// {"value": block, "override": true} (override also inside the block, where
// the reference's registry looks for it; both omitted without override).
// A registry that rejects the block makes this throw mktl::Error with the
// registry's type and a text naming that registry; one that does not answer
// in time is skipped with a warning. No registry at all is fine.
// Returns the number of registries that accepted the block.
//
// Threading promise: blocking; call it from any thread but a server's I/O thread.
int announce(const Json& block, const Config& config, bool override, double timeout_s);

}  // namespace mktl::discovery
