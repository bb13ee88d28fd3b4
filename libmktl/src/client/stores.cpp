// Where a Client finds stores: discovery, the table of where each key lives,
// the retry of stale locations and the relocation of daemons that moved. See
// stores.hpp for what it does and its threading promise.
#include "client/client_impl.hpp"
#include "common/thread_name.hpp"

#include "config/logger.hpp"
#include "discovery/avahi.hpp"
#include "discovery/cache.hpp"

#include <mktl/catalog.hpp>

#include <exception>
#include <future>
#include <utility>

namespace mktl {

namespace {
using detail::ascii_lower;
using detail::store_of;
using detail::Where;

// Where to reach a block: the first provenance entry that has `pub`.
std::optional<Where> block_address(const Json& block, const std::string& host_override = {}) {
  auto prov = block.find("provenance");
  if (prov == block.end() || !prov->is_array()) return std::nullopt;
  for (auto& p : *prov) {
    if (!p.is_object() || !p.contains("pub") || !p.contains("rep")) continue;
    std::string host = host_override.empty() ? p.value("hostname", std::string("localhost")) : host_override;
    Where w;
    w.rep = "tcp://" + host + ":" + std::to_string(p["rep"].get<long>());
    w.pub = "tcp://" + host + ":" + std::to_string(p["pub"].get<long>());
    if (auto c = p.find("curve"); c != p.end() && c->is_string()) w.curve = c->get<std::string>();
    return w;
  }
  return std::nullopt;
}

// A host for a tcp:// endpoint: IPv6 addresses in brackets.
std::string endpoint_host(const std::string& address) {
  return address.find(':') != std::string::npos && address.front() != '[' ? "[" + address + "]" : address;
}

std::string host_of(const std::string& endpoint) {
  auto start = endpoint.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < start) return endpoint.substr(start);
  return endpoint.substr(start, colon - start);
}

// The port of a tcp:// endpoint, as text ("" without one).
std::string port_of(const std::string& endpoint) {
  auto colon = endpoint.rfind(':');
  return colon == std::string::npos ? std::string() : endpoint.substr(colon + 1);
}

}  // namespace

// ---- the store table --------------------------------------------------------

void Client::Impl::cache_block(const std::string& store, const Json& block) {
  if (!options.use_cache) return;
  try {
    discovery::write_cached_block(home, store, block);
  } catch (const std::exception& e) {
    logger("mktl.client")->debug("cannot cache the catalog of {}: {}", store, e.what());
  }
}

void Client::Impl::learn(const std::string& store, const Json& blocks, const std::string& host_override, bool save,
                         bool validated) {
  bool new_keys = false;
  {
    std::lock_guard lock(mutex);
    auto& info = stores[store];
    info.validated = validated;
    for (auto& [uuid, block] : blocks.items()) {
      if (!block.is_object()) continue;
      info.blocks[uuid] = block;
      if (!host_override.empty()) info.host_override[uuid] = host_override;
      auto ho = info.host_override.count(uuid) ? info.host_override[uuid] : std::string();
      auto where = block_address(block, ho);
      if (where && keys->learn(store, where->rep, where->pub, where->curve)) new_keys = true;
      if (where && block.contains("items") && block["items"].is_object())
        for (auto& [key, desc] : block["items"].items()) info.by_key[key] = *where;
      if (save) cache_block(store, block);
    }
  }
  if (new_keys) engine->keys_changed();
}

void Client::Impl::check_cached(const std::string& store, Client& client) {
  {
    std::lock_guard lock(mutex);
    auto it = stores.find(store);
    if (it != stores.end() && it->second.validated) return;
  }
  client.find_store(store);  // what locate() would do for a store it does not know, the cache checked
}

bool Client::Impl::knows(const std::string& store) {
  std::lock_guard lock(mutex);
  return stores.count(store) > 0;
}

bool Client::Impl::load_cache(const std::string& store) {
  if (!options.use_cache) return false;
  Json blocks = discovery::read_cached_blocks(home, store);
  if (blocks.empty()) return false;
  learn(store, blocks, {}, false, false);
  return true;
}

// ---- finding stores on the network ------------------------------------------

discovery::Config Client::Impl::discovery_config() const {
  auto config = discovery::Config::from_env(home);
  if (!options.broadcast_address.empty()) config.broadcast = options.broadcast_address;
  if (options.registry_port > 0) config.registry_port = options.registry_port;
  return config;
}

