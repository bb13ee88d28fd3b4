// JSON values as mktl carries them on the wire.
//
// mktl uses nlohmann::json as its value type. The wire adds three things that
// nlohmann's own parser and serializer do not cover, and mktl::json handles them:
//  - Python peers write bare NaN, Infinity and -Infinity; we read and write them.
//  - Catalog hashes are 128-bit integers written as bare JSON numbers; we keep
//    them exact as "big integers" (see bigint()).
//  - Integers stay integers: 42 never becomes 42.0.
// Thread-safe: every function is pure.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace mktl {

using Json = nlohmann::json;

namespace json {

// Parses one JSON text (RFC 8259 plus NaN/Infinity/-Infinity). Integers that do
// not fit in int64/uint64 become big integers. Throws mktl::ValueError with the
// byte offset of the problem on malformed input.
Json parse(std::string_view text);

// Compact serialization (`{"a":1,"b":[1,2]}`), UTF-8 passed through raw,
// non-finite doubles as NaN/Infinity/-Infinity, big integers as bare digits.
std::string dump(const Json& value);
void dump_to(std::string& out, const Json& value);

// A big integer: an exact integer too wide for int64/uint64, held as its
// decimal digits (optionally with a leading '-'). Compares equal only to the
// same digits. Serializes as a bare JSON number. A value that fits in
// int64/uint64 comes back as a plain integer, so hashes compare equal whichever
// way they were made.
Json bigint(std::string_view decimal_digits);
Json bigint(unsigned __int128 value);
bool is_bigint(const Json& value);
std::string bigint_digits(const Json& value);  // any integer; TypeError for non-integers

}  // namespace json
}  // namespace mktl
