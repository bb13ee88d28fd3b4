// Items files and the identity of a daemon's catalog block: normalisation as
// the reference's Catalog.update() does it, plus the checks it never made, so
// that a typo in a catalog stops markd at start-up with the file, the field
// and what was expected, instead of failing a SET hours later.
#include <mktl/catalog.hpp>
#include "common/text.hpp"

#include <mktl/error.hpp>
#include <mktl/format.hpp>

#include "model/printf.hpp"
#include "model/python.hpp"

#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <pwd.h>
#include <unistd.h>

namespace mktl {

namespace {
using mktl::detail::ascii_lower;
using mktl::detail::shown;

// RFC 6901 escaping of one reference token.
std::string pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out.push_back(c);
  }
  return out;
}

// A short JSON rendering of an offending value for error messages.
constexpr const char* kTypeNames = "boolean, enumerated, mask, numeric, numeric array, string, bulk, record, collection";

class Normaliser {
 public:
  explicit Normaliser(const std::string& source) : source_(source) {}

  Json run(const Json& items) {
    if (!items.is_object()) fail("", "expected a JSON object of items {key: description}", items);
    Json out = Json::object();
    for (const auto& [key, description] : items.items()) {
      const std::string pointer = "/" + pointer_token(key);
      check_key(key, pointer);
      const std::string lowered = ascii_lower(key);
      if (out.contains(lowered))
        throw ConfigError(source_, pointer, "duplicate key: keys are case-insensitive and \"" + lowered + "\" is already defined");
      out[lowered] = item(description, pointer);
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& pointer, const std::string& expected, const Json& got) const {
    throw ConfigError(source_, pointer, expected + "; got " + shown(got));
  }

  void check_key(const std::string& key, const std::string& pointer) const {
    if (key.empty()) throw ConfigError(source_, pointer, "expected a non-empty item key");
    if (key.front() == '_')
      throw ConfigError(source_, pointer,
                        "expected a key that does not start with '_' (built-in items are added by the daemon); got \"" + key + "\"");
    for (char c : key)
      if (c == '.' || std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x20)
        throw ConfigError(source_, pointer, "expected a key without '.' or whitespace; got \"" + key + "\"");
  }

  Json item(const Json& description, const std::string& pointer) const {
    if (!description.is_object()) fail(pointer, "expected an object describing the item", description);
    Json out = description;

    ItemType type = ItemType::typeless;
    if (auto it = out.find("type"); it != out.end()) {
      const std::string name = it->is_string() ? ascii_lower(it->get_ref<const std::string&>()) : std::string();
      if (!it->is_string() || (name != "" && name != "boolean" && name != "enumerated" && name != "mask" &&
                               name != "numeric" && name != "numeric array" && name != "string" && name != "bulk" &&
                               name != "record" && name != "collection"))
        fail(pointer + "/type", std::string("expected one of ") + kTypeNames, *it);
      *it = name;
      type = item_type(out);
    }

    for (const char* flag : {"persist", "settable", "gettable"})
      if (auto it = out.find(flag); it != out.end() && !it->is_boolean())
        fail(pointer + "/" + flag, "expected true or false", *it);

    if (auto it = out.find("description"); it != out.end() && !it->is_string())
      fail(pointer + "/description", "expected a string", *it);

    check_units(out, pointer);
    check_range(out, type, pointer);
    if (type == ItemType::boolean || type == ItemType::enumerated || type == ItemType::mask)
      out["enumerators"] = enumerators(out, type, pointer);
    check_format(out, type, pointer);

    if (auto it = out.find("initial"); it != out.end() && type != ItemType::bulk) {
      Json valid;
      try {
        valid = validate_type(out, *it);
      } catch (const Error& e) {
        fail(pointer + "/initial",
             std::string("expected a valid value for a ") + item_type_name(type) + " item (" + e.text() + ")", *it);
      }
      // Values on the wire may be NaN (Python peers send them); a configured
      // starting value that is not a number is a typo or a placeholder.
      if ((type == ItemType::numeric || type == ItemType::numeric_array) && !finite(valid))
        fail(pointer + "/initial",
             std::string("expected a finite initial value for a ") + item_type_name(type) +
                 " item (NaN and infinities are refused here; they may still be set or published)",
             *it);
    }
    return out;
  }

  // True unless `value` is, or holds, a NaN or infinite number.
  static bool finite(const Json& value) {
    if (value.is_number_float()) return std::isfinite(value.get<double>());
    if (value.is_array()) {
      for (const auto& element : value)
        if (!finite(element)) return false;
    }
    return true;
  }

  void check_units(const Json& description, const std::string& pointer) const {
    auto it = description.find("units");
    if (it == description.end() || it->is_string()) return;
    const std::string expected = "expected a string or an object {\"\": wire units, \"formatted\": display units}";
    if (!it->is_object() || !it->contains("")) fail(pointer + "/units", expected, *it);
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) fail(pointer + "/units/" + pointer_token(k), "expected a string naming units", v);
    }
  }

  void check_range(const Json& description, ItemType type, const std::string& pointer) const {
    const bool numeric = type == ItemType::numeric || type == ItemType::numeric_array;
    for (const char* limit : {"min", "max"}) {
      auto it = description.find(limit);
      if (it == description.end()) continue;
      if (!numeric)
        throw ConfigError(source_, pointer + "/" + limit, "expected no limit: min and max apply to numeric and numeric array items");
      if (!it->is_number()) fail(pointer + "/" + limit, "expected a number", *it);
      // NaN compares false with everything (no limit at all) and an infinite
      // limit refuses or allows every value: neither is what anyone meant.
      if (!std::isfinite(it->get<double>()))
        fail(pointer + "/" + limit, "expected a finite number (NaN and infinities are not limits)", *it);
    }
    auto min = description.find("min");
    auto max = description.find("max");
    if (min != description.end() && max != description.end() && min->get<double>() > max->get<double>())
      fail(pointer + "/max", "expected a maximum not below the minimum " + shown(*min), *max);
  }

  Json enumerators(const Json& description, ItemType type, const std::string& pointer) const {
    const std::string where = pointer + "/enumerators";
    Json out = Json::object();
    if (auto it = description.find("enumerators"); it != description.end()) {
      if (!it->is_object()) fail(where, "expected an object {\"0\": \"Name\", ...}", *it);
      for (const auto& [k, name] : it->items()) {
        const std::string at = where + "/" + pointer_token(k);
        if (!name.is_string()) fail(at, "expected a string naming the enumerator", name);
        std::string key = k;
        if (!(type == ItemType::mask && k == "None")) {
          auto number = python::parse_int(k);
          if (!number || !number->is_number_integer())
            throw ConfigError(source_, at,
                              type == ItemType::mask ? "expected a bit number (0..63) or \"None\" as key; got \"" + k + "\""
                                                     : "expected an integer as key; got \"" + k + "\"");
          if (type == ItemType::mask && (number->get<std::int64_t>() < 0 || number->get<std::int64_t>() > 63))
            throw ConfigError(source_, at, "expected a bit number 0..63; got \"" + k + "\"");
          key = python::str(*number);  // "01" -> "1", as the wire spells keys
        }
        if (out.contains(key)) throw ConfigError(source_, at, "duplicate enumerator key " + key);
        out[key] = name;
      }
    }
    if (type == ItemType::boolean) {
      if (!out.contains("0")) out["0"] = "False";
      if (!out.contains("1")) out["1"] = "True";
    }
    return out;
  }

  void check_format(const Json& description, ItemType type, const std::string& pointer) const {
    auto it = description.find("format");
    if (it == description.end()) return;
    if (!it->is_string()) fail(pointer + "/format", "expected a printf format string", *it);
    if (type != ItemType::numeric && type != ItemType::numeric_array) return;
    const auto& format = it->get_ref<const std::string&>();
    bool ok = true;
    std::size_t start = 0;
    // A ':' makes a sexagesimal format: one conversion per field.
    for (;;) {
      const auto pos = format.find(':', start);
      const auto part = std::string_view(format).substr(start, pos == std::string::npos ? std::string::npos : pos - start);
      ok = ok && pyformat::parse(part).has_value();
      if (pos == std::string::npos) break;
      start = pos + 1;
    }
    if (!ok)
      fail(pointer + "/format",
           "expected a printf format with one conversion (%d %i %u %o %x %e %f %g %s), or d:m:s fields like %d:%02d:%04.1f",
           *it);
  }

  const std::string& source_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", std::string("cannot read file: ") + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw ConfigError(path, "", std::string("cannot read file: ") + std::strerror(errno));
  return buffer.str();
}

