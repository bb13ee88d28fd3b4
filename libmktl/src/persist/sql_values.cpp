#include "persist/sql_values.hpp"

#include "common/text.hpp"
#include "json/detail.hpp"

#include <mktl/error.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>

namespace mktl::persist {

using collections::Column;
using collections::Table;

namespace {
using mktl::detail::shown;

// SQLite's type affinity of a declared type (datatype3.html, section 3.1).
enum class Affinity { integer, text, blob, real, numeric };
Affinity affinity(const std::string& type) {
  std::string t = mktl::detail::ascii_upper(type);
  if (t.find("INT") != std::string::npos) return Affinity::integer;
  if (t.find("CHAR") != std::string::npos || t.find("CLOB") != std::string::npos || t.find("TEXT") != std::string::npos)
    return Affinity::text;
  if (t.empty() || t.find("BLOB") != std::string::npos) return Affinity::blob;
  if (t.find("REAL") != std::string::npos || t.find("FLOA") != std::string::npos || t.find("DOUB") != std::string::npos)
    return Affinity::real;
  return Affinity::numeric;
}

std::optional<Json> number_from_text(const std::string& text) {
  if (text.empty()) return std::nullopt;
  try {
    Json v = json::parse(text);
    if (v.is_number()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

Json coerce(const Table& table, const Column& column, const Json& value) {
  if (value.is_null()) return value;
  auto fail = [&](const char* expected) -> Json {
    throw TypeError("field '" + column.name + "' (" + table.name + "." + column.name + ", " +
                    (column.type.empty() ? std::string("untyped") : column.type) + ") expects " + expected + "; got " +
                    shown(value));
  };
  switch (affinity(column.type)) {
    case Affinity::integer:
      if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
      if (value.is_number_integer()) return value;
      if (value.is_number_float()) {
        double d = value.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
        return fail("an integer");
      }
      if (value.is_string())
        if (auto n = number_from_text(value.get<std::string>())) return coerce(table, column, *n);
      return fail("an integer");
    case Affinity::real:
    case Affinity::numeric:
      if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
      if (value.is_number()) return value;
      if (value.is_string())
        if (auto n = number_from_text(value.get<std::string>())) return *n;
      return fail("a number");
    case Affinity::text:
      if (value.is_string()) return value;
      if (value.is_object() || value.is_array()) return json::dump(value);  // kept as JSON text
      return fail("a string");
    case Affinity::blob:
      if (value.is_object() || value.is_array()) return json::dump(value);
      return value;
  }
  return value;
}

int bind_value(sqlite3_stmt* stmt, int index, const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return sqlite3_bind_null(stmt, index);
    case Json::value_t::boolean: return sqlite3_bind_int64(stmt, index, value.get<bool>() ? 1 : 0);
    case Json::value_t::number_integer: return sqlite3_bind_int64(stmt, index, value.get<std::int64_t>());
    case Json::value_t::number_unsigned: {
      auto u = value.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(INT64_MAX)) return sqlite3_bind_int64(stmt, index, static_cast<std::int64_t>(u));
      return sqlite3_bind_double(stmt, index, static_cast<double>(u));
    }
    case Json::value_t::number_float: return sqlite3_bind_double(stmt, index, value.get<double>());
    case Json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      return sqlite3_bind_text64(stmt, index, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    default: {
      std::string s = json::dump(value);
      return sqlite3_bind_text64(stmt, index, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
  }
}

Json column_value(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER: return sqlite3_column_int64(stmt, i);
    case SQLITE_FLOAT: return sqlite3_column_double(stmt, i);
    case SQLITE_NULL: return nullptr;
    default: {
      auto data = reinterpret_cast<const char*>(sqlite3_column_blob(stmt, i));
      auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, i));
      return data ? std::string(data, size) : std::string();
    }
  }
}

Json row_of(sqlite3_stmt* stmt) {
  Json row = Json::object();
  int n = sqlite3_column_count(stmt);
  for (int i = 0; i < n; ++i) row[sqlite3_column_name(stmt, i)] = column_value(stmt, i);
  return row;
}

void append_column(std::string& out, sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER: {
      char buf[24];
      auto res = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(sqlite3_column_int64(stmt, i)));
      out.append(buf, res.ptr);
      return;
    }
    case SQLITE_FLOAT: json::detail::append_double(out, sqlite3_column_double(stmt, i)); return;
    case SQLITE_NULL: out.append("null"); return;
    default: {
      auto data = reinterpret_cast<const char*>(sqlite3_column_blob(stmt, i));
      auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, i));
      json::detail::append_string(out, data ? std::string_view(data, size) : std::string_view());
      return;
    }
  }
}

}  // namespace mktl::persist
