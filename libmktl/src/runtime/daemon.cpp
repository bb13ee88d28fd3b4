#include "runtime/builtins.hpp"
#include "common/text.hpp"
#include "collections/host.hpp"
#include "runtime/runtime.hpp"

#include "config/logger.hpp"
#include "discovery/announce.hpp"
#include "discovery/avahi.hpp"
#include "discovery/cache.hpp"
#include "discovery/udp.hpp"
#include "security/policy.hpp"

#include <mktl/catalog.hpp>
#include <mktl/daemon.hpp>
#include <mktl/error.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cctype>
#include <condition_variable>
#include <filesystem>
#include <fstream>

namespace mktl {

namespace {
using mktl::detail::ascii_lower;

std::string this_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

void check_name(const std::string& what, const std::string& name) {
  if (name.empty()) throw ConfigError({}, {}, what + " must not be empty");
  for (char c : name)
    if (c == '.' || std::isspace(static_cast<unsigned char>(c)) || c == '/')
      throw ConfigError({}, {}, what + " '" + name + "' must not contain '.', '/' or whitespace");
}

}  // namespace

struct Daemon::Impl {
  std::string store, alias, source;
  DaemonOptions options;
  Json items;
  std::string uuid;
  std::string hostname;
  Json hash;
  double block_time = 0;
  std::unordered_map<std::string, std::unique_ptr<Item>> item_map;
  std::unique_ptr<detail::Runtime> runtime;
  std::unique_ptr<collections::Host> collections;  // tables and services, when configured
  std::unique_ptr<discovery::Responder> responder;
  std::unique_ptr<discovery::AvahiPublisher> avahi;
  std::shared_ptr<const security::Policy> security;  // null: plain sockets
  mutable std::mutex mutex;
  std::condition_variable stopped_cv;
  bool started = false;
  bool stopped = false;
  std::shared_ptr<spdlog::logger> log = logger("mktl.runtime");
};

Daemon::Daemon(std::string store, std::string alias, Json items, DaemonOptions options, std::string source)
    : impl_(std::make_unique<Impl>()) {
  auto& I = *impl_;
  I.store = ascii_lower(std::move(store));
  I.alias = ascii_lower(std::move(alias));
  check_name("store", I.store);
  check_name("alias", I.alias);
  I.source = std::move(source);
  I.options = std::move(options);
  if (I.options.home.empty()) I.options.home = mktl_home();
  if (!I.options.collections.is_null()) {
    I.collections = std::make_unique<collections::Host>(I.options.collections, I.options.collections_source);
    if (items.is_null()) items = Json::object();
    if (items.is_object()) {
      const Json added = I.collections->descriptions();  // held: items() of a temporary would dangle
      for (auto& [key, description] : added.items()) {
        for (auto& [existing, unused] : items.items())
          if (ascii_lower(existing) == key)
            throw ConfigError(I.options.collections_source, "/services",
                              "the service item '" + key + "' has the name of an item of the catalog " +
                                  (I.source.empty() ? std::string() : I.source + " ") +
                                  "; rename the service or the item");
        items[key] = description;
      }
    }
  }
  I.items = normalise_items(items, I.source);
  I.hostname = I.options.hostname.empty() ? this_hostname() : I.options.hostname;
  I.uuid = daemon_uuid(I.options.home, I.store, I.alias);
  detail::add_builtin_descriptions(I.items, I.alias);
  I.hash = items_hash(I.items);
  I.runtime = std::make_unique<detail::Runtime>(*this, I.options);
  const auto& sec = I.options.security;
  if (sec.curve || !sec.clients.empty() || !sec.acl.empty()) {
    I.security = std::make_shared<const security::Policy>(sec, I.store, I.options.home, I.options.security_source);
    I.runtime->set_security(I.security);
  }

  // `time` moves only when the hash does: remember when this hash was first seen.
  namespace fs = std::filesystem;
  fs::path stamp = fs::path(I.options.home) / "daemon" / "store" / I.store / (I.alias + ".hash");
  std::string digits = json::dump(I.hash);
  I.block_time = now();
  std::ifstream in(stamp);
  std::string old_digits;
  double old_time = 0;
  if (in >> old_digits >> old_time && old_digits == digits) {
    I.block_time = old_time;
  } else {
    std::error_code ec;
    fs::create_directories(stamp.parent_path(), ec);
    errno = 0;
    std::ofstream out(stamp, std::ios::trunc);
    out.precision(17);
    out << digits << ' ' << I.block_time << '\n';
    out.close();
    if (!out) {
      std::string why = ec ? ec.message() : errno != 0 ? std::strerror(errno) : "write failed";
      I.log->warn("{}.{}: cannot record the catalog's time in {}: {} (its time will change at every start)", I.store,
                  I.alias, stamp.string(), why);
    }
  }
}

Daemon::~Daemon() {
  // Nothing may leave a destructor: say what went wrong instead.
  try {
    stop();
  } catch (const std::exception& e) {
    impl_->log->error("{}.{}: stopping the daemon failed: {}", impl_->store, impl_->alias, e.what());
  } catch (...) {
    impl_->log->error("{}.{}: stopping the daemon failed: unknown exception", impl_->store, impl_->alias);
  }
  // Items go before the runtime's remains, which they may still point into.
  impl_->item_map.clear();
}

void Daemon::adopt(std::unique_ptr<Item> item) {
  auto& I = *impl_;
  std::lock_guard lock(I.mutex);
  if (I.started) throw RuntimeError("add_item after start(): add items in setup()");
  I.item_map[item->key()] = std::move(item);
}

void Daemon::start() {
  auto& I = *impl_;
  {
    std::lock_guard lock(I.mutex);
    if (I.started) return;
  }
  detail::add_builtin_items(*this);
  setup();
  if (I.collections) I.collections->start(*this);
  for (auto& [key, desc] : I.items.items())
    if (!I.item_map.count(key)) I.item_map[key] = std::make_unique<Item>(*this, key);

  // Initial values (no validation, as the reference); persisted values win, restored by the runtime.
  for (auto& [key, item] : I.item_map) {
    auto it = item->description().find("initial");
    if (it != item->description().end() && item->current().time == 0.0) item->publish(*it);
  }
  {
    std::lock_guard lock(I.mutex);
    I.started = true;
  }
  I.runtime->start(I.item_map);
  detail::publish_catalog_item(*this);
  setup_final();
  // The block is final (its ports are known): into the client catalog cache,
  // as the reference's daemon does, so that clients on this host (ours and
  // the reference's) find the store from disk. Not fatal: discovery still works.
  try {
    discovery::write_cached_block(I.options.home, I.store, catalog_block());
  } catch (const std::exception& e) {
    I.log->warn("{}.{}: the catalog is not in the client cache: {}", I.store, I.alias, e.what());
  }
  if (I.options.discovery) {
    try {
      start_discovery();
    } catch (...) {
      I.runtime->stop();
      throw;
    }
  }
  I.log->info("{}.{} serving {} items: rep {} pub {}", I.store, I.alias, I.item_map.size(), rep_endpoint(),
              pub_endpoint());
}

void Daemon::start_discovery() {
  auto& I = *impl_;
  auto config = discovery::Config::from_env(I.options.home);
  I.responder = std::make_unique<discovery::Responder>(config.daemon_port, rep_port());
  // A registry that rejects this block aborts the start, with its reason.
  double wait = 0.25;  // registries answer within milliseconds on a LAN
  if (const char* t = std::getenv("MKTL_DISCOVERY_TIMEOUT")) wait = std::atof(t);
  int registries = discovery::announce(catalog_block(), config, I.options.override_registry, wait);
  I.log->info("{}.{}: announced to {} registr{}", I.store, I.alias, registries, registries == 1 ? "y" : "ies");
  if (I.options.avahi) {
    try {
      I.avahi = std::make_unique<discovery::AvahiPublisher>(I.store, I.alias, I.uuid, rep_port(), pub_port());
    } catch (const std::exception& e) {
      I.log->info("not published by DNS-SD: {}", e.what());
    }
  }
}

void Daemon::run() {
  start();
  std::unique_lock lock(impl_->mutex);
  impl_->stopped_cv.wait(lock, [&] { return impl_->stopped; });
}

void Daemon::stop() {
  auto& I = *impl_;
  {
    std::lock_guard lock(I.mutex);
    if (!I.started || I.stopped) {
      I.stopped = true;
      I.stopped_cv.notify_all();
      return;
    }
  }
  I.avahi.reset();
  if (I.responder) I.responder->stop();
  I.runtime->stop();
  std::lock_guard lock(I.mutex);
  I.stopped = true;
  I.stopped_cv.notify_all();
}

bool Daemon::running() const { return impl_->runtime && impl_->runtime->running(); }

Item& Daemon::item(const std::string& key) {
  if (auto* i = find_item(key)) return *i;
  throw KeyError::python("this daemon does not contain '" + key + "'");
}

Item* Daemon::find_item(const std::string& key) {
  auto it = impl_->item_map.find(ascii_lower(key));
  return it == impl_->item_map.end() ? nullptr : it->second.get();
}

std::vector<std::string> Daemon::keys() const {
  std::vector<std::string> out;
  for (auto& [key, desc] : impl_->items.items()) out.push_back(key);
  return out;
}

const std::string& Daemon::store() const noexcept { return impl_->store; }
const std::string& Daemon::alias() const noexcept { return impl_->alias; }
const std::string& Daemon::uuid() const { return impl_->uuid; }
const DaemonOptions& Daemon::options() const noexcept { return impl_->options; }
const Json& Daemon::items() const noexcept { return impl_->items; }

Json Daemon::catalog_block() const {
  auto& I = *impl_;
  Json block = Json::object();
  block["store"] = I.store;
  block["alias"] = I.alias;
  block["uuid"] = I.uuid;
  block["time"] = I.block_time;
  block["hash"] = I.hash;
  Json prov = Json::object();
  prov["stratum"] = 0;
  prov["hostname"] = I.hostname;
  prov["rep"] = rep_port();
  prov["pub"] = pub_port();
  // Clients connect with CURVE to a daemon whose block names its public key.
  if (I.security) prov["curve"] = I.security->server().public_key;
  block["provenance"] = Json::array({prov});
  block["items"] = I.items;
  return block;
}

std::string Daemon::rep_endpoint() const {
  auto* s = impl_->runtime->server();
  return s ? s->rep_endpoint() : std::string();
}
std::string Daemon::pub_endpoint() const {
  auto* s = impl_->runtime->server();
  return s ? s->pub_endpoint() : std::string();
}
int Daemon::rep_port() const {
  auto* s = impl_->runtime->server();
  return s ? s->rep_port() : 0;
}
int Daemon::pub_port() const {
  auto* s = impl_->runtime->server();
  return s ? s->pub_port() : 0;
}

detail::Runtime& Daemon::runtime() { return *impl_->runtime; }

}  // namespace mktl
