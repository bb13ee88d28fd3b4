// Item types, SET coercion and human formatting. Behaviour and error texts
// follow the reference's Item.validate_type() and Catalog.to_format() /
// from_format(), so that a Python client sees the same exceptions; where the
// reference crashes or misbehaves we say so next to the fix.
#include <mktl/format.hpp>
#include "common/text.hpp"

#include <mktl/error.hpp>

#include "model/printf.hpp"
#include "model/python.hpp"
#include "model/units.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

namespace mktl {

namespace {
using mktl::detail::ascii_lower;

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

const Json& field(const Json& description, const char* name) {
  static const Json null;
  if (!description.is_object()) return null;
  auto it = description.find(name);
  return it == description.end() ? null : *it;
}

const Json& default_boolean_enumerators() {
  static const Json enumerators = {{"0", "False"}, {"1", "True"}};
  return enumerators;
}

// The enumerators of an item; booleans fall back to False/True as the
// reference's catalog normalisation fills them in. Points into the
// description when it is complete (the normalised, hot-path case), else into
// `storage`.
const Json& enumerators_of(const Json& description, ItemType type, Json& storage) {
  const Json& given = field(description, "enumerators");
  if (type == ItemType::boolean) {
    if (given.is_object() && given.contains("0") && given.contains("1")) return given;
    storage = default_boolean_enumerators();
    if (given.is_object())
      for (const auto& [k, v] : given.items()) storage[k] = v;
    return storage;
  }
  if (given.is_object()) return given;
  storage = Json::object();
  return storage;
}

std::string name_text(const Json& name) { return name.is_string() ? name.get<std::string>() : python::str(name); }

// A finite number's double, for range checks and unit conversion.
double as_double(const Json& number) {
  if (json::is_bigint(number)) return std::stod(json::bigint_digits(number));
  return number.get<double>();
}

[[noreturn]] void throw_int_type_error(const Json& value) {
  throw TypeError(std::string("int() argument must be a string, a bytes-like object or a real number, not '") +
                  python::type_name(value) + "'");
}

// ---- numeric -------------------------------------------------------------------

// Python's `int(value)`, falling back to `float(value)`, as _validate_numeric does.
Json coerce_number(const Json& value) {
  if (value.is_number() || json::is_bigint(value)) return value;
  if (value.is_boolean()) return Json(value.get<bool>() ? 1 : 0);  // int(True) == 1
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (auto i = python::parse_int(text)) return *i;
    if (auto d = python::parse_float(text)) return Json(*d);
    throw ValueError("could not convert string to float: " + python::repr(text));
  }
  throw TypeError(std::string("float() argument must be a string or a real number, not '") + python::type_name(value) +
                  "'");
}

// Beyond the reference: optional `min`/`max` in the description.
void check_range(const Json& description, const Json& number) {
  const Json& min = field(description, "min");
  const Json& max = field(description, "max");
  const bool has_min = min.is_number() && !min.is_boolean();
  const bool has_max = max.is_number() && !max.is_boolean();
  if (!has_min && !has_max) return;
  const double x = as_double(number);
  if (std::isnan(x))
    throw ValueError("value nan is not a number within the limits of this item");
  // Compare integers exactly when both sides are integers.
  auto below = [&](const Json& limit) {
    if (number.is_number_integer() && !number.is_number_unsigned() && limit.is_number_integer() && !limit.is_number_unsigned())
      return number.get<std::int64_t>() < limit.get<std::int64_t>();
    return static_cast<long double>(x) < static_cast<long double>(limit.get<double>());
  };
  auto above = [&](const Json& limit) {
    if (number.is_number_integer() && !number.is_number_unsigned() && limit.is_number_integer() && !limit.is_number_unsigned())
      return number.get<std::int64_t>() > limit.get<std::int64_t>();
    return static_cast<long double>(x) > static_cast<long double>(limit.get<double>());
  };
  if (has_min && below(min))
    throw ValueError("value " + python::str(number) + " is below the minimum " + python::str(min) + " for this item");
  if (has_max && above(max))
    throw ValueError("value " + python::str(number) + " is above the maximum " + python::str(max) + " for this item");
}

Json validate_numeric(const Json& description, const Json& value) {
  Json number = coerce_number(value);
  check_range(description, number);
  return number;
}

Json validate_numeric_array(const Json& description, const Json& value) {
  if (!value.is_array()) {
    if (value.is_string() || value.is_object())
      throw TypeError(std::string("a numeric array value must be a list, not '") + python::type_name(value) + "'");
    throw TypeError(std::string("'") + python::type_name(value) + "' object is not iterable");
  }
  Json out = Json::array();
  for (const auto& element : value) out.push_back(validate_numeric(description, element));
  return out;
}

// ---- enumerated and boolean -----------------------------------------------------

// The enumerator key of a value, or nullopt; `shown` gets str(value) as the
// reference's error message spells it.
std::optional<std::string> enumerator_key(const Json& enumerators, const Json& value, std::string& shown) {
  const Json plain = value.is_boolean() ? Json(value.get<bool>() ? 1 : 0) : value;
  shown = python::str(plain);
  if (enumerators.contains(shown)) return shown;
  if (!plain.is_string()) return std::nullopt;
  // Beyond the reference: a name in any case, or an integer spelled loosely
  // ("01", " 1 "), identifies the enumerator too.
  const std::string wanted = ascii_lower(trim(shown));
  for (const auto& [k, name] : enumerators.items())
    if (name.is_string() && ascii_lower(name.get_ref<const std::string&>()) == wanted) return k;
  if (auto i = python::parse_int(shown)) {
    const std::string canonical = python::str(*i);
    if (enumerators.contains(canonical)) return canonical;
  }
  return std::nullopt;
}

Json validate_enumerated(const Json& description, ItemType type, const Json& value) {
  // The reference formats None as '' and then fails on int(None).
  if (value.is_null()) throw_int_type_error(value);
  Json storage;
  const Json& enumerators = enumerators_of(description, type, storage);
  std::string shown;
  auto key = enumerator_key(enumerators, value, shown);
  if (!key) throw KeyError::python("invalid enumerator: " + python::repr(shown));
  auto number = python::parse_int(*key);
  if (!number) throw KeyError::python("invalid enumerator: " + python::repr(shown));
  if (type == ItemType::boolean) return Json(!(number->is_number_integer() && number->get<std::int64_t>() == 0));
  return *number;
}

// ---- mask -----------------------------------------------------------------------

// Python's int(value) for a mask value. Sets `big` for integers beyond 64 bits.
std::uint64_t mask_integer(const Json& value, bool& negative, bool& big) {
  negative = false;
  big = false;
  if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer()) {
    const auto i = value.get<std::int64_t>();
    negative = i < 0;
    return static_cast<std::uint64_t>(i);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isnan(d)) throw ValueError("cannot convert float NaN to integer");
    if (std::isinf(d)) throw Error("OverflowError", "cannot convert float infinity to integer");
    const double t = std::trunc(d);  // int(1.7) == 1
    negative = t < 0;
    // Beyond 64 bits: 2^64 and up, or below int64's least (-2^63), where
    // the cast to int64 below would overflow.
    if (negative ? t < -9223372036854775808.0 : t >= 18446744073709551616.0) {
      big = true;
      return 0;
    }
    return negative ? static_cast<std::uint64_t>(static_cast<std::int64_t>(t)) : static_cast<std::uint64_t>(t);
  }
  if (value.is_string()) {
    auto i = python::parse_int(value.get_ref<const std::string&>());
    if (!i) throw ValueError("invalid literal for int() with base 10: " + python::repr(value.get_ref<const std::string&>()));
    return mask_integer(*i, negative, big);
  }
  if (json::is_bigint(value)) {
    negative = json::bigint_digits(value).front() == '-';
    big = true;
    return 0;
  }
  throw_int_type_error(value);
}

