#include "discovery/announce.hpp"

#include "discovery/logger.hpp"

#include <mktl/client.hpp>
#include <mktl/error.hpp>

namespace mktl::discovery {

namespace {

// A registry may probe conflicting daemons before answering.
constexpr double kRegistryReplyTimeout = 10.0;

}  // namespace

int announce(const Json& block, const Config& config, bool override, double timeout_s) {
  const std::string what = block.value("store", std::string("?")) + "/" + block.value("alias", std::string("?"));
  auto registries = call(config, config.registry_port, timeout_s);
  if (registries.empty()) {
    log().info("announce {}: no registry answered on UDP port {}", what, config.registry_port);
    return 0;
  }

  Json payload = Json::object();
  payload["value"] = block;
  if (override) {
    payload["value"]["override"] = true;
    payload["override"] = true;
  }

  ClientOptions options;
  options.use_cache = false;
  Client client(options);
  int accepted = 0;
  for (const auto& registry : registries) {
    const std::string where = registry.address + ":" + std::to_string(registry.rep_port);
    try {
      client.request("tcp://" + where, "SET", "_catalog", payload, kRegistryReplyTimeout);
      log().info("announce {}: accepted by the registry at {}", what, where);
      ++accepted;
    } catch (const TimeoutError& e) {
      log().warn("announce {}: the registry at {} did not answer: {}", what, where, e.what());
    } catch (const Error& e) {
      throw Error(e.type(), "the registry at " + where + " rejected the catalog of " + what + ": " + e.text());
    }
  }
  return accepted;
}

}  // namespace mktl::discovery
