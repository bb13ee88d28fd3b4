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
#include <optional>
#include <string>
#include <utility>
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

  // ---- liveness: dropping daemons that went away, taking them back ----------
  // The current block a daemon serves for `block`'s UUID, asked at the
  // block's stratum-0 address; nullopt when it does not answer there (or no
  // longer serves that UUID).
  using Fetch = std::function<std::optional<Json>(const Json& block)>;

  struct SweepResult {
    std::vector<std::string> dropped;    // "store alias (uuid)", one per block
    std::vector<std::string> relearned;
    std::vector<std::string> forgotten;  // lost for longer than forget_after
  };

  // One round of the registry's liveness check (mkregistryd runs one every
  // --check-interval): every known daemon is asked (the Liveness given to the
  // constructor); one that has not answered for `drop_after` seconds is
  // dropped, so that clients are no longer sent to it, but remembered as
  // lost. Every lost daemon is asked again (`fetch`) at each round; when it
  // answers, its current block is taken back as if it had announced it
  // (rejected like an announcement if another daemon took its keys since).
  // A lost daemon is forgotten after `forget_after` seconds, or as soon as
  // its UUID is announced again. `now` is any monotonic clock in seconds (a
  // parameter, so that tests need no clock). Network checks run without any
  // lock held; announcements are never blocked by a sweep.
  SweepResult sweep(double now, double drop_after, double forget_after, const Fetch& fetch);
  // Blocks dropped by sweeps and not yet taken back or forgotten:
  // {store: {uuid: block}}.
  Json lost() const;

 private:
  std::string describe(const Json& block) const;

  const std::string hostname_;
  const int rep_port_;
  const Liveness alive_;
  std::mutex process_mutex_;   // one process() at a time
  mutable std::mutex mutex_;   // guards blocks_
  std::map<std::string, std::map<std::string, Json>> blocks_;   // store -> uuid -> block
  // Liveness bookkeeping, guarded by mutex_: since when a known block's
  // daemon has not answered, and the dropped blocks with when they were dropped.
  std::map<std::pair<std::string, std::string>, double> silent_since_;  // (store, uuid)
  struct Lost {
    Json block;
    double since;
  };
  std::map<std::pair<std::string, std::string>, Lost> lost_;  // (store, uuid)
};

}  // namespace mktl::discovery
