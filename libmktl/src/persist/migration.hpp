// The schema migration of the collections' tables: compares the tables in
// the file with the configured ones (as recorded in _mktl_schema when we
// created them, else as SQLite reports them), classifies each difference as
// safe or lossy (can lose data) with the rows it affects, and applies the
// plan in one transaction: lossy changes only when allowed.
//
// Threading: runs while Tables opens, on the writer's connection, before the
// writer thread starts.
#pragma once

#include "collections/config.hpp"
#include "persist/sqlite.hpp"
#include "persist/tables.hpp"

#include <string>
#include <utility>
#include <vector>

namespace mktl::persist {

struct MigrationPlan {
  std::vector<SchemaChange> changes;
  std::vector<std::string> create;                                              // new tables
  std::vector<std::pair<std::string, const collections::Column*>> add_columns;  // table, column
  std::vector<std::string> rebuild;                                             // tables copied into a new definition
  std::vector<std::string> drop;                                                // tables no longer configured
};

// What brings the tables in `db` to `config`; reads, changes nothing.
// `_mktl_schema` must exist. fail_open() (naming `path`) for a failed read.
MigrationPlan plan_migration(sqlite3* db, const collections::Config& config, const std::string& path);

// Creates _mktl_schema when missing, plans, and applies the plan in one
// transaction, then records the configured tables for the next comparison.
// Lossy changes need options.migrate or config.auto_migrate, else
// ConfigError listing each with its impact and the way forward. Each applied
// change is logged. Returns them. fail_open() for a file that cannot be used
// or a migration that failed (rolled back).
std::vector<SchemaChange> migrate(sqlite3* db, const collections::Config& config, const TablesOptions& options);

}  // namespace mktl::persist
