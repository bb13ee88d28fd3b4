// TOML -> JSON with toml++, and the configuration-file readers of
// mktl/config_file.hpp built on it.
#include "collections/toml.hpp"

#include <mktl/catalog.hpp>
#include <mktl/config_file.hpp>
#include <mktl/error.hpp>

#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace mktl {
namespace collections::detail {

namespace {

int line_of(const toml::source_region& region) { return static_cast<int>(region.begin.line); }

template <class T>
std::string printed(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

Json convert(const toml::node& node, const std::string& pointer, LineMap* lines) {
  if (lines && line_of(node.source()) > 0 && !lines->count(pointer)) (*lines)[pointer] = line_of(node.source());
  switch (node.type()) {
    case toml::node_type::table: {
      Json out = Json::object();
      for (const auto& [key, value] : *node.as_table()) {
        const std::string child = pointer + "/" + pointer_token(key.str());
        // The key's own line first: for a [header] table that is the header.
        if (lines && line_of(key.source()) > 0) (*lines)[child] = line_of(key.source());
        out[std::string(key.str())] = convert(value, child, lines);
      }
      return out;
    }
    case toml::node_type::array: {
      Json out = Json::array();
      std::size_t index = 0;
      for (const toml::node& element : *node.as_array())
        out.push_back(convert(element, pointer + "/" + std::to_string(index++), lines));
      return out;
    }
    case toml::node_type::string: return Json(node.as_string()->get());
    case toml::node_type::integer: return Json(node.as_integer()->get());
    case toml::node_type::floating_point: return Json(node.as_floating_point()->get());
    case toml::node_type::boolean: return Json(node.as_boolean()->get());
    case toml::node_type::date: return Json(printed(node.as_date()->get()));
    case toml::node_type::time: return Json(printed(node.as_time()->get()));
    case toml::node_type::date_time: return Json(printed(node.as_date_time()->get()));
    case toml::node_type::none: break;
  }
  return Json(nullptr);
}

}  // namespace

std::string pointer_token(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out.push_back(c);
  }
  return out;
}

Json toml_to_json(const std::string& text, const std::string& source, LineMap* lines) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw ConfigError(source, "line " + std::to_string(at.line) + ", column " + std::to_string(at.column),
                      "invalid TOML: " + std::string(e.description()));
  }
  return convert(root, "", lines);
}

bool is_toml_path(std::string_view path) {
  if (path.size() < 5) return false;
  std::string tail(path.substr(path.size() - 5));
  for (char& c : tail) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return tail == ".toml";
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, "", std::string("cannot read the file: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path, "", "cannot read the file");
  return text.str();
}

}  // namespace collections::detail

Json load_config_file(const std::string& path) {
  if (!collections::detail::is_toml_path(path)) return load_json_file(path);
  return collections::detail::toml_to_json(collections::detail::read_text_file(path), path, nullptr);
}

bool is_mkio_top_level_key(std::string_view key) {
  static const char* const keys[] = {"tables", "services", "db_path", "batch_max_size", "batch_max_wait_ms",
                                     "change_log_size", "auto_migrate", "host", "port", "wal_checkpoint_interval_s",
                                     "backup_on_startup", "backup_dir", "static", "config", "shutdown_timeout",
                                     "name", "version"};
  if (!key.empty() && key.front() == '_') return true;  // mkio skips these without a word
  for (const char* k : keys)
    if (key == k) return true;
  return false;
}

DaemonConfig load_daemon_config(const std::string& path) {
  const bool toml = collections::detail::is_toml_path(path);
  Json document = load_config_file(path);
  DaemonConfig out;
  if (!document.is_object()) {
    out.items = std::move(document);  // normalise_items says what is wrong
    return out;
  }
  bool daemon_config = toml;
  if (!toml) {
    const bool has_collections = (document.contains("services") && document["services"].is_object()) ||
                                 (document.contains("tables") && document["tables"].is_object());
    bool only_known = true;
    for (const auto& [key, value] : document.items())
      if (key != "items" && !is_mkio_top_level_key(key)) only_known = false;
    // {"items": {key: description, ...}} alone is a daemon configuration
    // with no tables yet, not one item called "items": its members are all
    // objects and none is a "type".
    bool items_wrapper = false;
    if (auto it = document.find("items"); it != document.end() && it->is_object() && !it->empty() &&
                                          !it->contains("type")) {
      items_wrapper = true;
      for (const auto& [key, value] : it->items())
        if (!value.is_object()) items_wrapper = false;
    }
    daemon_config = (has_collections || items_wrapper) && only_known;
  }
  if (!daemon_config) {
    out.items = std::move(document);
    return out;
  }
  if (document.contains("items")) {
    out.items = std::move(document["items"]);
    document.erase("items");
    if (!out.items.is_object())
      throw ConfigError(path, "/items", "expected an object of items {key: description}, got " + std::string(out.items.type_name()));
  }
  if (!document.empty()) out.collections = std::move(document);
  return out;
}

}  // namespace mktl
