// A daemon's tables and services: parses the collections configuration,
// opens (and migrates) the database, serves each transaction op set as a
// settable `record` item and each subpub, stream and query service as a
// read-only `collection` item (live.hpp).
//
// Threading: constructed with the daemon; start() runs on the thread that
// starts the daemon, before its runtime serves requests; SETs of record items
// are taken on the daemon's I/O thread (never blocking it: they are queued to
// the tables' writer thread, which answers and broadcasts after each COMMIT).
#pragma once

#include "collections/config.hpp"

#include <mktl/daemon.hpp>

#include <memory>
#include <string>

namespace mktl::persist { class Tables; }

namespace mktl::collections {

class Live;

class Host {
 public:
  // Parses and checks the mkio-shaped document; ConfigError names `source`.
  Host(const Json& document, std::string source);
  ~Host();

  const Config& config() const { return config_; }
  // {item key: description} of every record (and collection) item.
  Json descriptions() const;

  // Opens the tables (ConfigError for changes that need --migrate), adds the
  // record items to `daemon` and routes their SETs to the writer. Call from
  // Daemon::start(), after setup() and before the runtime starts.
  void start(Daemon& daemon);
  // Commits what is queued and closes the database; replies still go out.
  void stop();

  persist::Tables* tables() { return tables_.get(); }

 private:
  Config config_;
  std::unique_ptr<persist::Tables> tables_;
  std::unique_ptr<Live> live_;  // the subpub, stream and query services, when configured
};

}  // namespace mktl::collections
