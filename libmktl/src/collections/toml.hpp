// TOML files in the JSON shape, through toml++ (the only user of it), with
// the line of every value so that config errors can name it.
#pragma once

#include <mktl/json.hpp>

#include <map>
#include <string>
#include <string_view>

namespace mktl::collections::detail {

// JSON pointer ("/services/orders/ops/new/0/table") -> line in the TOML text.
using LineMap = std::map<std::string, int>;

// Converts a TOML text: tables -> objects, arrays -> arrays, integers stay
// integers, floats floats, booleans, strings; dates and times become their
// TOML text ("1979-05-27T07:32:00Z"). Fills `lines` when given. A syntax
// error is a ConfigError naming `source`, the line and the column.
Json toml_to_json(const std::string& text, const std::string& source, LineMap* lines);

// True when PATH names a TOML file (ends in ".toml", any case).
bool is_toml_path(std::string_view path);

// The whole file; ConfigError naming it when it cannot be read.
std::string read_text_file(const std::string& path);

// RFC 6901 escaping of one reference token.
std::string pointer_token(std::string_view key);

}  // namespace mktl::collections::detail
