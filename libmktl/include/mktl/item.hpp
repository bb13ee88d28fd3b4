// mktl::Item: one item of a daemon. Subclass it to connect an item to hardware.
//
// A daemon makes one Item for every key of its catalog; keys without a custom
// class get a plain Item, which caches whatever is set or published. A custom
// item overrides a few hooks:
//
//   class Temperature : public mktl::Item {
//    public:
//     Temperature(mktl::Daemon& d, std::string key, Controller& c) : Item(d, std::move(key)), c_(c) {
//       poll(1.0);                                    // req_poll() every second
//     }
//     std::optional<mktl::Reading> req_refresh() override { return mktl::Reading(c_.temperature()); }
//    private:
//     Controller& c_;
//   };
//
// Threading promise: every hook (req_refresh, req_set, validate, req_poll,
// req_get) runs on a worker thread of the daemon, never on its I/O thread, and
// never concurrently with another hook of the same item; SETs to one item run
// in the order they arrived. Hooks of different items run in parallel. The
// non-virtual methods (publish, current, poll, ...) may be called from any
// thread at any time.
#pragma once

#include <mktl/json.hpp>
#include <mktl/reading.hpp>

#include <memory>
#include <optional>
#include <string>

namespace mktl {

class Daemon;
namespace detail { struct ItemCore; class Runtime; }

// What a hook sees of the request that caused it.
struct Request {
  std::string target;          // "store.key"
  Json payload;                // the request's JSON payload (an object, or null)
  std::optional<Bulk> bulk;    // the bulk frame, when one came
  bool refresh() const;        // payload["refresh"] == true
};

class Item {
 public:
  // Looks `key` up in the daemon's catalog; throws KeyError if it is not there.
  Item(Daemon& daemon, std::string key);
  virtual ~Item();
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;

  // ---- hooks --------------------------------------------------------------

  // Acquire the current value from the hardware. Return it (with its time), or
  // nothing for "no new value". Default: nothing (a caching item).
  // Worker thread; never concurrent with other hooks of this item.
  virtual std::optional<Reading> req_refresh();

  // Do the work of a SET: command the hardware, block until it is done, throw
  // (any mktl::Error, or std::exception as RuntimeError) to fail the SET. The
  // value has passed validate_type() and validate(). After it returns, the
  // runtime publishes the value if it changed (see publish_on_set()).
  // Default: nothing (a caching item). Worker thread, in SET arrival order.
  virtual void req_set(const Reading& value);

  // Check a SET value: throw to reject it, return the (possibly converted)
  // value to accept it. Runs after the catalog type's own validation.
  // Default: return it unchanged. Worker thread.
  virtual Reading validate(Reading value);

  // One poll: refresh and publish if the value changed. Called every period
  // set by poll(), and by watch(). Polls of one item never overlap.
  // Default: r = req_refresh(); if (r) publish(*r). Worker thread.
  virtual void req_poll();

  // GET entry point. Default: if request.refresh(), req_poll(); then the
  // current value. Override only to change what a GET means; a plain item's
  // GET is answered from a cached encoding without running any hook.
  // Worker thread.
  virtual Reading req_get(const Request& request);

  // ---- services for hooks and daemon code (any thread) ---------------------

  // Publish a new value: cache it, broadcast it (only if it changed, unless
  // `repeat`), persist it if the item persists. Time defaults to now.
  void publish(Json value, std::optional<double> time = std::nullopt, bool repeat = false);
  void publish(Json value, double time, bool repeat = false) { publish(std::move(value), std::optional<double>(time), repeat); }
  void publish(Reading reading, bool repeat = false);

  // The cached value (value null and time 0 if it never had one).
  Reading current() const;

  // Call req_poll() every `period_seconds`; 0 (or negative) stops polling.
  // Takes effect at once.
  void poll(double period_seconds);
  double poll_period() const;

  // Refresh this item (req_poll) whenever `other` publishes a new value.
  void watch(Item& other);

  // After a successful SET, publish the set value (default true).
  void set_publish_on_set(bool on) { publish_on_set_ = on; }
  bool publish_on_set() const { return publish_on_set_; }

  const std::string& key() const noexcept { return key_; }
  std::string full_key() const;
  const Json& description() const noexcept { return *description_; }
  Daemon& daemon() const noexcept { return daemon_; }

 private:
  friend class detail::Runtime;
  Daemon& daemon_;
  std::string key_;
  const Json* description_;  // into the daemon's catalog, which outlives its items
  bool publish_on_set_ = true;
  std::shared_ptr<detail::ItemCore> core_;
};

}  // namespace mktl
