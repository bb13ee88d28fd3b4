// Fuzz target: request frames through a daemon's whole request path
// (transport::Server's decoding and ACK, the runtime's dispatch, lookup,
// GET from the cache or the strand, SET validation and coercion, persistence,
// the REP's encoding), in-process through detail::Runtime::exchange, against
// items of every type. Input and checks: request_harness.hpp.
#include "request_harness.hpp"

namespace {

// Every item type, with the fields validation reads.
const char* const kCatalog = R"({
  "flag":     {"type": "boolean", "description": "a boolean"},
  "onoff":    {"type": "boolean", "enumerators": {"0": "Off", "1": "On"}},
  "temp":     {"type": "numeric", "units": "degC", "format": "%.2f", "min": -50, "max": 150},
  "count":    {"type": "numeric", "format": "%d", "min": 0},
  "angle":    {"type": "numeric", "units": {"": "rad", "formatted": "deg"}, "format": "%d:%02d:%04.1f"},
  "mode":     {"type": "enumerated", "enumerators": {"0": "Off", "1": "On", "2": "Auto"}},
  "bits":     {"type": "mask", "enumerators": {"0": "A", "1": "B", "5": "F", "None": "clear"}},
  "name":     {"type": "string", "initial": "fuzz"},
  "offsets":  {"type": "numeric array", "min": -10, "max": 10},
  "image":    {"type": "bulk"},
  "setpoint": {"type": "numeric", "persist": true, "min": 0, "max": 100, "initial": 20},
  "note":     {"type": "string", "persist": true},
  "readonly": {"type": "numeric", "settable": false, "initial": 3},
  "hidden":   {"type": "numeric", "gettable": false},
  "any":      {"description": "typeless"}
})";

mktl::fuzz::RequestTarget target(kCatalog);

}  // namespace

MKTL_FUZZ_REQUEST_ENTRY_POINTS(target)