// Known bits (keys other than "None") as (bit, name), in bit order.
std::vector<std::pair<int, std::string>> mask_bits(const Json& enumerators) {
  std::vector<std::pair<int, std::string>> bits;
  for (const auto& [k, name] : enumerators.items()) {
    if (k == "None") continue;
    auto i = python::parse_int(k);
    if (!i || !i->is_number_integer()) continue;
    const auto bit = i->get<std::int64_t>();
    if (bit < 0 || bit > 63) continue;
    bits.emplace_back(static_cast<int>(bit), name_text(name));
  }
  std::sort(bits.begin(), bits.end());
  return bits;
}

Json mask_json(std::uint64_t bits) {
  if (bits <= static_cast<std::uint64_t>(INT64_MAX)) return Json(static_cast<std::int64_t>(bits));
  return Json(bits);
}

// The text of Python's int(value), every digit, as a mask error quotes it;
// `bits` and `negative` are mask_integer's result for the values that fit.
std::string mask_integer_text(const Json& value, std::uint64_t bits, bool negative) {
  if (json::is_bigint(value)) return json::bigint_digits(value);
  if (value.is_string()) return python::str(*python::parse_int(value.get_ref<const std::string&>()));
  if (value.is_number_float()) {  // a double up to 1.8e308 prints exactly
    const double t = std::trunc(value.get<double>());
    std::string text(static_cast<std::size_t>(std::snprintf(nullptr, 0, "%.0f", t)) + 1, '\0');
    text.resize(static_cast<std::size_t>(std::snprintf(text.data(), text.size(), "%.0f", t)));
    return text;
  }
  return negative ? std::to_string(static_cast<std::int64_t>(bits)) : std::to_string(bits);
}