Client::Impl::Answered Client::Impl::call_udp() {
  auto config = discovery_config();
  discovery::Config broadcast_only = config;
  broadcast_only.hosts.clear();
  auto daemons = std::async(std::launch::async, [&] {
    return discovery::call(broadcast_only, config.daemon_port, options.discovery_timeout);
  });
  Answered answered;
  try {
    answered.registries = discovery::call(config, config.registry_port, options.discovery_timeout);
  } catch (...) {
    daemons.wait();  // it uses `config`
    throw;
  }
  answered.daemons = daemons.get();
  return answered;
}

Json Client::Impl::ask_found(const std::string& endpoint, const std::string& target, const std::string& store) {
  auto ask = [&] { return request(endpoint, protocol::MessageType::GET, target, nullptr, 2.0); };
  // With the store's pinned key, else the one for all; a daemon that does
  // not answer with it is not taken to hold it.
  auto with_pinned_key = [&] {
    keys->pin_endpoint(endpoint, store);
    try {
      return ask();
    } catch (const TimeoutError&) {
      keys->forget(endpoint);
      throw;
    }
  };
  if (const std::string pin = keys->pinned_for(store); !pin.empty()) {
    // With the store's key only, never in plain text. A daemon known with
    // another key is another store's: it is not asked.
    if (auto known = keys->known_key(endpoint); known && !known->empty())
      return *known == pin ? ask() : Json::object();
    return with_pinned_key();
  }
  if (!keys->could_pin(endpoint)) return ask();  // known to need CURVE, or no pinned key to try
  // A daemon last seen plain is asked in plain text first; others with CURVE.
  const bool plain_first = keys->known_plain(endpoint);
  try {
    return plain_first ? ask() : with_pinned_key();
  } catch (const TimeoutError& e) {
    logger("mktl.client")->debug("{} did not answer {} ({}); asking {}", endpoint,
                                 plain_first ? "in plain text" : "over CURVE with the pinned key", e.what(),
                                 plain_first ? "over CURVE with the pinned key" : "in plain text");
  }
  return plain_first ? with_pinned_key() : ask();
}

Json Client::Impl::ask_given(const std::string& endpoint, const std::string& target, const std::string& store) {
  auto ask = [&] { return request(endpoint, protocol::MessageType::GET, target, nullptr, {}); };
  if (!keys->can_pin(store)) return ask();
  keys->pin_endpoint(endpoint, store);
  std::string over_curve;
  try {
    return ask();
  } catch (const TimeoutError& e) {
    logger("mktl.client")->debug("{} did not answer {} over CURVE with the pinned key ({}); asking in plain text",
                                 endpoint, target, e.what());
    over_curve = e.what();
    keys->forget(endpoint);
  }
  try {
    return ask();
  } catch (const TimeoutError&) {
    throw TimeoutError(over_curve);  // why the pinned key did not work says more than plain text's failure
  }
}

bool Client::Impl::ask_registries(const std::string& store, const std::vector<discovery::Found>& registries) {
  for (auto& registry : registries) {
    std::string endpoint = "tcp://" + registry.address + ":" + std::to_string(registry.rep_port);
    try {
      Json blocks = request(endpoint, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0).value("value", Json::object());
      if (blocks.is_object() && !blocks.empty()) {
        learn(store, blocks, {}, true);
        return true;
      }
    } catch (const Error& e) {
      logger("mktl.client")->debug("registry {} does not know {}: {}", endpoint, store, e.what());
    }
  }
  return false;
}

bool Client::Impl::ask_daemons(const std::string& store, const std::vector<discovery::Found>& daemons) {
  bool found = false;
  for (auto& daemon : daemons) {
    std::string endpoint = "tcp://" + daemon.address + ":" + std::to_string(daemon.rep_port);
    try {
      Json hashes = ask_found(endpoint, "_hash", store).value("value", Json());
      if (!hashes.is_object() || !hashes.contains(store)) continue;
      Json blocks = request(endpoint, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0)
                        .value("value", Json());
      if (blocks.is_object() && !blocks.empty()) {
        learn(store, blocks, daemon.address, true);
        found = true;
      }
    } catch (const Error& e) {
      logger("mktl.client")->debug("daemon {} did not tell its blocks of {}: {}", endpoint, store, e.what());
    }
  }
  return found;
}

