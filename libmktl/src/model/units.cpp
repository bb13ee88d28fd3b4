#include "model/units.hpp"
#include "common/text.hpp"

#include <array>
#include <cmath>
#include <string>

namespace mktl::units {

namespace {
using mktl::detail::ascii_lower;

enum Dimension { angle, length, time, temperature, pressure, frequency };

struct Unit {
  std::string_view name;
  Dimension dimension;
  double factor;        // base = value * factor + offset
  double offset = 0.0;
};

constexpr double kPi = 3.14159265358979323846;

// Names follow pint's spelling where the reference's catalogs use pint.
const std::array kUnits = {
    Unit{"rad", angle, 1.0}, Unit{"radian", angle, 1.0}, Unit{"radians", angle, 1.0},
    Unit{"mrad", angle, 1e-3}, Unit{"urad", angle, 1e-6},
    Unit{"deg", angle, kPi / 180}, Unit{"degree", angle, kPi / 180}, Unit{"degrees", angle, kPi / 180},
    Unit{"arcmin", angle, kPi / 10800}, Unit{"arcminute", angle, kPi / 10800}, Unit{"arcminutes", angle, kPi / 10800},
    Unit{"arcsec", angle, kPi / 648000}, Unit{"arcsecond", angle, kPi / 648000}, Unit{"arcseconds", angle, kPi / 648000},
    Unit{"mas", angle, kPi / 648000000},
    Unit{"m", length, 1.0}, Unit{"meter", length, 1.0}, Unit{"meters", length, 1.0},
    Unit{"metre", length, 1.0}, Unit{"metres", length, 1.0}, Unit{"km", length, 1e3},
    Unit{"cm", length, 1e-2}, Unit{"mm", length, 1e-3}, Unit{"um", length, 1e-6},
    Unit{"micron", length, 1e-6}, Unit{"microns", length, 1e-6}, Unit{"nm", length, 1e-9},
    Unit{"angstrom", length, 1e-10},
    Unit{"s", time, 1.0}, Unit{"sec", time, 1.0}, Unit{"second", time, 1.0}, Unit{"seconds", time, 1.0},
    Unit{"ms", time, 1e-3}, Unit{"millisecond", time, 1e-3}, Unit{"milliseconds", time, 1e-3},
    Unit{"us", time, 1e-6}, Unit{"microsecond", time, 1e-6}, Unit{"microseconds", time, 1e-6},
    Unit{"ns", time, 1e-9}, Unit{"min", time, 60.0}, Unit{"minute", time, 60.0}, Unit{"minutes", time, 60.0},
    Unit{"h", time, 3600.0}, Unit{"hr", time, 3600.0}, Unit{"hour", time, 3600.0}, Unit{"hours", time, 3600.0},
    Unit{"day", time, 86400.0}, Unit{"days", time, 86400.0},
    Unit{"K", temperature, 1.0}, Unit{"kelvin", temperature, 1.0},
    Unit{"degC", temperature, 1.0, 273.15}, Unit{"celsius", temperature, 1.0, 273.15},
    Unit{"degF", temperature, 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0},
    Unit{"fahrenheit", temperature, 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0},
    Unit{"Pa", pressure, 1.0}, Unit{"hPa", pressure, 100.0}, Unit{"kPa", pressure, 1e3},
    Unit{"MPa", pressure, 1e6}, Unit{"bar", pressure, 1e5}, Unit{"mbar", pressure, 100.0},
    Unit{"torr", pressure, 101325.0 / 760.0}, Unit{"Torr", pressure, 101325.0 / 760.0},
    Unit{"mTorr", pressure, 101325.0 / 760000.0}, Unit{"atm", pressure, 101325.0},
    Unit{"psi", pressure, 6894.757293168},
    Unit{"Hz", frequency, 1.0}, Unit{"kHz", frequency, 1e3}, Unit{"MHz", frequency, 1e6},
    Unit{"GHz", frequency, 1e9},
};

const Unit* find(std::string_view name) {
  for (const auto& unit : kUnits)
    if (unit.name == name) return &unit;
  // Case matters for prefixes (mK vs MK); fall back to a case-blind match
  // only when it is unambiguous.
  const Unit* found = nullptr;
  const std::string wanted = ascii_lower(name);
  for (const auto& unit : kUnits) {
    if (ascii_lower(unit.name) != wanted) continue;
    if (found && (found->dimension != unit.dimension || found->factor != unit.factor)) return nullptr;
    found = &unit;
  }
  return found;
}

}  // namespace

std::optional<double> convert(double value, std::string_view from, std::string_view to) {
  if (from == to) return value;
  const Unit* a = find(from);
  const Unit* b = find(to);
  if (!a || !b || a->dimension != b->dimension) return std::nullopt;
  const double base = value * a->factor + a->offset;
  return (base - b->offset) / b->factor;
}

bool is_sexagesimal_degrees(std::string_view name) {
  const auto n = ascii_lower(name);
  return n == "d" || n == "deg" || n == "degs" || n == "degree" || n == "degrees";
}

bool is_sexagesimal_hours(std::string_view name) {
  const auto n = ascii_lower(name);
  return n == "h" || n == "hour" || n == "hours";
}

}  // namespace mktl::units
