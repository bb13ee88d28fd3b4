// Fuzz target: discovery input (libmktl/src/discovery/): UDP datagrams
// (is_call, parse_answer), the catalog block a daemon announces (as a
// registry checks and stores it: RegistryState::validate and process), and
// the discovery configuration files (Config::from_env: discovery.json and
// client/registries).
//
// Input: one mode byte, then the content. Mode % 3 == 0: a datagram;
// 1: up to three announced blocks (JSON) separated by NUL, processed in turn
// by one registry (bit 2 of the mode byte: override; bit 3: the old daemon
// answers); 2: discovery.json, NUL, the registries file.
//
// Checks, besides sanitizers: only mktl errors escape; a port parse_answer
// reads reads the same when written back; a block process() accepted passes
// validate() and is kept; every store listed has hashes and a catalog.
#include "fuzz.hpp"

#include "discovery/registry_state.hpp"
#include "discovery/udp.hpp"

#include <mktl/json.hpp>

using mktl::Json;
using mktl::fuzz::expect;
using mktl::fuzz::guarded;
namespace discovery = mktl::discovery;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view content = mktl::fuzz::text(data + 1, size - 1);

  if (mode % 3 == 0) {
    bool call = discovery::is_call(content);
    auto port = discovery::parse_answer(content);
    expect(!(call && port), "a datagram is both the call and an answer");
    if (port) {
      expect(*port > 0 && *port < 65536, "parse_answer gave a port out of range");
      expect(discovery::parse_answer(std::string(discovery::kAnswer) + std::to_string(*port)) == port,
             "parse_answer does not read back its own port");
    }
    return 0;
  }

  if (mode % 3 == 1) {
    const bool override = mode & 4, alive = mode & 8;
    discovery::RegistryState state("fuzzregistry", 9000, [alive](const Json&) { return alive; });
    for (auto& text : mktl::fuzz::split(content, '\0', 3)) {
      Json block;
      if (!guarded("json::parse", [&] { block = mktl::json::parse(text); })) continue;
      bool valid = guarded("validate", [&] { discovery::RegistryState::validate(block); });
      discovery::RegistryState::Outcome outcome{};
      bool accepted = guarded("process", [&] { outcome = state.process(block, override); });
      if (accepted) expect(valid, "process() accepted a block validate() refuses");
      if (accepted && outcome == discovery::RegistryState::Outcome::Accepted)
        expect(state.size() > 0 && !state.stores().empty(), "an accepted block is not kept");
    }
    (void)state.hashes();
    for (auto& s : state.stores()) {
      expect(guarded("hashes(store)", [&] { (void)state.hashes(s); }), "a listed store has no hashes");
      expect(guarded("catalog(store)", [&] { (void)state.catalog(s); }), "a listed store has no catalog");
    }
    return 0;
  }

  auto parts = mktl::fuzz::split(content, '\0', 2);
  auto home = mktl::fuzz::scratch() / "discovery-home";
  std::filesystem::create_directories(home / "client");
  mktl::fuzz::write_file("discovery-home/discovery.json", parts[0]);
  if (parts.size() > 1)
    mktl::fuzz::write_file("discovery-home/client/registries", parts[1]);
  else
    std::filesystem::remove(home / "client" / "registries");
  discovery::Config config;
  if (guarded("Config::from_env", [&] { config = discovery::Config::from_env(home.string()); })) {
    expect(config.daemon_port > 0 && config.daemon_port < 65536, "daemon_port out of range");
    expect(config.registry_port > 0 && config.registry_port < 65536, "registry_port out of range");
    for (auto& h : config.hosts) expect(!h.empty() && h.find('#') == std::string::npos, "a registry host with '#'");
  }
  return 0;
}