bool Client::Impl::ask_avahi(const std::string& store) {
  if (options.dns_sd_timeout <= 0) return false;
  bool found = false;
  for (auto& service : discovery::avahi_browse(options.dns_sd_timeout)) {
    auto it = service.txt.find("store");
    if (it == service.txt.end() || ascii_lower(it->second) != store || service.address.empty() || service.port <= 0)
      continue;
    std::string host = endpoint_host(service.address);
    std::string endpoint = "tcp://" + host + ":" + std::to_string(service.port);
    try {
      Json blocks = ask_found(endpoint, store + "._catalog", store).value("value", Json());
      if (blocks.is_object() && !blocks.empty()) {
        learn(store, blocks, host, true);
        found = true;
      }
    } catch (const Error& e) {
      logger("mktl.client")->debug("DNS-SD service {} at {} did not tell its blocks of {}: {}", service.name,
                                   endpoint, store, e.what());
    }
  }
  return found;
}

bool Client::Impl::ask_network(const std::string& store) {
  const Answered answered = call_udp();
  return ask_registries(store, answered.registries) || ask_daemons(store, answered.daemons) || ask_avahi(store);
}

// ---- daemons that move ------------------------------------------------------

void Client::Impl::start_relocator() {
  if (!relocator.joinable() && !stopping)
    relocator = std::jthread([this](std::stop_token stop) { relocate_loop(stop); });
}

void Client::Impl::on_publisher(const std::string& pub, bool reachable) {
  {
    std::lock_guard lock(relocate_mutex);
    if (reachable) {
      lost_pubs.erase(pub);
      return;
    }
    lost_pubs.insert(pub);
    start_relocator();
  }
  relocate_cv.notify_all();
}

void Client::Impl::on_unacknowledged(const std::string& rep) {
  {
    std::lock_guard lock(relocate_mutex);
    if (!suspect_reps.insert(rep).second) return;
    start_relocator();
  }
  relocate_cv.notify_all();
}

bool Client::Impl::relocate(const std::string& store, std::chrono::milliseconds every) {
  {
    std::lock_guard lock(mutex);
    auto it = stores.find(store);
    if (it == stores.end() || it->second.pinned) return false;
  }
  {
    std::lock_guard lock(relocate_mutex);
    auto now = std::chrono::steady_clock::now();
    auto& last = relocated[store];
    if (last != std::chrono::steady_clock::time_point() && now - last < every) return false;
    last = now;
  }
  logger("mktl.client")->debug("looking for the store {} again", store);
  return ask_network(store);
}

void Client::Impl::move_subscriptions(const std::set<std::string>& pubs) {
  std::set<std::string> still_used;
  std::vector<std::pair<std::string, std::string>> moved;  // key, its daemon's rep
  {
    std::lock_guard lock(mutex);
    for (auto& [key, pub] : sub_endpoint) {
      if (!pubs.count(pub)) continue;
      auto target = protocol::split_target(key);
      auto it = target ? stores.find(ascii_lower(target->store)) : stores.end();
      if (it == stores.end()) continue;
      auto k = it->second.by_key.find(ascii_lower(target->key));
      if (k == it->second.by_key.end() || k->second.pub == pub) {
        still_used.insert(pub);
        continue;
      }
      logger("mktl.client")->info("{}: broadcasts now from {} (was {})", key, k->second.pub, pub);
      // Posted under the lock, so that a concurrent cancel() unsubscribes
      // from wherever the key is subscribed at that moment.
      engine->subscribe(k->second.pub, protocol::topic(key));
      engine->unsubscribe(pub, protocol::topic(key));
      pub = k->second.pub;
      moved.emplace_back(key, k->second.rep);
    }
  }
  // What was broadcast while the subscription was away is not sent again:
  // the current value is asked for and handed to the callbacks instead.
  for (auto& [key, rep] : moved) {
    try {
      auto answer = exchange(rep, protocol::MessageType::GET, key, std::string(), 2.0);
      Event ev{key, std::move(answer.payload), std::move(answer.bulk)};
      ev.refreshed = true;
      post_event(std::move(ev));
    } catch (const std::exception& e) {
      logger("mktl.client")->debug("{}: the value after the move was not read: {}", key, e.what());
    }
  }
  std::lock_guard lock(relocate_mutex);
  for (auto& pub : pubs)
    if (!still_used.count(pub)) lost_pubs.erase(pub);
}

