// The built-in items every daemon has: _ALIAScat, clk, cpu, dev, drops, host,
// mem, pid and uuid (internal).
#pragma once

#include <mktl/daemon.hpp>

namespace mktl::detail {

// Adds the built-in items' descriptions to a normalised items object.
void add_builtin_descriptions(Json& items, const std::string& alias);
// Adds the built-in Item subclasses to a daemon (before setup()).
void add_builtin_items(Daemon& daemon);
// Publishes the catalog block as the value of _ALIAScat (after start()).
void publish_catalog_item(Daemon& daemon);

}  // namespace mktl::detail
