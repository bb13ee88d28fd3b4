// A small table of linear (and affine, for temperatures) unit conversions for
// the units catalogs use, so that `units: {"": "rad", "formatted": "deg"}`
// shows degrees without a units library. Internal to libmktl; thread-safe.
#pragma once

#include <optional>
#include <string_view>

namespace mktl::units {

// `value` in units `from` expressed in units `to`; nullopt when either name is
// unknown or their dimensions differ. Equal names always convert (unchanged).
std::optional<double> convert(double value, std::string_view from, std::string_view to);

// True for the names the reference's sexagesimal formatting treats as degrees
// (d, deg, degs, degree, degrees) and as hours (h, hour, hours), any case.
bool is_sexagesimal_degrees(std::string_view name);
bool is_sexagesimal_hours(std::string_view name);

}  // namespace mktl::units