void Client::Impl::relocate_loop(std::stop_token stop) {
  mktl::detail::name_this_thread("mktl-relocate");
  std::unique_lock lock(relocate_mutex);
  while (!stop.stop_requested()) {
    relocate_cv.wait(lock, stop, [&] { return !lost_pubs.empty() || !suspect_reps.empty(); });
    if (stop.stop_requested()) return;
    std::set<std::string> pubs = lost_pubs;
    std::set<std::string> reps = std::exchange(suspect_reps, {});
    lock.unlock();
    std::set<std::string> wanted, suspect;
    {
      std::lock_guard data(mutex);
      for (auto& [key, pub] : sub_endpoint)
        if (pubs.count(pub)) wanted.insert(ascii_lower(store_of(key)));
      for (auto& [store, info] : stores)
        for (auto& [key, where] : info.by_key)
          if (reps.count(where.rep)) {
            suspect.insert(store);
            break;
          }
    }
    try {
      // A lost publisher is looked for at every turn; a store is looked for
      // because of failed requests at most once a second.
      for (auto& store : wanted)
        if (!stop.stop_requested()) relocate(store, std::chrono::milliseconds(0));
      for (auto& store : suspect)
        if (!stop.stop_requested() && !wanted.count(store)) relocate(store, kRelocateRequestsEvery);
      move_subscriptions(pubs);
    } catch (const std::exception& e) {
      logger("mktl.client")->warn("looking for moved daemons failed: {}", e.what());
    }
    lock.lock();
    if (!lost_pubs.empty())
      relocate_cv.wait_for(lock, stop, kRelocateEvery, [&] { return !suspect_reps.empty(); });
  }
}

// ---- where a key lives ------------------------------------------------------

Where Client::Impl::locate(const std::string& full_key, Client& client) {
  return locate(full_key, client, [](const Where& where) { return where; });
}

// ---- the stores of a Client -------------------------------------------------

