// mk's side of record items (transactions): the rows of a JSON or CSV file,
// each one transaction, typed by the record item's field descriptions.
#pragma once

#include <mktl/json.hpp>

#include <string>
#include <vector>

namespace mk {

// The transactions in FILE. A .csv file: a header row of field names, then
// one transaction per row; a cell is converted by its field's SQL type
// (INTEGER, REAL, ... cells that read as numbers become numbers), an empty
// cell leaves the field out. Anything else is JSON: an object is one
// transaction, an array of objects one per element. Throws mktl::ValueError
// naming the file, and the line for CSV, on malformed input.
std::vector<mktl::Json> read_rows(const std::string& path, const mktl::Json& description);

// One CSV cell as the value of a field of SQL type `sql_type`.
mktl::Json typed_cell(const std::string& text, const std::string& sql_type);

// A committed transaction as mk prints it: "ref R seq N rows [...]".
std::string committed_line(const mktl::Json& value);

}  // namespace mk
