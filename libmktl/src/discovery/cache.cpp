#include "discovery/cache.hpp"

#include "discovery/logger.hpp"

#include <mktl/error.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace mktl::discovery {

namespace fs = std::filesystem;

namespace {

fs::path cache_root(const std::string& home) { return fs::path(home) / "client" / "cache"; }

// A temporary name no other writer (process or thread) uses at the same time.
fs::path temporary_name(const fs::path& root, const std::string& store, const std::string& uuid) {
  static std::atomic<unsigned long> counter{0};
  return root / ("." + store + "." + uuid + "." + std::to_string(::getpid()) + "." +
                 std::to_string(counter.fetch_add(1)) + ".tmp");
}

}  // namespace

void write_cached_block(const std::string& home, const std::string& store, const Json& block) {
  auto uuid_field = block.is_object() ? block.find("uuid") : block.end();
  if (uuid_field == block.end() || !uuid_field->is_string() || uuid_field->get_ref<const std::string&>().empty())
    throw ValueError("cannot cache a catalog block of '" + store + "' without a uuid");
  const std::string& uuid = uuid_field->get_ref<const std::string&>();
  if (store.empty() || store.find('/') != std::string::npos || uuid.find('/') != std::string::npos)
    throw ValueError("cannot cache a catalog block as '" + store + "/" + uuid + "'");

  const fs::path root = cache_root(home);
  const fs::path dir = root / store;
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw RuntimeError("cannot make the catalog cache " + root.string() + ": " + ec.message());
  if (::mkdir(dir.c_str(), 0775) != 0 && errno != EEXIST)
    throw RuntimeError("cannot make the catalog cache " + dir.string() + ": " + std::strerror(errno));

  const fs::path temporary = temporary_name(root, store, uuid);
  {
    std::ofstream out(temporary, std::ios::trunc | std::ios::binary);
    out << json::dump(block);
    out.close();
    if (!out) {
      fs::remove(temporary, ec);
      throw RuntimeError("cannot write " + temporary.string());
    }
  }
  fs::permissions(temporary,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::group_write |
                      fs::perms::others_read,
                  ec);
  fs::rename(temporary, dir / (uuid + ".json"), ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw RuntimeError("cannot write " + (dir / (uuid + ".json")).string() + ": " + ec.message());
  }
}

Json read_cached_blocks(const std::string& home, const std::string& store) {
  Json blocks = Json::object();
  const fs::path dir = cache_root(home) / store;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return blocks;
  for (auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    try {
      std::ifstream in(entry.path(), std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      Json block = json::parse(text);
      if (!block.is_object() || !block.contains("uuid") || !block["uuid"].is_string())
        throw ValueError("not a catalog block");
      std::string uuid = block["uuid"].get<std::string>();
      blocks[uuid] = std::move(block);
    } catch (const std::exception& e) {
      log().debug("ignoring the cache file {}: {}", entry.path().string(), e.what());
    }
  }
  return blocks;
}

}  // namespace mktl::discovery
