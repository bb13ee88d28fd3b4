// The live collections engine: keeps each subpub (keyed), stream and query
// (table) service's rows in memory, follows the tables' committed changes,
// numbers them (seq), publishes them, and answers the collection items' GETs.
// The wire contract is /work/notes/LIVE.md (docs: COLLECTIONS.md).
//
// Changes come from persist::Tables' commit listener (its completion thread) and
// wait on a bounded change bus; a full bus never blocks the tables: the
// overflow is counted and logged, and every collection re-reads its rows
// from SQLite and publishes a reset.
//
// Threading: one collections thread owns every collection's state: it
// applies changes in commit order and answers GETs in turn, so a GET sent
// after a transaction's REP sees that transaction, and a snapshot is
// consistent with the seq it carries. committed() and get() may be called
// from any thread and never block on SQLite.
#pragma once

#include "collections/config.hpp"

#include <mktl/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mktl::persist {
class Tables;
struct Committed;
}  // namespace mktl::persist
namespace mktl::transport { class Reply; }

namespace mktl::collections {

class Live {
 public:
  // Sends an encoded payload on a topic (the daemon's PUB socket).
  using Publisher = std::function<void(std::string topic, std::shared_ptr<const std::string> payload)>;

  // `store` names the topics ("store.key."). `config` and `tables` must
  // outlive the engine.
  Live(const Config& config, persist::Tables& tables, std::string store, Publisher publisher);
  ~Live();
  Live(const Live&) = delete;
  Live& operator=(const Live&) = delete;

  // Reads every collection from SQLite and starts the collections thread.
  // Throws ConfigError when a collection's SQL does not run.
  void start();
  // Answers what is queued, then stops; later changes and GETs are dropped
  // (a dropped GET's Reply answers with an error by itself).
  void stop();
  // Waits until the collections thread has applied every change and answered
  // every GET queued so far. For the fuzzer's in-process exchange.
  void wait_idle();

  // The tables' commit listener (their completion thread).
  // Moves each transaction's changes out.
  void committed(const std::vector<persist::Committed*>& transactions);

  // Answers a GET of collection `name` (request payload: an object or null)
  // on the collections thread.
  void get(const std::string& name, Json request, transport::Reply reply);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The `row:` topic segment for a row id: a string with '.', '%' and bytes
// below 0x20 percent-encoded, a number as its JSON text.
std::string row_topic_id(const Json& rowid);

}  // namespace mktl::collections