std::vector<std::string> Client::connect(const std::string& rep_endpoint, const std::string& store_name) {
  std::vector<std::string> stores;
  if (!store_name.empty()) {
    stores.push_back(ascii_lower(store_name));
  } else {
    Json hashes = impl_->ask_given(rep_endpoint, "_hash", {}).value("value", Json::object());
    for (auto& [store, blocks] : hashes.items()) stores.push_back(store);
  }
  std::string host = host_of(rep_endpoint);
  if (host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  for (auto& store : stores) {
    Json reply = impl_->ask_given(rep_endpoint, store + "._catalog", store);
    // The block of the daemon at this address (its own request port) is
    // reached at the host given, which works from here whatever host name
    // the daemon announces; a block a registry at this address relays, at
    // the host it names.
    const Json blocks = reply.value("value", Json::object());
    Json own = Json::object(), relayed = Json::object();
    for (auto& [uuid, block] : blocks.items()) {
      auto where = block_address(block);
      (where && port_of(where->rep) == port_of(rep_endpoint) ? own : relayed)[uuid] = block;
    }
    impl_->learn(store, own, host, true);
    if (!relayed.empty()) impl_->learn(store, relayed, {}, true);
    std::lock_guard lock(impl_->mutex);
    impl_->stores[store].pinned = true;
  }
  return stores;
}

void Client::find_store(const std::string& store_name) {
  std::string store = ascii_lower(store_name);
  auto log = logger("mktl.client");
  // Why the first cached daemon that did not answer failed: when nobody else
  // knows the store either, that is what the caller is told (the daemon is
  // stopped or hung), rather than that the store is unknown.
  std::string unanswered;
  // 1. The cache, revalidated by hash with each block's daemon.
  if (impl_->load_cache(store)) {
    Json blocks;
    {
      std::lock_guard lock(impl_->mutex);
      blocks = impl_->stores[store].blocks;
      impl_->stores.erase(store);
    }
    bool all_good = true;
    for (auto& [uuid, block] : blocks.items()) {
      auto where = block_address(block);
      if (where && impl_->keys->learn(store, where->rep, where->pub, where->curve)) impl_->engine->keys_changed();
      if (!where) {
        all_good = false;
        continue;
      }
      try {
        Json hashes = impl_->request(where->rep, protocol::MessageType::GET, store + "._hash", nullptr, 2.0).value("value", Json::object());
        Json current = hashes[store][uuid];
        if (current == block["hash"]) {
          impl_->learn(store, Json{{uuid, block}}, {}, false);
        } else {
          Json fresh = impl_->request(where->rep, protocol::MessageType::GET, store + "._catalog", nullptr, 2.0).value("value", Json::object());
          impl_->learn(store, fresh, {}, true);
        }
      } catch (const Error& e) {
        // It requires CURVE and this client has no key: asking elsewhere cannot help.
        if (e.type() == "PermissionError") throw;
        log->debug("cached block {} of {} did not revalidate: {}", uuid, store, e.what());
        if (unanswered.empty() && e.type() == "TimeoutError") {
          // "TARGET @ ENDPOINT: why" -> "its daemon at ENDPOINT (from the cache) did not answer: why"
          std::string why = e.what();
          const std::string at = " @ " + where->rep + ": ";
          if (auto p = why.find(at); p != std::string::npos) why.erase(0, p + at.size());
          unanswered = "its daemon at " + where->rep + " (from the cache) did not answer: " + why;
        }
        all_good = false;
      }
    }
    if (all_good && impl_->knows(store)) return;
  }
  // 2. Registries (listed in $MKTL_HOME/client/registries, or found by
  // broadcast), 3. else the daemons that answer discovery, 4. else DNS-SD.
  if (impl_->ask_network(store)) return;
  // Some cached blocks revalidated, and nobody knows of others.
  if (impl_->knows(store)) return;
  if (!unanswered.empty())
    throw TimeoutError("store '" + store + "': " + unanswered + "; no registry or other daemon knows the store");
  throw KeyError::python("no daemon or registry knows the store '" + store + "'");
}

std::vector<std::string> Client::discover() {
  std::set<std::string> stores;
  // A daemon found by broadcast, as ask_found() asks it, then with each key
  // pinned per store: a CURVE daemon with a key of its own answers that key
  // only.
  auto ask_daemon = [this](const std::string& endpoint) {
    try {
      return impl_->ask_found(endpoint, "_hash");
    } catch (const TimeoutError&) {
      for (const auto& store : impl_->keys->pinned_stores()) {
        try {
          Json answer = impl_->ask_found(endpoint, "_hash", store);
          if (!answer.empty()) return answer;
        } catch (const TimeoutError&) {
        }
      }
      throw;
    }
  };
  const auto answered = impl_->call_udp();
  for (const auto* list : {&answered.registries, &answered.daemons}) {
    for (auto& found : *list) {
      std::string endpoint = "tcp://" + found.address + ":" + std::to_string(found.rep_port);
      try {
        // Registries are plain; a daemon may require CURVE.
        Json hashes = (list == &answered.daemons ? ask_daemon(endpoint)
                                                 : impl_->request(endpoint, protocol::MessageType::GET, "_hash",
                                                                  nullptr, 2.0))
                          .value("value", Json::object());
        for (auto& [store, blocks] : hashes.items()) stores.insert(store);
      } catch (const Error& e) {
        logger("mktl.client")->debug("{} did not answer _hash: {}", endpoint, e.what());
      }
    }
  }
  if (impl_->options.dns_sd_timeout > 0)
    for (auto& service : discovery::avahi_browse(impl_->options.dns_sd_timeout))
      if (auto it = service.txt.find("store"); it != service.txt.end() && !it->second.empty())
        stores.insert(ascii_lower(it->second));
  return {stores.begin(), stores.end()};
}

Json Client::blocks(const std::string& store_name) {
  std::string store = ascii_lower(store_name);
  if (!impl_->knows(store) && !impl_->load_cache(store)) find_store(store);
  std::lock_guard lock(impl_->mutex);
  return impl_->stores[store].blocks;
}

Json Client::items(const std::string& store) {
  Json out = Json::object();
  // Held in a variable: a range-for over blocks(store).items() would iterate a dead temporary.
  Json all = blocks(store);
  for (auto& [uuid, block] : all.items())
    if (block.contains("items") && block["items"].is_object())
      for (auto& [key, desc] : block["items"].items()) out[key] = desc;
  return out;
}

Json Client::description(const std::string& full_key) {
  auto t = protocol::split_target(full_key);
  if (!t) throw ValueError("expected 'store.key', got '" + full_key + "'");
  std::string store = ascii_lower(t->store), key = ascii_lower(t->key);
  Json all = items(store);
  auto it = all.find(key);
  if (it != all.end()) return *it;
  // Perhaps a block of another daemon of this store that the cache has not seen.
  if (impl_->ask_network(store)) {
    all = items(store);
    it = all.find(key);
    if (it != all.end()) return *it;
  }
  throw KeyError::python("store '" + store + "' has no key '" + key + "'");
}

}  // namespace mktl