Json validate_mask(const Json& description, const Json& value) {
  bool negative = false, big = false;
  const std::uint64_t bits = mask_integer(value, negative, big);
  std::uint64_t known = 0;
  for (const auto& [bit, name] : mask_bits(field(description, "enumerators"))) known |= std::uint64_t{1} << bit;
  if (negative || big || (bits & ~known) != 0)
    throw KeyError::python("value contains unknown active bits: " + mask_integer_text(value, bits, negative));
  return mask_json(bits);
}

// ---- sexagesimal ----------------------------------------------------------------

struct AngleUnits {
  std::string wire;       // units[""]
  bool hours = false;     // formatted in hours rather than degrees
};

// nullopt when the item has no {"": ..., "formatted": ...} units; throws
// ValueError for formatted units that are neither degrees nor hours.
std::optional<AngleUnits> angle_units(const Json& description) {
  const Json& units = field(description, "units");
  if (!units.is_object()) return std::nullopt;
  auto wire = units.find("");
  auto formatted = units.find("formatted");
  if (wire == units.end() || formatted == units.end() || !wire->is_string() || !formatted->is_string())
    return std::nullopt;
  const auto& name = formatted->get_ref<const std::string&>();
  AngleUnits out{wire->get<std::string>(), false};
  if (units::is_sexagesimal_hours(name)) out.hours = true;
  else if (!units::is_sexagesimal_degrees(name)) throw ValueError("unrecognized target units: " + ascii_lower(name));
  return out;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const auto pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

// Formats a value in wire units as d:m:s (or h:m:s). Rounds once, on the last
// field, and carries into the others, so 59.96 s at one decimal becomes the
// next minute rather than "60.0"; a negative angle keeps its sign even when
// the leading field is zero (-0:30:00.0).
std::optional<std::string> format_sexagesimal(const Json& description, double value, const std::string& format) {
  const auto angle = angle_units(description);
  if (!angle) return python::str(Json(value));  // the reference shows str(value)
  auto degrees = units::convert(value, angle->wire, "deg");
  if (!degrees || !std::isfinite(*degrees)) return std::nullopt;
  const double x = angle->hours ? *degrees * 24.0 / 360.0 : *degrees;

  std::vector<pyformat::Spec> specs;
  for (auto part : split(format, ':')) {
    auto spec = pyformat::parse(part);
    if (!spec) return std::nullopt;
    specs.push_back(std::move(*spec));
  }
  const auto& last = specs.back();
  int precision = last.is_integer() ? 0 : (last.precision < 0 ? 6 : last.precision);
  precision = std::min(precision, 9);
  std::uint64_t scale = 1;
  for (int i = 0; i < precision; ++i) scale *= 10;

  const bool negative = x < 0;
  long double total = std::fabs(static_cast<long double>(x)) * static_cast<long double>(scale);
  for (std::size_t i = 1; i < specs.size(); ++i) total *= 60;
  if (total > 9e18L) return std::nullopt;
  const auto n = static_cast<std::uint64_t>(std::llround(total));

  std::vector<Json> values(specs.size());
  const std::uint64_t last_units = n % (60 * scale);
  std::uint64_t rest = n / (60 * scale);
  if (specs.size() == 1) {
    values[0] = Json(static_cast<double>(n) / static_cast<double>(scale));
  } else {
    values.back() = last.is_integer() ? Json(static_cast<std::int64_t>(last_units / scale))
                                      : Json(static_cast<double>(last_units) / static_cast<double>(scale));
    for (std::size_t i = specs.size() - 2; i > 0; --i) {
      values[i] = Json(static_cast<std::int64_t>(rest % 60));
      rest /= 60;
    }
    values[0] = Json(static_cast<std::int64_t>(rest));
  }

  std::string out;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto text = pyformat::apply(specs[i], values[i]);
    if (!text) return std::nullopt;
    if (i == 0 && negative && n != 0) text = "-" + std::string(trim(*text));
    if (i > 0) out += ':';
    out += *text;
  }
  return out;
}

