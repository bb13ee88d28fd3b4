#include "collections/host.hpp"

#include "collections/live.hpp"
#include "config/logger.hpp"
#include "json/detail.hpp"
#include "persist/tables.hpp"
#include "protocol/codec.hpp"
#include "runtime/runtime.hpp"

#include <mktl/catalog.hpp>
#include <mktl/error.hpp>

#include <filesystem>
#include <mutex>

namespace mktl::collections {

namespace {

// A transaction op set as an item. A SET is a transaction: it is checked on
// the I/O thread, queued to the writer, and answered after its COMMIT with
// {ref, seq, time, rows}, which is also broadcast. A GET answers the last
// committed transaction, or with {"ref": R} in the request, whether R
// committed and its result.
class RecordItem : public Item {
 public:
  RecordItem(Daemon& daemon, std::string key, persist::Tables& tables, const OpSet& set)
      : Item(daemon, std::move(key)), tables_(tables), set_(set), runtime_(daemon.runtime()), topic_(full_key() + ".") {
    set_publish_on_set(false);
    if (auto last = tables_.last(set_.item)) publish(last->to_json(), last->time);
  }

  Reading req_get(const Request& request) override {
    if (request.payload.is_object() && request.payload.value("stats", false) == true) {
      // The writer's counters: what batching achieves (transactions per commit).
      auto s = tables_.stats();
      return Reading(Json{{"commits", s.commits}, {"transactions", s.transactions}, {"failed", s.failed}});
    }
    if (request.payload.is_object()) {
      auto ref = request.payload.find("ref");
      if (ref != request.payload.end()) {
        if (!ref->is_string()) throw TypeError("ref must be a string");
        Json value = Json::object();
        value["ref"] = *ref;
        if (auto found = tables_.lookup(ref->get<std::string>(), set_.item)) {
          value = found->to_json();
          value["status"] = "committed";
        } else {
          value["status"] = "unknown";
          value["text"] = "no committed transaction has this ref (or it is older than the transactions kept)";
        }
        return Reading(value);
      }
    }
    return last();
  }

  // The I/O thread's SET path: never blocks.
  void take_set(transport::Incoming&& request, transport::Reply reply_in) {
    // Shared with the writer's completion; answered here when the SET fails before it is queued.
    auto shared = std::make_shared<transport::Reply>(std::move(reply_in));
    try {
      if (request.bulk) throw TypeError(key() + " is a record item: a SET takes a JSON object, not bulk data");
      Json payload = protocol::parse_payload(request.payload);
      if (!payload.is_object() || !payload.contains("value"))
        throw ValueError("SET request for " + full_key() + " carries no value");
      Json value = std::move(payload["value"]);
      // A Python client setting a formatted value sends JSON text.
      if (value.is_string()) {
        try {
          value = json::parse(value.get<std::string>());
        } catch (const Error&) {
          throw TypeError(key() + " is a record item: its value is a JSON object of fields, got a string that is not one");
        }
      }
      std::string ref;
      if (auto r = payload.find("ref"); r != payload.end() && !r->is_null()) {
        if (!r->is_string() || r->get_ref<const std::string&>().empty())
          throw TypeError("ref must be a non-empty string");
        ref = r->get<std::string>();
      }
      tables_.submit(set_, std::move(value), std::move(ref), [this, shared](std::exception_ptr error, const persist::Committed* done) {
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const Error& e) {
            shared->error(e.type(), e.what());
          } catch (const std::exception& e) {
            shared->error("RuntimeError", e.what());
          }
          return;
        }
        // The value is encoded once (by the writer, from its rows' text) and
        // shared by the broadcast {value, time} and the REP {value, time, ref, seq}.
        std::string time_text;  // formatted once for both places it goes
        json::detail::append_double(time_text, done->time);
        std::string payload = "{\"value\":";
        done->append_value_json(payload, time_text);
        payload += ",\"time\":";
        payload += time_text;
        payload += '}';
        if (!done->duplicate) {
          auto broadcast = std::make_shared<const std::string>(payload);
          {
            // Kept first: a GET right after the REP sees this transaction.
            std::lock_guard lock(last_mu_);
            last_ = broadcast;
          }
          if (auto* server = runtime_.server()) server->publish(topic_, std::move(broadcast));
          runtime_.notify_watchers(*this);
        }
        payload.back() = ',';
        payload += "\"ref\":";
        json::detail::append_string(payload, done->ref);
        payload += ",\"seq\":";
        payload += std::to_string(done->seq);
        payload += '}';
        shared->send(std::move(payload));
      });
    } catch (const Error& e) {
      shared->error(e.type(), e.what());
    } catch (const Json::exception& e) {
      shared->error("TypeError", e.what());
    } catch (const std::exception& e) {
      shared->error("RuntimeError", e.what());
    }
  }

