#include "collections.hpp"

#include <mktl/error.hpp>

#include <charconv>
#include <memory>
#include <mutex>

namespace mk {

namespace {

using mktl::Json;

std::string bare_key(const std::string& full_key) { return full_key.substr(full_key.find('.') + 1); }

// A rowid as a human sees it: strings bare, anything else as JSON.
std::string rowid_text(const Json& rowid) { return rowid.is_string() ? rowid.get<std::string>() : mktl::json::dump(rowid); }

std::string row_line(const std::string& full_key, const Json& rowid, const Json& row, const CollectionOutput& out) {
  if (out.json) return mktl::json::dump({{"key", full_key}, {"rowid", rowid}, {"value", row}});
  return bare_key(full_key) + "[" + rowid_text(rowid) + "]: " + mktl::json::dump(row);
}

// The seq of an answer, checked.
std::int64_t seq_of(const Json& answer, const std::string& full_key) {
  auto it = answer.find("seq");
  if (it == answer.end() || !it->is_number_integer())
    throw mktl::ValueError(full_key + ": the answer has no integer 'seq' (is this a collection item?)");
  return it->get<std::int64_t>();
}

const Json& array_member(const Json& answer, const char* name, const std::string& full_key) {
  auto it = answer.find(name);
  if (it == answer.end() || !it->is_array())
    throw mktl::ValueError(full_key + ": the answer has no '" + name + "' array (is this a collection item?)");
  return *it;
}

// Rows of a snapshot or reset answer; returns how many.
std::size_t print_rows(const std::string& full_key, const Json& answer, const CollectionOutput& out) {
  const Json& rows = array_member(answer, "value", full_key);
  const Json& rowids = array_member(answer, "rowids", full_key);
  if (rows.size() != rowids.size()) throw mktl::ValueError(full_key + ": 'value' and 'rowids' differ in length");
  for (std::size_t i = 0; i < rows.size(); ++i) out.line(row_line(full_key, rowids[i], rows[i], out));
  return rows.size();
}

// "key: OP seq N [ROWID] ROW", as get --since and watch print a change.
std::string change_line(const std::string& full_key, const std::string& op, const std::string& seq,
                        const Json& rowid, const Json& row) {
  return bare_key(full_key) + ": " + op + " seq " + seq + " [" + rowid_text(rowid) + "] " + mktl::json::dump(row);
}

std::string rows_text(std::size_t n) { return std::to_string(n) + (n == 1 ? " row" : " rows"); }

void filter_errors(const std::string& full_key, const Json& answer, const CollectionOutput& out) {
  auto errors = answer.find("errors");
  if (errors != answer.end() && errors->is_number() && errors->get<double>() > 0 && out.note)
    out.note(full_key + ": the filter failed on " + mktl::json::dump(*errors) + " rows, which are left out");
}

// Whether ROWID is the one given as TEXT on the command line (42 matches the
// number 42 and the string "42").
bool rowid_matches(const Json& rowid, const std::string& text) {
  if (rowid.is_string()) return rowid.get<std::string>() == text;
  try {
    return rowid == mktl::json::parse(text);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

bool is_collection(const Json& description) {
  return description.is_object() && description.value("type", std::string()) == "collection";
}

void print_snapshot(mktl::Client& client, const std::string& full_key, const std::string& filter,
                    std::optional<double> timeout, const CollectionOutput& out) {
  Json cursor;
  std::size_t count = 0;
  std::int64_t first_seq = 0, last_seq = 0;
  std::string epoch;
  for (bool first = true;; first = false) {
    Json request = {{"snapshot", true}};
    if (!filter.empty()) request["filter"] = filter;
    if (!cursor.is_null()) request["cursor"] = cursor;
    Json answer = client.call("GET", full_key, request, timeout);
    std::int64_t seq = seq_of(answer, full_key);
    if (first) {
      first_seq = seq;
      epoch = answer.value("epoch", Json("")).is_string() ? answer.value("epoch", std::string()) : std::string();
    }
    last_seq = seq;
    count += print_rows(full_key, answer, out);
    filter_errors(full_key, answer, out);
    if (!answer.value("hasmore", false)) break;
    cursor = answer.value("cursor", Json());
    if (cursor.is_null()) throw mktl::ValueError(full_key + ": a page says 'hasmore' without a 'cursor'");
  }
  // Pages taken at different seqs (the collection changed meanwhile) are
  // shown as they came; the range says so.
  if (out.json) {
    Json end = {{"key", full_key}, {"seq", last_seq}, {"count", count}, {"epoch", epoch}};
    if (first_seq != last_seq) end["first_seq"] = first_seq;
    out.line(mktl::json::dump(end));
  } else {
    std::string seq = first_seq == last_seq ? std::to_string(last_seq)
                                            : std::to_string(first_seq) + ".." + std::to_string(last_seq);
    out.line(bare_key(full_key) + ": seq " + seq + ", " + rows_text(count));
  }
}

void print_since(mktl::Client& client, const std::string& full_key, const std::string& since,
                 std::optional<double> timeout, const CollectionOutput& out) {
  Json from = since;
  std::int64_t number = 0;
  auto [end, ec] = std::from_chars(since.data(), since.data() + since.size(), number);
  if (ec == std::errc() && end == since.data() + since.size()) from = number;
  Json answer = client.call("GET", full_key, {{"since", from}}, timeout);
  std::int64_t seq = seq_of(answer, full_key);
  if (answer.value("reset", false)) {
    const std::size_t n = array_member(answer, "value", full_key).size();
    if (out.json)
      out.line(mktl::json::dump({{"key", full_key}, {"reset", true}, {"seq", seq}, {"count", n},
                                 {"epoch", answer.value("epoch", Json())}}));
    else
      out.line(bare_key(full_key) + ": reset seq " + std::to_string(seq) + ", " + rows_text(n) +
               " (the changes since " + since + " are no longer held)");
    print_rows(full_key, answer, out);
    return;
  }
  const Json& changes = array_member(answer, "value", full_key);
  for (const auto& c : changes) {
    if (!c.is_object()) throw mktl::ValueError(full_key + ": a change is not a JSON object");
    if (out.json) {
      Json line = c;
      line["key"] = full_key;
      out.line(mktl::json::dump(line));
    } else {
      out.line(change_line(full_key, c.value("op", std::string("?")), mktl::json::dump(c.value("seq", Json())),
                           c.value("rowid", Json()), c.value("value", Json())));
    }
  }
  if (out.json)
    out.line(mktl::json::dump({{"key", full_key}, {"seq", seq}, {"changes", changes.size()}}));
  else
    out.line(bare_key(full_key) + ": seq " + std::to_string(seq) + ", " + std::to_string(changes.size()) +
             (changes.size() == 1 ? " change" : " changes"));
}

mktl::CollectionView watch(mktl::Client& client, const std::string& full_key, const WatchOptions& options,
                           const CollectionOutput& out) {
  // Shared with the view's thread, which prints until the view is destroyed.
  auto shared = std::make_shared<const CollectionOutput>(out);
  auto row_wanted = [row = options.row](const Json& rowid) { return row.empty() || rowid_matches(rowid, row); };
  auto print_rows = [shared, full_key, row_wanted](const char* what, std::int64_t seq,
                                                   const std::vector<mktl::CollectionRow>& rows) {
    std::size_t shown = 0;
    for (const auto& r : rows)
      if (row_wanted(r.rowid)) ++shown;
    if (shared->json) {
      shared->line(mktl::json::dump({{"key", full_key}, {what, true}, {"seq", seq}, {"count", shown}}));
    } else {
      std::string stamp = shared->stamp ? shared->stamp(mktl::now()) : std::string();
      shared->line(stamp + bare_key(full_key) + ": " + what + " seq " + std::to_string(seq) + ", " + rows_text(shown));
    }
    for (const auto& r : rows)
      if (row_wanted(r.rowid)) shared->line(row_line(full_key, r.rowid, r.value, *shared));
  };

  mktl::CollectionCallbacks callbacks;
  callbacks.on_snapshot = [print_rows](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) {
    print_rows("snapshot", seq, rows);
  };
  callbacks.on_reset = [print_rows](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) {
    print_rows("reset", seq, rows);
  };
  callbacks.on_change = [shared, full_key, row_wanted](const mktl::CollectionChange& c) {
    if (!row_wanted(c.rowid)) return;
    if (shared->json) {
      shared->line(mktl::json::dump({{"key", full_key}, {"op", c.op}, {"seq", c.seq}, {"rowid", c.rowid},
                                     {"exists", c.exists}, {"value", c.row}, {"ref", c.ref}, {"time", c.time}}));
    } else {
      std::string stamp = shared->stamp ? shared->stamp(c.time) : std::string();
      shared->line(stamp + change_line(full_key, c.op, std::to_string(c.seq), c.rowid, c.row));
    }
  };
  callbacks.on_error = [shared, full_key](const std::string& text) {
    if (shared->note) shared->note(full_key + ": " + text);
  };
  mktl::CollectionOptions view_options;
  view_options.filter = options.filter;
  return mktl::CollectionView(client, full_key, std::move(callbacks), std::move(view_options));
}

}  // namespace mk
