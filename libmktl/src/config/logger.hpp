// The library's named loggers ("mktl.transport", "mktl.runtime", ...).
//
// Every module logs through mktl::logger("mktl.<module>"). Until an
// executable calls setup_logging(), these loggers write warnings and errors
// (or the level $MKTL_LOG names) to stderr, so that errors are never silent;
// setup_logging() then sets the level from -v/-d. The library never touches
// spdlog's default logger or the sinks of loggers it did not create.
//
// Thread-safe. The lookup takes a lock: fetch the logger once (e.g. keep it in
// a member or a function-local static), not per message.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace mktl {

// The logger `name`, created on first use with the library's stderr sink.
std::shared_ptr<spdlog::logger> logger(const char* name);

}  // namespace mktl