 private:
  // The last transaction committed since the start (else the one the daemon
  // started with, or null).
  Reading last() const {
    std::shared_ptr<const std::string> payload;
    {
      std::lock_guard lock(last_mu_);
      payload = last_;
    }
    if (!payload) return current();
    return protocol::read_reading(*payload, std::nullopt, 0.0);
  }

  persist::Tables& tables_;
  const OpSet& set_;
  mktl::detail::Runtime& runtime_;
  const std::string topic_;  // the item's broadcast topic, "store.key."
  mutable std::mutex last_mu_;
  std::shared_ptr<const std::string> last_;  // the broadcast of the last transaction committed since the start
};

}  // namespace

Host::Host(const Json& document, std::string source) : config_(parse(document, source)) {}

Host::~Host() { stop(); }

Json Host::descriptions() const {
  Json out = Json::object();
  for (auto& service : config_.transactions)
    for (auto& set : service.op_sets) out[set.item] = describe(config_, service, set);
  for (auto& collection : config_.collections) out[collection.name] = describe(config_, collection);
  return out;
}

void Host::start(Daemon& daemon) {
  auto log = logger("mktl.collections");
  for (auto& ignored : config_.ignored) log->info("{}: {} is not used by mktl", config_.source, ignored);
  persist::TablesOptions options;
  options.source = config_.source;
  options.batch_wait_ms = config_.batch_max_wait_ms;
  options.batch_max = config_.batch_max_size;
  options.migrate = daemon.options().migrate;
  namespace fs = std::filesystem;
  if (config_.db_path.empty()) {
    options.path = (fs::path(daemon.options().home) / "daemon" / "collections" / daemon.store() /
                    (daemon.alias() + ".sqlite3"))
                       .string();
  } else {
    options.path = config_.db_path;  // parse() made a relative one relative to the file
  }
  tables_ = persist::Tables::open(config_, options);  // logs each schema change it applies

  for (auto& service : config_.transactions)
    for (auto& set : service.op_sets) {
      auto& item = daemon.add_item<RecordItem>(set.item, *tables_, set);
      daemon.runtime().set_direct_set(item, [&item](transport::Incoming&& request, transport::Reply reply) {
        item.take_set(std::move(request), std::move(reply));
      });
    }

  // Collection items: read-only; their GETs go to the collections thread,
  // which also publishes their changes.
  if (!config_.collections.empty()) {
    auto& runtime = daemon.runtime();
    live_ = std::make_unique<Live>(config_, *tables_, daemon.store(),
                                   [&runtime](std::string topic, std::shared_ptr<const std::string> payload) {
                                     runtime.publish_raw(std::move(topic), std::move(payload));
                                   });
    live_->start();
    tables_->on_commit([live = live_.get()](const std::vector<persist::Committed*>& committed) {
      live->committed(committed);
    });
    for (auto& collection : config_.collections) {
      auto& item = daemon.add_item<Item>(collection.name);
      runtime.set_direct_get(item, [live = live_.get(), name = collection.name](transport::Incoming&& request,
                                                                                 transport::Reply reply) {
        Json payload;
        try {
          if (!request.payload.empty()) payload = protocol::parse_payload(request.payload);
        } catch (const std::exception& e) {
          reply.error("ValueError", e.what());
          return;
        }
        live->get(name, std::move(payload), std::move(reply));
      });
    }
  }
  daemon.runtime().add_settle([this] {
    if (tables_) tables_->wait_idle();  // its answers and its changes for the collections
    if (live_) live_->wait_idle();
  });
  daemon.runtime().add_drain([this] {
    // Transactions already queued commit and are answered before the server
    // stops (the collections stop first: their thread reads the tables).
    stop();
  });
}

void Host::stop() {
  if (live_) live_->stop();
  tables_.reset();  // a commit now reaches a stopped engine, which ignores it
  live_.reset();
}

}  // namespace mktl::collections