// Inverse of format_sexagesimal: "-12:30:00" -> the angle in wire units. The
// sign is read from the text, so "-0:30" is negative (the reference loses it).
Json parse_sexagesimal(const Json& description, std::string_view text) {
  text = trim(text);
  const bool negative = !text.empty() && text.front() == '-';
  double result = 0;
  double weight = 1;
  for (auto part : split(text, ':')) {
    auto f = python::parse_float(part);
    if (!f) throw ValueError("could not convert string to float: " + python::repr(trim(part)));
    result += std::fabs(*f) / weight;
    weight *= 60;
  }
  if (negative) result = -result;
  const auto angle = angle_units(description);
  if (!angle) return Json(result);
  const double degrees = angle->hours ? result * 360.0 / 24.0 : result;
  auto wire = units::convert(degrees, "deg", angle->wire);
  if (!wire) throw ValueError("cannot convert degrees to " + python::repr(angle->wire));
  return Json(*wire);
}

// ---- units ----------------------------------------------------------------------

struct UnitPair {
  std::string wire;
  std::string formatted;
};

// The wire and display units when they differ and we know how to convert.
std::optional<UnitPair> conversion(const Json& description) {
  const Json& units = field(description, "units");
  if (!units.is_object()) return std::nullopt;
  auto wire = units.find("");
  auto formatted = units.find("formatted");
  if (wire == units.end() || formatted == units.end() || !wire->is_string() || !formatted->is_string())
    return std::nullopt;
  UnitPair pair{wire->get<std::string>(), formatted->get<std::string>()};
  if (pair.wire == pair.formatted || !units::convert(1.0, pair.wire, pair.formatted)) return std::nullopt;
  return pair;
}

std::string number_format(const Json& description) {
  const Json& format = field(description, "format");
  return format.is_string() ? format.get<std::string>() : std::string("%s");
}

std::optional<std::string> format_number(const Json& description, const Json& value) {
  Json number = coerce_number(value);
  const std::string format = number_format(description);
  if (format.find(':') != std::string::npos) return format_sexagesimal(description, as_double(number), format);
  if (auto pair = conversion(description))
    number = Json(*units::convert(as_double(number), pair->wire, pair->formatted));
  auto spec = pyformat::parse(format);
  if (!spec) return std::nullopt;
  return pyformat::apply(*spec, number);
}

