// Small text helpers every module needs the same way.
#pragma once

#include <mktl/json.hpp>

#include <string>
#include <string_view>

namespace mktl::detail {

// ASCII lower case, whatever the locale: store names, keys and enumerators
// compare this way, as they do in the Python reference.
std::string ascii_lower(std::string_view text);

// ASCII upper case, whatever the locale: SQL keywords and type names, the
// expression language's UPPER().
std::string ascii_upper(std::string_view text);

// A value as an error message quotes it: its JSON, cut to 60 characters.
std::string shown(const Json& value);

}  // namespace mktl::detail
