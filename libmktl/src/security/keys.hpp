// Z85 and binary forms of CURVE keys (internal; the public side is
// mktl/security.hpp).
#pragma once

#include <string>
#include <string_view>

namespace mktl::security {

// 40 characters that decode as Z85.
bool is_z85_key(std::string_view text);
// The 32 bytes of a Z85 key; throws ValueError on a bad one.
std::string binary_key(std::string_view z85);
// The Z85 text of 32 bytes (empty when `binary` is not 32 bytes long).
std::string z85_key(std::string_view binary);

}  // namespace mktl::security