std::string format_any(const Json& description, ItemType type, const Json& value) {
  switch (type) {
    case ItemType::boolean:
    case ItemType::enumerated: {
      if (value.is_null()) return "";
      Json storage;
      const Json& enumerators = enumerators_of(description, type, storage);
      std::string shown;
      if (auto key = enumerator_key(enumerators, value, shown)) return name_text(enumerators.at(*key));
      return python::str(value);
    }
    case ItemType::mask: {
      if (value.is_null()) return "";
      const Json& enumerators = field(description, "enumerators");
      const std::uint64_t bits = validate_mask(description, value).get<std::uint64_t>();
      if (bits == 0) {
        // The all-clear value is the "None" enumerator, or nothing.
        if (enumerators.is_object() && enumerators.contains("None")) return name_text(enumerators.at("None"));
        return "";
      }
      std::string out;
      for (const auto& [bit, name] : mask_bits(enumerators)) {
        if (!(bits & (std::uint64_t{1} << bit))) continue;
        if (!out.empty()) out += ", ";
        out += name;
      }
      return out;
    }
    case ItemType::numeric: {
      if (value.is_null()) return "";
      if (auto text = format_number(description, value)) return *text;
      return python::str(value);
    }
    case ItemType::numeric_array: {
      if (value.is_null()) return "";
      // The reference shows str(list); with a format we format each element.
      if (!value.is_array() || !field(description, "format").is_string()) return python::str(value);
      std::string out = "[";
      for (const auto& element : value) {
        if (out.size() > 1) out += ", ";
        auto text = format_number(description, element);
        out += text ? *text : python::str(element);
      }
      return out + "]";
    }
    case ItemType::record:
    case ItemType::collection:
      if (value.is_null()) return "";
      return json::dump(value);
    case ItemType::typeless:
    case ItemType::string:
    case ItemType::bulk: break;
  }
  return python::str(value);
}

}  // namespace

// ---- public API -----------------------------------------------------------------

ItemType item_type(const Json& description) {
  const Json& type = field(description, "type");
  if (type.is_null()) return ItemType::typeless;
  if (!type.is_string())
    throw ValueError(std::string("item type must be a string, not '") + python::type_name(type) + "'");
  const std::string name = ascii_lower(type.get_ref<const std::string&>());
  if (name.empty() || name == "typeless") return ItemType::typeless;
  if (name == "boolean") return ItemType::boolean;
  if (name == "enumerated") return ItemType::enumerated;
  if (name == "mask") return ItemType::mask;
  if (name == "numeric") return ItemType::numeric;
  if (name == "numeric array") return ItemType::numeric_array;
  if (name == "string") return ItemType::string;
  if (name == "bulk") return ItemType::bulk;
  if (name == "record") return ItemType::record;
  if (name == "collection") return ItemType::collection;
  throw ValueError("unknown item type: " + python::repr(type.get_ref<const std::string&>()));
}

const char* item_type_name(ItemType type) noexcept {
  switch (type) {
    case ItemType::typeless: return "typeless";
    case ItemType::boolean: return "boolean";
    case ItemType::enumerated: return "enumerated";
    case ItemType::mask: return "mask";
    case ItemType::numeric: return "numeric";
    case ItemType::numeric_array: return "numeric array";
    case ItemType::string: return "string";
    case ItemType::bulk: return "bulk";
    case ItemType::record: return "record";
    case ItemType::collection: return "collection";
  }
  return "typeless";
}

Json validate_type(const Json& description, const Json& value) {
  const ItemType type = item_type(description);
  switch (type) {
    case ItemType::boolean:
    case ItemType::enumerated: return validate_enumerated(description, type, value);
    case ItemType::mask: return validate_mask(description, value);
    case ItemType::numeric: return validate_numeric(description, value);
    case ItemType::numeric_array: return validate_numeric_array(description, value);
    // The reference does not check strings either: a string item takes any
    // JSON value. Bulk values are checked where the bulk frame is decoded.
    case ItemType::record:
      if (!value.is_object())
        throw TypeError(std::string("a record item's value is a JSON object of fields, not '") + python::type_name(value) + "'");
      break;
    case ItemType::string:
    case ItemType::bulk:
    case ItemType::collection:
    case ItemType::typeless: break;
  }
  return value;
}

std::string format_value(const Json& description, const Json& value) {
  try {
    return format_any(description, item_type(description), value);
  } catch (const std::exception&) {
    // Never throws: a value that does not fit its description shows as itself.
    try {
      return python::str(value);
    } catch (const std::exception&) {
      return {};
    }
  }
}

