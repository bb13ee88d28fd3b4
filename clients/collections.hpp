// mk's side of collection items (keyed, stream and table services): a
// snapshot (get --snapshot), the changes since a seq (get --since) and a live
// view printed change by change (watch).
#pragma once

#include <mktl/collection.hpp>
#include <mktl/json.hpp>

#include <functional>
#include <optional>
#include <string>

namespace mk {

// Where the lines go. `line` and `note` may be called from a view's thread.
struct CollectionOutput {
  bool json = false;                                    // one JSON object per line
  std::function<std::string(double time)> stamp;        // watch: a time prefix, or empty
  std::function<void(const std::string& line)> line;    // stdout
  std::function<void(const std::string& text)> note;   // stderr, not a failure
};

bool is_collection(const mktl::Json& description);

// get KEY --snapshot: every row (every page; `filter` is evaluated by the
// daemon), one per line, then the seq the rows are consistent with.
// Throws the daemon's error (a bad filter is its ValueError).
void print_snapshot(mktl::Client& client, const std::string& full_key, const std::string& filter,
                    std::optional<double> timeout, const CollectionOutput& out);

// get KEY --since SEQ (a number; anything else is taken as a transaction
// ref): each change after it with its op and seq, or "reset" and the rows
// when the daemon no longer holds them.
void print_since(mktl::Client& client, const std::string& full_key, const std::string& since,
                 std::optional<double> timeout, const CollectionOutput& out);

struct WatchOptions {
  std::string filter;  // evaluated in the client (mktl::CollectionView)
  std::string row;     // only this rowid (matched in the client), empty for all
};

// watch KEY: the snapshot's rows, then every change (op, seq, rowid, row)
// and every reset, until the returned view is destroyed. Throws as
// mktl::CollectionView's constructor.
mktl::CollectionView watch(mktl::Client& client, const std::string& full_key, const WatchOptions& options,
                           const CollectionOutput& out);

}  // namespace mk
