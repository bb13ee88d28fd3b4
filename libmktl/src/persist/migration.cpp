#include "persist/migration.hpp"

#include "persist/tables_common.hpp"

#include <mktl/error.hpp>
#include <mktl/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>

namespace mktl::persist {

using collections::Column;
using collections::Table;
using sql::errmsg;
using sql::quote;
using sql::Stmt;

namespace {

// Upper case, runs of blanks made one space, trimmed: how two declarations are compared.
std::string normal_decl(const std::string& decl) {
  std::string out;
  bool blank = false;
  for (char c : decl) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      blank = true;
      continue;
    }
    if (blank && !out.empty()) out += ' ';
    blank = false;
    out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;  // ASCII, whatever the locale
  }
  return out;
}

bool has_word(const std::string& decl, const char* word) { return normal_decl(decl).find(word) != std::string::npos; }

std::string create_sql(const Table& table, const std::string& name) {
  std::string sql = "CREATE TABLE " + quote(name) + " (";
  bool column_pk = false;
  for (std::size_t i = 0; i < table.columns.size(); ++i) {
    const auto& c = table.columns[i];
    sql += (i ? ", " : "") + quote(c.name) + (c.decl.empty() ? "" : " " + c.decl);
    column_pk = column_pk || has_word(c.decl, "PRIMARY KEY");
  }
  if (!column_pk && !table.primary_key.empty()) {
    std::vector<std::string> quoted;
    for (auto& k : table.primary_key) quoted.push_back(quote(k));
    sql += ", PRIMARY KEY (" + joined(quoted) + ")";
  }
  return sql + ")";
}

struct OldColumn {
  std::string name;
  std::string decl;  // exact when we created the table, else rebuilt from PRAGMA table_info
  std::string type;
  bool exact = false;
};

// The first column of the first row of `text` (a COUNT(*)), 0 for no row.
std::int64_t count_rows(sqlite3* db, const std::string& path, const std::string& text) {
  Stmt stmt = sql::prepare(db, text.c_str());
  if (!stmt) fail_open(path, "cannot count rows (" + text + "): " + errmsg(db));
  std::int64_t n = 0;
  if (sqlite3_step(stmt.get()) == SQLITE_ROW) n = sqlite3_column_int64(stmt.get(), 0);
  return n;
}

std::vector<std::string> existing_tables(sqlite3* db, const std::string& path) {
  std::vector<std::string> out;
  Stmt stmt = sql::prepare(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
  if (!stmt) fail_open(path, errmsg(db));
  while (sqlite3_step(stmt.get()) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
  return out;
}

// Columns as recorded when we created the table, else as SQLite reports them.
std::vector<OldColumn> old_columns(sqlite3* db, const std::string& path, const std::string& table, std::vector<std::string>& pk) {
  std::vector<OldColumn> out;
  {
    Stmt stmt = sql::prepare(db, "SELECT columns, primary_key FROM _mktl_schema WHERE name = ?1");
    if (!stmt) fail_open(path, errmsg(db));
    sqlite3_bind_text64(stmt.get(), 1, table.data(), table.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (sqlite3_step(stmt.get()) == SQLITE_ROW) {
      Json columns = json::parse(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0)));
      Json keys = json::parse(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1)));
      for (auto& c : columns) {
        OldColumn oc{c.at(0).get<std::string>(), c.at(1).get<std::string>(), c.at(2).get<std::string>(), true};
        out.push_back(std::move(oc));
      }
      for (auto& k : keys) pk.push_back(k.get<std::string>());
      return out;
    }
  }
  Stmt stmt = sql::prepare(db, ("PRAGMA table_info(" + quote(table) + ")").c_str());
  if (!stmt) fail_open(path, errmsg(db));
  std::vector<std::pair<int, std::string>> keys;
  while (sqlite3_step(stmt.get()) == SQLITE_ROW) {
    OldColumn c;
    c.name = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1));
    auto type = sqlite3_column_text(stmt.get(), 2);
    c.type = type ? reinterpret_cast<const char*>(type) : "";
    c.decl = c.type;
    if (sqlite3_column_int(stmt.get(), 3)) c.decl += " NOT NULL";
    if (auto d = sqlite3_column_text(stmt.get(), 4)) c.decl += std::string(" DEFAULT ") + reinterpret_cast<const char*>(d);
    if (int k = sqlite3_column_int(stmt.get(), 5)) keys.emplace_back(k, c.name);
    out.push_back(std::move(c));
  }
  std::sort(keys.begin(), keys.end());
  for (auto& k : keys) pk.push_back(k.second);
  return out;
}

