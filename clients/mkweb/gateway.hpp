// mkweb::Gateway: the stores mkweb offers and the items its browsers watch.
//
// It holds one mktl::Client, and one upstream subscription per watched item
// (an mktl::Subscription, or an mktl::CollectionView for a collection item)
// however many browsers watch it; the subscription goes when the last of
// them leaves. Each broadcast becomes one JSON text, shared by every browser
// that watches the item (Sink::deliver), so a broadcast costs one encoding.
//
// Threading promise: subscribe(), unsubscribe(), drop() and
// collection_snapshot() run on the I/O thread (the io_context given), and
// Sink::deliver is called there only. Client calls that may block (catalogs,
// GET, SET, new subscriptions) run on the gateway's worker pool
// (run_blocking()), never on the I/O thread. The blocking accessors
// (stores(), catalog(), ...) may be called from any thread but the I/O
// thread.
#pragma once

#include "out_queue.hpp"

#include <mktl/client.hpp>
#include <mktl/json.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mkweb {

struct GatewayOptions {
  std::vector<std::string> stores;   // --store: offered stores (empty = discovered)
  std::vector<std::string> connect;  // --connect: daemon request addresses (tcp://HOST:PORT)
  std::size_t max_items_per_browser = 4096;
};

// A browser's WebSocket session, as the gateway sees it.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void deliver(OutMessage message) = 0;
};

// The latest frame of a bulk item: raw bytes, shape, dtype and a sequence
// number that changes with each frame.
struct BulkFrame {
  mktl::Bulk bulk;
  std::uint64_t seq = 0;
  double time = 0;
};

class Gateway {
 public:
  Gateway(boost::asio::io_context& io, mktl::Client& client, GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Runs `work` on the worker pool.
  void run_blocking(std::function<void()> work);
  // Runs `work` on the I/O thread.
  void run_io(std::function<void()> work);

  // ---- blocking (worker pool) ----
  // Stores offered, sorted.
  std::vector<std::string> stores();
  // {key: description} of an offered store; KeyError if not offered/unknown.
  mktl::Json catalog(const std::string& store);
  // The description of "store.key"; KeyError for an unknown store or key.
  mktl::Json description(const std::string& full_key);
  // The latest frame of a bulk item: the watched one if a browser watches
  // it, else a GET.
  BulkFrame bulk(const std::string& full_key);
  mktl::Client& client() noexcept { return client_; }

  // ---- I/O thread ----
  // `sink` starts getting `full_key`'s messages: its current value (or
  // snapshot) first, then each broadcast; an error message if it cannot be
  // watched.
  void subscribe(const std::shared_ptr<Sink>& sink, const std::string& full_key);
  void unsubscribe(Sink* sink, const std::string& full_key);
  // The sink is gone: it leaves every item it watched.
  void drop(Sink* sink);
  // A fresh snapshot message of a watched collection (for a browser that fell
  // behind), or null if it is not watched any more.
  std::shared_ptr<const std::string> collection_snapshot(const std::string& full_key);
  // Items watched upstream right now (for tests and logs).
  std::size_t watched() const;

  // Message texts (pure; public for the API's GET of an item).
  static mktl::Json value_fields(const std::string& full_key, const mktl::Json& description,
                                 const mktl::Reading& reading, std::uint64_t bulk_seq);
  static std::string error_text(const std::string& full_key, const std::string& type, const std::string& text);

 private:
  struct Watch;
  void start_watch(const std::shared_ptr<Watch>& watch);
  void publish(const std::shared_ptr<Watch>& watch, OutMessage message);
  void release(const std::shared_ptr<Watch>& watch);
  std::uint64_t note_bulk(const std::string& full_key, const mktl::Reading& reading);

  boost::asio::io_context& io_;
  mktl::Client& client_;
  GatewayOptions options_;
  boost::asio::thread_pool pool_{4};

  // Known stores (--connect learns them up front; find_store otherwise).
  std::mutex stores_mutex_;
  std::map<std::string, bool> known_stores_;

  // I/O thread only.
  std::map<std::string, std::shared_ptr<Watch>> watches_;
  std::map<Sink*, std::map<std::string, std::weak_ptr<Sink>>> by_sink_;

  std::mutex bulk_mutex_;
  std::map<std::string, BulkFrame> bulk_frames_;
  std::uint64_t bulk_seq_ = 0;
};

}  // namespace mkweb
