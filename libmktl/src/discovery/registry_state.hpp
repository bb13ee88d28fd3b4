// What a registry knows: catalog blocks by store and UUID, and the rules for
// accepting an announced block. Kept apart from the registry program so that
// the rules can be tested without sockets.
//
// The rules (PROTOCOL.md "Discovery"; the reference's mkregistryd intends the
// same but forgets the wrong UUID on override):
//  - A block must have the catalog block shape (validate()).
//  - A block whose provenance already lists this registry is our own relay
//    coming back: it is ignored (Outcome::Loop), not an error.
//  - The same UUID from the same stratum-0 address replaces the old block
//    (unless it is an older copy of the same hash: Outcome::Unchanged).
//  - The same UUID from another address is the same daemon restarted
//    elsewhere: accepted if the old address no longer answers, otherwise
//    rejected (two copies of one daemon), override or not.
//  - Another UUID that redefines a key or the alias of a known block of the
//    store: rejected if the old daemon answers, whatever `override` says; if
//    it does not answer, accepted with `override` (the old block is forgotten)
//    and rejected without it.
// Rejections throw mktl::ValueError naming the old daemon and its address.
//
// Threading promise: every method may be called from any thread. process()
// calls run one at a time; the liveness check runs without the data lock held,
// so readers (hashes(), catalog()) are never blocked behind network checks.
#pragma once

#include <mktl/json.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mktl::discovery {

class RegistryState {
 public:
  // True if the daemon that announced `block` (its provenance[0]) still
  // answers for it. Called only when a conflict needs it.
  using Liveness = std::function<bool(const Json& block)>;

  // `hostname` and `rep_port` are this registry's own provenance entry.
  RegistryState(std::string hostname, int rep_port, Liveness alive);

  enum class Outcome { Accepted, Unchanged, Loop };

  // Checks `block` and remembers it, with this registry's provenance appended.
  // An "override" member inside the block (as the reference sends it) counts
  // as `override` and is not stored. Throws ValueError on rejection.
  Outcome process(Json block, bool override);

  // Throws ValueError unless `block` has the catalog block shape.
  static void validate(const Json& block);

  // {store: {uuid: hash}} for every store known (possibly empty).
  Json hashes() const;
  // {store: {uuid: hash}} for one store; KeyError if unknown.
  Json hashes(const std::string& store) const;
  // {uuid: block} for one store; KeyError if unknown.
  Json catalog(const std::string& store) const;
  std::vector<std::string> stores() const;
  std::size_t size() const;

 private:
  std::string describe(const Json& block) const;

  const std::string hostname_;
  const int rep_port_;
  const Liveness alive_;
  std::mutex process_mutex_;   // one process() at a time
  mutable std::mutex mutex_;   // guards blocks_
  std::map<std::string, std::map<std::string, Json>> blocks_;   // store -> uuid -> block
};

}  // namespace mktl::discovery