// Line and column (1-based) of a byte offset, for syntax errors people can find.
std::string position(const std::string& text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

std::string strip(std::string text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

}  // namespace

Json load_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const Error& e) {
    std::string problem = e.text();
    // mktl::json::parse names the byte offset ("at byte N"); add line/column.
    const auto at = problem.find("at byte ");
    if (at != std::string::npos) problem += " (" + position(text, std::strtoull(problem.c_str() + at + 8, nullptr, 10)) + ")";
    throw ConfigError(path, "", problem);
  }
}

Json normalise_items(const Json& items, const std::string& source) { return Normaliser(source).run(items); }

Json items_hash(const Json& items) {
  // FNV-1a, 128-bit, over the canonical (sorted-key, compact) JSON text: stable
  // across runs and machines, and any change of the items changes the text.
  const unsigned __int128 prime = (static_cast<unsigned __int128>(1) << 88) + 0x13B;
  unsigned __int128 hash = (static_cast<unsigned __int128>(0x6c62272e07bb0142ULL) << 64) | 0x62b821756295c58dULL;
  for (unsigned char c : json::dump(items)) {
    hash ^= c;
    hash *= prime;
  }
  return json::bigint(hash);
}

std::string daemon_uuid(const std::string& mktl_home, const std::string& store, const std::string& alias) {
  if (store.empty() || alias.empty() || store.find('/') != std::string::npos || alias.find('/') != std::string::npos)
    throw ValueError("store and alias must be non-empty names without '/'");
  namespace fs = std::filesystem;
  const fs::path directory = fs::path(mktl_home) / "daemon" / "store" / ascii_lower(store);
  const fs::path path = directory / (alias + ".uuid");
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec) throw ConfigError(directory.string(), "", "cannot create directory: " + ec.message());

  if (fs::exists(path, ec)) {
    std::string uuid = strip(read_file(path.string()));
    if (!uuid.empty()) return uuid;
  }
  // Write a private temporary file and link it into place: a concurrent
  // starter either wins the link or reads the winner's UUID, and nobody ever
  // reads a half-written file.
  std::string uuid = random_uuid();
  const fs::path temporary = directory / (alias + ".uuid.tmp." + std::to_string(::getpid()) + "." + random_uuid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << uuid;
    out.close();
    if (!out) throw ConfigError(temporary.string(), "", std::string("cannot write file: ") + std::strerror(errno));
  }
  if (::link(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    if (error == EEXIST) {
      std::string existing = strip(read_file(path.string()));
      if (!existing.empty()) {
        fs::remove(temporary, ec);
        return existing;
      }
    }
    // An empty leftover file, or a file system without hard links: replace.
    fs::rename(temporary, path, ec);
    if (ec) {
      fs::remove(temporary, ec);
      throw ConfigError(path.string(), "", "cannot write file: " + ec.message());
    }
    return uuid;
  }
  fs::remove(temporary, ec);
  return uuid;
}

std::string mktl_home() {
  if (const char* home = std::getenv("MKTL_HOME"); home && *home) return home;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.mKTL";
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir && *pw->pw_dir)
    return std::string(pw->pw_dir) + "/.mKTL";
  throw RuntimeError("MKTL_HOME and HOME are not set: cannot find the mKTL directory");
}

std::string random_uuid() {
  std::random_device device;
  unsigned char bytes[16];
  for (int i = 0; i < 16; i += 4) {
    const auto r = device();
    for (int j = 0; j < 4; ++j) bytes[i + j] = static_cast<unsigned char>(r >> (8 * j));
  }
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[bytes[i] >> 4]);
    out.push_back(hex[bytes[i] & 0x0F]);
  }
  return out;
}

}  // namespace mktl
