// SQLite column declarations as mkio configs write them ("TEXT NOT NULL",
// "INTEGER PRIMARY KEY AUTOINCREMENT", "REAL DEFAULT 0"): what the config
// checks and the item descriptions need to know, read without SQLite.
#pragma once

#include "collections/config.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mktl::collections::detail {

// Reads DECL (SQLite's column-def after the name: a type, then constraints)
// into a Column. Throws mktl::ValueError saying what is wrong with DECL and
// what SQLite expects there.
Column parse_column(const std::string& name, const std::string& decl);

// The value of a constant DEFAULT expression ('text' with '' escapes, a
// signed number, NULL, TRUE, FALSE); nullopt for anything else
// (CURRENT_TIMESTAMP, a parenthesised expression).
std::optional<Json> sql_literal(std::string_view text);

// "; did you mean 'x'?" for the candidate closest to WORD (edit distance,
// ignoring case, a transposition counting one) when it is within a third of
// the word's length (at least 2 edits); else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace mktl::collections::detail
