// Logging setup for executables. The library itself only logs through named
// spdlog loggers ("mktl.transport", "mktl.runtime", ...) and never installs
// sinks; an executable calls setup_logging() once.
#pragma once

#include <string>

namespace mktl {

// Level from `verbosity` (0 = warn, 1 = info, 2+ = debug) unless $MKTL_LOG
// names one (trace, debug, info, warn, error, off). Logs go to stderr.
void setup_logging(int verbosity = 0);

}  // namespace mktl
