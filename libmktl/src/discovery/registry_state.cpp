#include "discovery/registry_state.hpp"
#include "common/text.hpp"

#include "discovery/logger.hpp"

#include <mktl/error.hpp>

#include <algorithm>
#include <cctype>
#include <set>

namespace mktl::discovery {

namespace {
using mktl::detail::ascii_lower;

[[noreturn]] void invalid(const std::string& pointer, const std::string& problem) {
  throw ValueError("invalid catalog block: " + pointer + ": " + problem);
}

bool is_port(const Json& value) {
  return value.is_number_integer() && value.get<long long>() > 0 && value.get<long long>() < 65536;
}

bool same_origin(const Json& a, const Json& b) {
  if (a.at("hostname") != b.at("hostname") || a.at("rep") != b.at("rep")) return false;
  auto pa = a.find("pub");
  auto pb = b.find("pub");
  return pa == a.end() || pb == b.end() || *pa == *pb;
}

std::string origin_text(const Json& block) {
  const auto& origin = block.at("provenance").at(0);
  return origin.at("hostname").get<std::string>() + ":" + std::to_string(origin.at("rep").get<int>());
}

}  // namespace

RegistryState::RegistryState(std::string hostname, int rep_port, Liveness alive)
    : hostname_(std::move(hostname)), rep_port_(rep_port), alive_(std::move(alive)) {}

void RegistryState::validate(const Json& block) {
  if (!block.is_object()) invalid("", "expected a JSON object, not " + std::string(block.type_name()));
  for (const char* field : {"store", "alias", "uuid"}) {
    auto it = block.find(field);
    if (it == block.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
      invalid(std::string("/") + field, "expected a non-empty string");
  }
  if (block["store"].get_ref<const std::string&>().find('.') != std::string::npos)
    invalid("/store", "a store name cannot contain '.'");
  auto hash = block.find("hash");
  if (hash == block.end() || !(hash->is_number_integer() || json::is_bigint(*hash) || hash->is_string()))
    invalid("/hash", "expected an integer");
  auto time = block.find("time");
  if (time != block.end() && !time->is_number()) invalid("/time", "expected a number");

  auto provenance = block.find("provenance");
  if (provenance == block.end() || !provenance->is_array() || provenance->empty())
    invalid("/provenance", "expected a non-empty array");
  for (std::size_t i = 0; i < provenance->size(); ++i) {
    const auto& entry = (*provenance)[i];
    const std::string where = "/provenance/" + std::to_string(i);
    if (!entry.is_object()) invalid(where, "expected an object");
    auto stratum = entry.find("stratum");
    if (stratum == entry.end() || !stratum->is_number_integer() || stratum->get<long long>() < 0)
      invalid(where + "/stratum", "expected a non-negative integer");
    if (i == 0 && stratum->get<long long>() != 0) invalid(where + "/stratum", "the first entry must be stratum 0");
    auto hostname = entry.find("hostname");
    if (hostname == entry.end() || !hostname->is_string() || hostname->get_ref<const std::string&>().empty())
      invalid(where + "/hostname", "expected a non-empty string");
    auto rep = entry.find("rep");
    if (rep == entry.end() || !is_port(*rep)) invalid(where + "/rep", "expected a port number");
    auto pub = entry.find("pub");
    if (pub != entry.end() && !is_port(*pub)) invalid(where + "/pub", "expected a port number");
  }

  auto items = block.find("items");
  if (items == block.end() || !items->is_object()) invalid("/items", "expected an object");
  for (const auto& [key, description] : items->items())
    if (!description.is_object()) invalid("/items/" + key, "expected an object");
}

std::string RegistryState::describe(const Json& block) const {
  return block.at("alias").get<std::string>() + " (" + block.at("uuid").get<std::string>() + ")";
}

RegistryState::Outcome RegistryState::process(Json block, bool override) {
  std::lock_guard serial(process_mutex_);

  // The reference sends the override flag inside the block.
  if (block.is_object()) {
    if (auto flag = block.find("override"); flag != block.end()) {
      if (flag->is_boolean() && flag->get<bool>()) override = true;
      block.erase(flag);
    }
  }
  validate(block);
  const std::string store = ascii_lower(block["store"].get<std::string>());
  block["store"] = store;
  const std::string uuid = block["uuid"].get<std::string>();
  const std::string alias = ascii_lower(block["alias"].get<std::string>());
  const Json& origin = block["provenance"][0];

  for (const auto& entry : block["provenance"])
    if (entry["hostname"] == hostname_ && entry["rep"] == rep_port_) {
      log().debug("ignore: {} of {} already passed through this registry", describe(block), store);
      return Outcome::Loop;
    }

  // Work on a copy so that readers are not blocked while daemons are probed;
  // process() calls are serialised, so nothing changes it meanwhile.
  std::map<std::string, Json> known;
  {
    std::lock_guard lock(mutex_);
    if (auto it = blocks_.find(store); it != blocks_.end()) known = it->second;
  }

  std::map<std::string, bool> answers;   // liveness, asked at most once per old block
  auto alive = [&](const std::string& old_uuid) {
    auto it = answers.find(old_uuid);
    if (it == answers.end()) it = answers.emplace(old_uuid, alive_ && alive_(known.at(old_uuid))).first;
    return it->second;
  };

  std::vector<std::string> forget;
  if (auto it = known.find(uuid); it != known.end()) {
    const Json& old = it->second;
    if (same_origin(old["provenance"][0], origin)) {
      const double old_time = old.value("time", 0.0);
      const double new_time = block.value("time", 0.0);
      if (old["hash"] == block["hash"] && old_time > new_time) return Outcome::Unchanged;
    } else if (alive(uuid)) {
      log().error("reject: {} of {} from {}: already running at {}", describe(block), store, origin_text(block),
                  origin_text(old));
      throw ValueError(describe(block) + " of store '" + store + "' is already running at " + origin_text(old) +
                       "; refusing a second copy at " + origin_text(block));
    } else {
      log().info("forget: {} of {} at {}, which no longer answers", describe(old), store, origin_text(old));
    }
  }

  std::set<std::string> keys;
  for (const auto& [key, description] : block["items"].items()) keys.insert(ascii_lower(key));

  for (const auto& [old_uuid, old] : known) {
    if (old_uuid == uuid) continue;
    std::string clash;
    if (ascii_lower(old["alias"].get<std::string>()) == alias) {
      clash = "the alias '" + alias + "'";
    } else {
      for (const auto& [key, description] : old["items"].items())
        if (keys.count(ascii_lower(key))) {
          clash = "the key '" + store + "." + ascii_lower(key) + "'";
          break;
        }
    }
    if (clash.empty()) continue;
    if (alive(old_uuid)) {
      log().error("reject: {} of {} from {}: {} belongs to {} running at {}", describe(block), store,
                  origin_text(block), clash, describe(old), origin_text(old));
      throw ValueError(describe(block) + " redefines " + clash + " of " + describe(old) + ", which is running at " +
                       origin_text(old));
    }
    if (!override) {
      log().error("reject: {} of {} from {}: {} belongs to {} (not answering), no override", describe(block), store,
                  origin_text(block), clash, describe(old));
      throw ValueError(describe(block) + " redefines " + clash + " of " + describe(old) + " at " + origin_text(old) +
                       ", which does not answer; announce with override to replace it");
    }
    log().info("forget: {} of {} at {}, replaced by {} (override)", describe(old), store, origin_text(old),
               describe(block));
    forget.push_back(old_uuid);
  }

  // Relaying: our own entry goes after the highest stratum so far.
  long long stratum = 0;
  for (const auto& entry : block["provenance"]) stratum = std::max(stratum, entry["stratum"].get<long long>());
  block["provenance"].push_back({{"stratum", stratum + 1}, {"hostname", hostname_}, {"rep", rep_port_}});

  log().info("remember: {} of {} from {}", describe(block), store, origin_text(block));
  std::lock_guard lock(mutex_);
  auto& blocks = blocks_[store];
  for (const auto& old_uuid : forget) {
    blocks.erase(old_uuid);
    silent_since_.erase({store, old_uuid});
  }
  blocks[uuid] = std::move(block);
  // Announced again (or taken back by a sweep): no longer lost, and alive.
  lost_.erase({store, uuid});
  silent_since_.erase({store, uuid});
  return Outcome::Accepted;
}

Json RegistryState::hashes() const {
  std::lock_guard lock(mutex_);
  Json out = Json::object();
  for (const auto& [store, blocks] : blocks_) {
    if (blocks.empty()) continue;
    Json& hashes = out[store] = Json::object();
    for (const auto& [uuid, block] : blocks) hashes[uuid] = block["hash"];
  }
  return out;
}

Json RegistryState::hashes(const std::string& store_name) const {
  const std::string store = ascii_lower(store_name);
  std::lock_guard lock(mutex_);
  auto it = blocks_.find(store);
  if (it == blocks_.end() || it->second.empty()) throw KeyError::python("this registry knows no catalog for '" + store + "'");
  Json hashes = Json::object();
  for (const auto& [uuid, block] : it->second) hashes[uuid] = block["hash"];
  return Json{{store, std::move(hashes)}};
}

Json RegistryState::catalog(const std::string& store_name) const {
  const std::string store = ascii_lower(store_name);
  std::lock_guard lock(mutex_);
  auto it = blocks_.find(store);
  if (it == blocks_.end() || it->second.empty()) throw KeyError::python("this registry knows no catalog for '" + store + "'");
  Json out = Json::object();
  for (const auto& [uuid, block] : it->second) out[uuid] = block;
  return out;
}

std::vector<std::string> RegistryState::stores() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [store, blocks] : blocks_)
    if (!blocks.empty()) out.push_back(store);
  return out;
}