Json parse_formatted(const Json& description, std::string_view text) {
  const ItemType type = item_type(description);
  const std::string_view trimmed = trim(text);
  switch (type) {
    case ItemType::boolean:
    case ItemType::enumerated: {
      Json storage;
      const Json& enumerators = enumerators_of(description, type, storage);
      std::string shown;
      if (auto key = enumerator_key(enumerators, Json(std::string(trimmed)), shown)) {
        auto number = python::parse_int(*key);
        if (number) return type == ItemType::boolean ? Json(!(number->is_number_integer() && number->get<std::int64_t>() == 0)) : *number;
      }
      throw KeyError::python("invalid enumeration value: " + python::repr(ascii_lower(trimmed)));
    }
    case ItemType::mask: {
      const Json& enumerators = field(description, "enumerators");
      const std::string wanted = ascii_lower(trimmed);
      if (wanted.empty() || wanted == "none") return Json(0);
      // The all-clear name parses back to 0 (format_value shows it).
      if (enumerators.is_object() && enumerators.contains("None") && ascii_lower(name_text(enumerators.at("None"))) == wanted)
        return Json(0);
      if (python::parse_int(trimmed)) return validate_mask(description, Json(std::string(trimmed)));
      const auto bits = mask_bits(enumerators);
      std::uint64_t value = 0;
      for (auto part : split(wanted, ',')) {
        const std::string name(trim(part));
        auto it = std::find_if(bits.begin(), bits.end(), [&](const auto& b) { return ascii_lower(b.second) == name; });
        if (it == bits.end()) throw KeyError::python("invalid bit name in mask value: " + python::repr(name));
        value |= std::uint64_t{1} << it->first;
      }
      return mask_json(value);
    }
    case ItemType::numeric: {
      Json number;
      if (number_format(description).find(':') != std::string::npos) {
        number = parse_sexagesimal(description, trimmed);
      } else {
        number = coerce_number(Json(std::string(trimmed)));
        if (auto pair = conversion(description))
          number = Json(*units::convert(as_double(number), pair->formatted, pair->wire));
      }
      return validate_numeric(description, number);
    }
    case ItemType::numeric_array: {
      // Accept the reference's tuple spelling "(1, 2)" and a bare "1, 2".
      std::string list(trimmed);
      if (list.size() >= 2 && list.front() == '(' && list.back() == ')') list = "[" + list.substr(1, list.size() - 2) + "]";
      else if (list.empty() || list.front() != '[') list = "[" + list + "]";
      Json parsed;
      try {
        parsed = json::parse(list);
      } catch (const Error&) {
        throw ValueError("not a list of numbers: " + python::repr(trimmed));
      }
      if (auto pair = conversion(description))
        for (auto& element : parsed)
          if (element.is_number()) element = Json(*units::convert(element.get<double>(), pair->formatted, pair->wire));
      return validate_numeric_array(description, parsed);
    }
    case ItemType::record:
    case ItemType::collection: {
      Json parsed;
      try {
        parsed = json::parse(trimmed);
      } catch (const Error&) {
        throw ValueError("expected a JSON object of fields: " + python::repr(trimmed));
      }
      return type == ItemType::record ? validate_type(description, parsed) : parsed;
    }
    case ItemType::string:
    case ItemType::bulk:
    case ItemType::typeless: break;
  }
  return Json(std::string(text));
}

std::string display_units(const Json& description) {
  const Json& units = field(description, "units");
  if (units.is_string()) return units.get<std::string>();
  if (!units.is_object()) return {};
  auto wire = units.find("");
  auto formatted = units.find("formatted");
  const std::string wire_name = wire != units.end() && wire->is_string() ? wire->get<std::string>() : std::string();
  if (formatted == units.end() || !formatted->is_string()) return wire_name;
  // Sexagesimal items show their formatted units; other numbers only when we
  // can convert, since format_value shows wire units otherwise.
  const std::string format = number_format(description);
  if (format.find(':') != std::string::npos) return formatted->get<std::string>();
  if (wire_name.empty() || units::convert(1.0, wire_name, formatted->get<std::string>()))
    return formatted->get<std::string>();
  return wire_name;
}

}  // namespace mktl
