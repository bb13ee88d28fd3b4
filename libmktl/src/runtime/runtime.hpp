// The machinery behind mktl::Daemon and mktl::Item (internal).
#pragma once

#include "runtime/scheduler.hpp"
#include "runtime/watchdog.hpp"
#include "common/worker_pool.hpp"
#include "transport/server.hpp"

#include <mktl/daemon.hpp>
#include <mktl/format.hpp>
#include <mktl/item.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mktl::persist { class Store; }

namespace mktl::detail {

// Per-item state shared between the Item, its strand and the I/O thread.
struct ItemCore {
  Item* item = nullptr;
  Runtime* runtime = nullptr;  // set at start
  std::string full_key;
  std::string topic;
  ItemType type = ItemType::typeless;
  bool settable = true;
  bool gettable = true;
  bool persist = false;
  bool fast_get = true;  // req_get not overridden: answer GETs from `encoded`
  bool inline_set = false;  // a plain caching item: a SET may run on the I/O thread
  std::uint64_t id = 0;

  mutable std::mutex mutex;  // guards the fields below
  Reading current;
  bool has_value = false;
  std::shared_ptr<const std::string> encoded;  // GET reply / broadcast payload of `current`
  std::vector<std::weak_ptr<ItemCore>> watchers;
  double poll_period = 0;

  std::atomic<bool> poll_queued{false};
  std::shared_ptr<Strand> strand;
  // Takes SETs on the I/O thread instead of a hook on the strand (record
  // items queue them to their writer); must not block.
  std::function<void(transport::Incoming&&, transport::Reply)> direct_set;
  // Likewise for GETs (collection items answer them on their own thread).
  std::function<void(transport::Incoming&&, transport::Reply)> direct_get;
};

class Runtime {
 public:
  Runtime(Daemon& daemon, const DaemonOptions& options);
  ~Runtime();

  // Called by Daemon::start once every item exists.
  void start(std::unordered_map<std::string, std::unique_ptr<Item>>& items);
  void stop();
  bool running() const { return running_; }

  void publish(ItemCore& core, Reading reading, bool repeat, bool durable);
  void set_poll(ItemCore& core, double period);
  void post_poll(const std::shared_ptr<ItemCore>& core);

  transport::Server* server() { return server_.get(); }
  // CurveZMQ and access rules for the sockets (null = plain); before start().
  void set_security(std::shared_ptr<const security::Policy> policy) { security_ = std::move(policy); }

  // Routes the SETs of `item` to `handler` on the I/O thread (before start).
  void set_direct_set(Item& item, std::function<void(transport::Incoming&&, transport::Reply)> handler);
  // Runs at stop(), once no hook runs any more and before the server stops,
  // so that work queued elsewhere is answered (in reverse order of adding).
  void add_drain(std::function<void()> drain);
  // Waits until work a request queued elsewhere (the tables' writer, the
  // collections thread) is done: exchange() runs each after the workers are
  // idle.
  void add_settle(std::function<void()> settle);
  // Routes the GETs of `item` to `handler` on the I/O thread (before start);
  // it must not block.
  void set_direct_get(Item& item, std::function<void(transport::Incoming&&, transport::Reply)> handler);
  // Broadcasts an already-encoded payload on any topic, from any thread
  // (collections: payloads with more members than value and time, and the
  // `row:` topics). Nothing is sent unless the runtime is running.
  void publish_raw(std::string topic, std::shared_ptr<const std::string> payload);
  // `item` broadcast a new value by another way than publish() (a record
  // item's committed transaction): the items that watch it refresh.
  void notify_watchers(Item& item);
  double start_time() const { return start_time_; }
  // For the fuzzer (tests/fuzz/): one request through the daemon's whole
  // request path without sockets (transport::Server::exchange on a server of
  // its own with this runtime's dispatch), waiting until every hook it caused
  // has run. Returns the frame sets the ROUTER would send. After start(),
  // from one thread at a time.
  std::vector<std::vector<std::string>> exchange(std::vector<std::string> frames);
  // Requests answered with TimeoutError because a hook did not answer in time.
  std::uint64_t hook_timeouts() const { return watchdog_ ? watchdog_->expired() : 0; }

 private:
  void dispatch(transport::Incoming&& request, transport::Reply reply);
  void handle_special(transport::Incoming&& request, transport::Reply reply);
  void handle_get(const std::shared_ptr<ItemCore>& core, transport::Incoming&& request, transport::Reply reply);
  void handle_set(const std::shared_ptr<ItemCore>& core, transport::Incoming&& request, transport::Reply reply);
  void open_persistence();

  Daemon& daemon_;
  const DaemonOptions& options_;
  std::unordered_map<std::string, std::shared_ptr<ItemCore>> by_target_;  // "store.key"
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<HookWatchdog> watchdog_;  // after pool_: it refers to it
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<transport::Server> server_;
  std::unique_ptr<transport::Server> exchange_server_;  // exchange()'s, never started
  std::unique_ptr<persist::Store> persist_;
  std::vector<std::function<void()>> drains_;
  std::vector<std::function<void()>> settles_;
  std::atomic<bool> running_{false};
  double start_time_ = 0;
  // Answers to `_hash` and `store._catalog`, encoded once: the block does not
  // change while the daemon runs, and a 10,000-item block is big.
  std::once_flag special_once_;
  std::shared_ptr<const std::string> hash_answer_, catalog_answer_;
  std::shared_ptr<const security::Policy> security_;
};

// Whether a subclass overrides Item::req_get (GCC; true where unknown).
bool overrides_req_get(Item& item);
// Whether a subclass overrides validate or req_set (GCC; true where unknown).
bool overrides_set_hooks(Item& item);

// Encodes a reading as its GET/broadcast payload.
std::string encode_reading(const Reading& reading);

}  // namespace mktl::detail
