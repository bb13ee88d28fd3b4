// Values between a client's JSON and SQLite, for the collections' tables:
// a field checked against its column's declared type, a JSON value bound to
// a statement, a result column read back as JSON or as JSON text. Pure
// functions; any thread (a statement only on the thread that owns it).
#pragma once

#include "collections/config.hpp"
#include "persist/sqlite.hpp"

#include <mktl/json.hpp>

#include <string>

namespace mktl::persist {

// A client's value for `column` of `table`, checked against the column's
// type affinity (numeric text is taken for numbers, as mKTL's numeric items
// take it; an object or array for a text column is kept as its JSON text).
// TypeError naming the field, the column and what it expects.
Json coerce(const collections::Table& table, const collections::Column& column, const Json& value);

// Binds `value` to parameter `index` of `stmt` (an object or array as its
// JSON text); SQLite's result code.
int bind_value(sqlite3_stmt* stmt, int index, const Json& value);

// Result column `i` of `stmt`, and the whole row as an object by column name.
Json column_value(sqlite3_stmt* stmt, int i);
Json row_of(sqlite3_stmt* stmt);

// Result column `i` of `stmt` appended to `out` as JSON text, spelt as
// mktl::json::dump spells the value column_value() makes of it.
void append_column(std::string& out, sqlite3_stmt* stmt, int i);

}  // namespace mktl::persist