// What each configured table is, for the next start's comparison.
void record_schema(sqlite3* db, const collections::Config& config, const std::string& path) {
  Stmt stmt = sql::prepare(db,
                           "INSERT INTO _mktl_schema (name, columns, primary_key) VALUES (?1, ?2, ?3) ON CONFLICT (name) "
                           "DO UPDATE SET columns = excluded.columns, primary_key = excluded.primary_key");
  if (!stmt) fail_open(path, errmsg(db));
  for (const Table& table : config.tables) {
    Json columns = Json::array();
    for (auto& c : table.columns) columns.push_back(Json::array({c.name, c.decl, c.type}));
    std::string cols = json::dump(columns), keys = json::dump(Json(table.primary_key));
    sqlite3_reset(stmt.get());
    sqlite3_bind_text64(stmt.get(), 1, table.name.data(), table.name.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    sqlite3_bind_text64(stmt.get(), 2, cols.data(), cols.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    sqlite3_bind_text64(stmt.get(), 3, keys.data(), keys.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) fail_open(path, "cannot record the schema: " + errmsg(db));
  }
}

}  // namespace

std::string SchemaChange::text() const {
  std::string out = table + ": " + what;
  if (lossy) out += " (" + std::to_string(rows) + " row" + (rows == 1 ? "" : "s") + " affected)";
  return out;
}

MigrationPlan plan_migration(sqlite3* db, const collections::Config& config, const std::string& path) {
  auto count = [&](const std::string& text) { return count_rows(db, path, text); };
  MigrationPlan p;
  auto existing = existing_tables(db, path);
  std::set<std::string> present(existing.begin(), existing.end());
  for (const Table& table : config.tables) {
    if (!present.count(table.name)) {
      p.create.push_back(table.name);
      p.changes.push_back({table.name, "new table", false, 0});
      continue;
    }
    std::vector<std::string> old_pk;
    auto old = old_columns(db, path, table.name, old_pk);
    bool rebuild = false;
    std::int64_t rows = -1;
    auto rows_now = [&] {
      if (rows < 0) rows = count("SELECT COUNT(*) FROM " + quote(table.name));
      return rows;
    };
    for (const Column& c : table.columns) {
      auto it = std::find_if(old.begin(), old.end(), [&](auto& o) { return o.name == c.name; });
      if (it == old.end()) {
        // ALTER TABLE ADD COLUMN takes neither an expression nor CURRENT_TIME/DATE/TIMESTAMP as default.
        bool constant_default = c.default_sql && c.default_sql->find('(') == std::string::npos &&
                                mktl::detail::ascii_upper(*c.default_sql).find("CURRENT_") == std::string::npos;
        bool simple = !c.primary_key && !has_word(c.decl, "UNIQUE") && (!c.not_null || constant_default) &&
                      (!c.default_sql || constant_default);
        if (simple) {
          p.add_columns.emplace_back(table.name, &c);
          p.changes.push_back({table.name, "new column " + c.name + " " + c.decl, false, 0});
        } else {
          rebuild = true;
          p.changes.push_back({table.name, "new column " + c.name + " " + c.decl + " (needs the table rebuilt)", true, rows_now()});
        }
        continue;
      }
      if (normal_decl(it->type) != normal_decl(c.type)) {
        rebuild = true;
        p.changes.push_back({table.name, "column " + c.name + ": type " + (it->type.empty() ? "(none)" : it->type) + " -> " +
                                             (c.type.empty() ? "(none)" : c.type),
                             true,
                             count("SELECT COUNT(*) FROM " + quote(table.name) + " WHERE " + quote(c.name) + " IS NOT NULL")});
      } else if (it->exact && normal_decl(it->decl) != normal_decl(c.decl)) {
        rebuild = true;
        p.changes.push_back({table.name, "column " + c.name + ": " + it->decl + " -> " + c.decl, true, rows_now()});
      }
    }
    for (auto& o : old) {
      if (table.column(o.name) || o.name.rfind("_mkio_", 0) == 0) continue;
      rebuild = true;
      p.changes.push_back({table.name, "dropped column " + o.name, true,
                           count("SELECT COUNT(*) FROM " + quote(table.name) + " WHERE " + quote(o.name) + " IS NOT NULL")});
    }
    if (old_pk != table.primary_key) {
      rebuild = true;
      p.changes.push_back({table.name, "primary key (" + joined(old_pk) + ") -> (" + joined(table.primary_key) + ")", true,
                           rows_now()});
    }
    if (rebuild) p.rebuild.push_back(table.name);
  }
  for (auto& name : existing) {
    if (name.rfind("sqlite_", 0) == 0 || name.rfind("_mktl_", 0) == 0 || config.table(name)) continue;
    p.drop.push_back(name);
    p.changes.push_back({name, "dropped table", true, count("SELECT COUNT(*) FROM " + quote(name))});
  }
  return p;
}

std::vector<SchemaChange> migrate(sqlite3* db, const collections::Config& config, const TablesOptions& options) {
  const std::string& path = options.path;
  if (!sql::exec(db,
                 "CREATE TABLE IF NOT EXISTS _mktl_schema (name TEXT PRIMARY KEY, columns TEXT NOT NULL, "
                 "primary_key TEXT NOT NULL)"))
    fail_open(path, "cannot create its own tables: " + errmsg(db));
  MigrationPlan p = plan_migration(db, config, path);
  bool lossy = std::any_of(p.changes.begin(), p.changes.end(), [](auto& c) { return c.lossy; });
  bool allowed = options.migrate || config.auto_migrate;
  if (lossy && !allowed) {
    std::string text = "the tables in " + path + " need changes that can lose data:";
    for (auto& c : p.changes)
      if (c.lossy) text += "\n  - " + c.text();
    text += "\nback up the file, then run markd with --migrate (or set auto_migrate = true) to apply them; or change "
            "the configuration back";
    throw ConfigError(options.source, "/tables", text);
  }
  if (!p.changes.empty()) {
    if (!sql::exec(db, "BEGIN IMMEDIATE")) fail_open(path, "cannot begin the migration: " + errmsg(db));
    try {
      auto run_sql = [&](const std::string& text) {
        if (!sql::exec(db, text)) throw RuntimeError(text + ": " + errmsg(db));
      };
      for (auto& name : p.drop) run_sql("DROP TABLE " + quote(name));
      for (auto& name : p.create) run_sql(create_sql(*config.table(name), name));
      for (auto& [name, column] : p.add_columns)
        if (std::find(p.rebuild.begin(), p.rebuild.end(), name) == p.rebuild.end())
          run_sql("ALTER TABLE " + quote(name) + " ADD COLUMN " + quote(column->name) + " " + column->decl);
      for (auto& name : p.rebuild) {
        const Table& table = *config.table(name);
        std::vector<std::string> pk;
        auto old = old_columns(db, path, name, pk);
        std::string common;
        for (auto& c : table.columns)
          if (std::any_of(old.begin(), old.end(), [&](auto& o) { return o.name == c.name; }))
            common += (common.empty() ? "" : ", ") + quote(c.name);
        std::string fresh = "_mktl_new_" + name;
        run_sql(create_sql(table, fresh));
        if (!common.empty())
          run_sql("INSERT INTO " + quote(fresh) + " (" + common + ") SELECT " + common + " FROM " + quote(name));
        run_sql("DROP TABLE " + quote(name));
        run_sql("ALTER TABLE " + quote(fresh) + " RENAME TO " + quote(name));
      }
      for (auto& name : p.drop) run_sql("DELETE FROM _mktl_schema WHERE name = '" + name + "'");
      if (!sql::exec(db, "COMMIT")) throw RuntimeError("commit: " + errmsg(db));
    } catch (const std::exception& e) {
      if (!sqlite3_get_autocommit(db)) sql::exec(db, "ROLLBACK");
      fail_open(path, std::string("the migration failed and was rolled back, the file is as it was: ") + e.what());
    }
    for (auto& c : p.changes) tables_log().info("{}: {}", path, c.text());
  }
  record_schema(db, config, path);
  return std::move(p.changes);
}

}  // namespace mktl::persist
