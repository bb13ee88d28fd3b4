// Item types, SET validation and human formatting, driven by an item's catalog
// description (the JSON object found under its key in the catalog).
//
// These are the rules both sides share: a daemon validates and coerces SET
// values with validate_type(); a client shows values with format_value() and
// reads what a user typed with parse_formatted(). All functions are pure and
// thread-safe.
#pragma once

#include <mktl/json.hpp>

#include <string>
#include <string_view>

namespace mktl {

// record: a transaction item of a collections daemon (its value is a JSON
// object of fields); collection: a table or stream served as one item.
enum class ItemType { typeless, boolean, enumerated, mask, numeric, numeric_array, string, bulk, record, collection };

// The type named by description["type"] (absent or "" = typeless). Throws
// ValueError for an unknown type name.
ItemType item_type(const Json& description);
const char* item_type_name(ItemType type) noexcept;

// The reference's SET coercion for the item's type: numeric "17" -> 17, "1.5" ->
// 1.5; boolean and enumerated values checked against the enumerators
// (boolean normalised to true/false, enumerated to an integer); mask bits
// checked; numeric arrays element-wise; optional `min`/`max` enforced.
// Throws ValueError / KeyError / TypeError with the reference's texts.
Json validate_type(const Json& description, const Json& value);

// Human form of a value: enumerator names, masks joined with ", " (or the
// "None" enumerator), printf `format`, sexagesimal formats for angles with
// units {"": "rad", "formatted": "deg"|"h"}. Never throws: an unformattable
// value is shown as Python's str() would show it (1.5, True, None, [1, 'a']).
std::string format_value(const Json& description, const Json& value);

// Inverse of format_value(): enumerator names case-insensitively, mask names
// separated by commas, sexagesimal text, plain numbers and JSON text.
// Throws ValueError / KeyError when the text does not fit the item.
Json parse_formatted(const Json& description, std::string_view text);

// Display units of an item ("" when none): units["formatted"] when units is an
// object, else units itself.
std::string display_units(const Json& description);

}  // namespace mktl