RegistryState::SweepResult RegistryState::sweep(double now, double drop_after, double forget_after, const Fetch& fetch) {
  SweepResult result;
  std::vector<Json> known;
  std::vector<std::pair<std::pair<std::string, std::string>, Json>> lost;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [store, blocks] : blocks_)
      for (const auto& [uuid, block] : blocks) known.push_back(block);
    for (const auto& [id, entry] : lost_) lost.emplace_back(id, entry.block);
  }

  // The known daemons: asked without a lock; a block is dropped only if it is
  // still the one that was asked about (an announcement may have replaced it).
  for (const auto& block : known) {
    const bool answers = alive_ && alive_(block);
    const std::pair<std::string, std::string> id{block["store"].get<std::string>(), block["uuid"].get<std::string>()};
    std::lock_guard lock(mutex_);
    auto store = blocks_.find(id.first);
    if (store == blocks_.end()) continue;
    auto current = store->second.find(id.second);
    if (current == store->second.end() || current->second != block) continue;
    if (answers) {
      silent_since_.erase(id);
      continue;
    }
    auto since = silent_since_.emplace(id, now).first->second;
    if (now - since < drop_after) continue;
    log().warn("drop: {} of {} at {}: no answer for {:.1f} s", describe(block), id.first, origin_text(block),
               now - since);
    result.dropped.push_back(id.first + " " + describe(block));
    lost_[id] = Lost{block, now};
    silent_since_.erase(id);
    store->second.erase(current);
  }

  // The lost ones: back when their daemon answers at the same address.
  for (auto& [id, block] : lost) {
    std::optional<Json> fresh;
    try {
      if (fetch) fresh = fetch(block);
    } catch (const std::exception& e) {
      log().debug("lost {} of {}: {}", describe(block), id.first, e.what());
    }
    if (!fresh) {
      std::lock_guard lock(mutex_);
      auto it = lost_.find(id);
      if (it != lost_.end() && now - it->second.since >= forget_after) {
        log().info("forget: {} of {} at {}, lost for {:.0f} s", describe(block), id.first, origin_text(block),
                   now - it->second.since);
        result.forgotten.push_back(id.first + " " + describe(block));
        lost_.erase(it);
      }
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      if (!lost_.count(id)) continue;  // announced meanwhile
    }
    try {
      // Its provenance is the daemon's own (stratum 0 only): relayed afresh.
      if (process(*fresh, false) == Outcome::Accepted) {
        log().info("relearn: {} of {} at {} answers again", describe(block), id.first, origin_text(*fresh));
        result.relearned.push_back(id.first + " " + describe(block));
      }
    } catch (const Error& e) {
      log().warn("lost {} of {} answers again but is not taken back: {}", describe(block), id.first, e.text());
    }
    std::lock_guard lock(mutex_);
    lost_.erase(id);
  }
  return result;
}

Json RegistryState::lost() const {
  std::lock_guard lock(mutex_);
  Json out = Json::object();
  for (const auto& [id, entry] : lost_) out[id.first][id.second] = entry.block;
  return out;
}

std::size_t RegistryState::size() const {
  std::lock_guard lock(mutex_);
  std::size_t count = 0;
  for (const auto& [store, blocks] : blocks_) count += blocks.size();
  return count;
}

}  // namespace mktl::discovery
