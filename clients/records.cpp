#include "records.hpp"

#include <mktl/error.hpp>

#include <csv.h>

#include <cctype>
#include <fstream>
#include <iterator>

namespace mk {

namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Collects libcsv's fields and records.
struct CsvRows {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> current;
  static void field(void* data, std::size_t size, void* self) {
    static_cast<CsvRows*>(self)->current.emplace_back(static_cast<const char*>(data), size);
  }
  static void record(int, void* self) {
    auto* rows = static_cast<CsvRows*>(self);
    rows->records.push_back(std::move(rows->current));
    rows->current.clear();
  }
};

std::vector<std::vector<std::string>> parse_csv(const std::string& path, const std::string& text) {
  csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
    throw mktl::RuntimeError("cannot start a CSV parser");
  CsvRows rows;
  std::size_t done = csv_parse(&parser, text.data(), text.size(), CsvRows::field, CsvRows::record, &rows);
  bool ok = done == text.size() && csv_fini(&parser, CsvRows::field, CsvRows::record, &rows) == 0;
  std::string error = ok ? "" : csv_strerror(csv_error(&parser));
  csv_free(&parser);
  if (!ok) {
    auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(std::min(done, text.size())), '\n');
    throw mktl::ValueError(path + ": line " + std::to_string(line) + ": " + error);
  }
  return rows.records;
}

}  // namespace

mktl::Json typed_cell(const std::string& text, const std::string& sql_type) {
  std::string type = upper(sql_type);
  bool numeric = type.find("INT") != std::string::npos || type.find("REAL") != std::string::npos ||
                 type.find("FLOA") != std::string::npos || type.find("DOUB") != std::string::npos ||
                 type.find("NUM") != std::string::npos || type.find("DEC") != std::string::npos;
  if (numeric) {
    try {
      mktl::Json v = mktl::json::parse(text);
      if (v.is_number()) return v;
    } catch (const std::exception&) {
    }
  }
  return text;  // the daemon says what it thinks of a non-number in a numeric field
}

std::vector<mktl::Json> read_rows(const std::string& path, const mktl::Json& description) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw mktl::ValueError("cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<mktl::Json> out;
  bool csv = path.size() >= 4 && upper(path.substr(path.size() - 4)) == ".CSV";
  if (!csv) {
    mktl::Json doc;
    try {
      doc = mktl::json::parse(text);
    } catch (const mktl::Error& e) {
      throw mktl::ValueError(path + ": " + e.text());
    }
    if (doc.is_object()) {
      out.push_back(std::move(doc));
    } else if (doc.is_array()) {
      for (std::size_t i = 0; i < doc.size(); ++i) {
        if (!doc[i].is_object())
          throw mktl::ValueError(path + ": element " + std::to_string(i) + " is not an object of fields");
        out.push_back(std::move(doc[i]));
      }
    } else {
      throw mktl::ValueError(path + ": expected an object of fields or an array of them");
    }
    return out;
  }
  auto records = parse_csv(path, text);
  if (records.empty()) throw mktl::ValueError(path + ": no header row");
  const auto& header = records.front();
  const mktl::Json fields = description.value("fields", mktl::Json::object());
  for (std::size_t r = 1; r < records.size(); ++r) {
    const auto& cells = records[r];
    if (cells.size() == 1 && cells[0].empty()) continue;  // a blank line
    if (cells.size() != header.size())
      throw mktl::ValueError(path + ": row " + std::to_string(r) + " has " + std::to_string(cells.size()) +
                             " cells, the header " + std::to_string(header.size()));
    mktl::Json row = mktl::Json::object();
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (cells[c].empty()) continue;
      std::string type;
      if (auto f = fields.find(header[c]); f != fields.end() && f->is_object()) type = f->value("type", "");
      row[header[c]] = typed_cell(cells[c], type);
    }
    out.push_back(std::move(row));
  }
  return out;
}

std::string committed_line(const mktl::Json& value) {
  if (!value.is_object()) return mktl::json::dump(value);
  std::string out;
  if (value.contains("status")) out += std::string(value["status"].is_string() ? value["status"].get<std::string>() : "") + " ";
  if (value.contains("ref")) out += "ref " + (value["ref"].is_string() ? value["ref"].get<std::string>() : mktl::json::dump(value["ref"]));
  if (value.contains("seq")) out += " seq " + mktl::json::dump(value["seq"]);
  if (value.value("duplicate", false)) out += " (already committed)";
  if (value.contains("rows")) out += " rows " + mktl::json::dump(value["rows"]);
  return out;
}

}  // namespace mk
