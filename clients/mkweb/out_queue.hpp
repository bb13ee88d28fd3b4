// mkweb::OutQueue: the messages waiting to go to one browser, bounded.
//
// Up to `limit` messages queue in order. When the queue is full, it stops
// growing with values: each item keeps one value slot (the latest value wins,
// and the slot counts the values it replaced, sent as "skipped"), and a
// collection's pending changes are replaced by one resync slot (the sender
// then sends a fresh snapshot instead of the changes missed). So the queue
// holds at most `limit` messages plus one slot per item the browser watches:
// a browser that stops reading costs bounded memory, whatever the rate.
//
// Pure and single-threaded (mkweb uses it on its I/O thread only), so the
// unit tests drive it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace mkweb {

enum class MessageKind {
  value,     // an item's value: coalescable, text lacks its closing ,"skipped":N}
  snapshot,  // a collection's whole state: replaces that item's queued snapshot and changes
  change,    // one collection change: never dropped silently (a resync replaces them)
  other,     // sent as is (errors)
  resync,    // (popped only) send a fresh snapshot of the item
};

struct OutMessage {
  std::string item;
  MessageKind kind = MessageKind::other;
  std::shared_ptr<const std::string> text;  // shared by every browser that gets it
};

// What pop() hands to the sender.
struct Outgoing {
  std::string item;
  MessageKind kind = MessageKind::other;
  std::string text;  // complete JSON text (empty for resync)
};

class OutQueue {
 public:
  explicit OutQueue(std::size_t limit) : limit_(limit == 0 ? 1 : limit) {}

  void push(OutMessage message) {
    if (message.kind == MessageKind::snapshot) drop_collection_slots(message.item);
    // A pending resync sends the state as it is when it goes out: it covers this change.
    if (message.kind == MessageKind::change && resync_pending(message.item)) return;
    if (slots_.size() < limit_) {
      slots_.push_back(Slot{std::move(message), 0});
      return;
    }
    ++overflows_;
    coalesce();
    if (message.kind == MessageKind::value) {
      for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
        if (it->message.kind == MessageKind::value && it->message.item == message.item) {
          it->message.text = std::move(message.text);
          ++it->skipped;
          return;
        }
      }
    } else if (message.kind == MessageKind::change) {
      drop_collection_slots(message.item);
      message.kind = MessageKind::resync;
      message.text.reset();
    }
    slots_.push_back(Slot{std::move(message), 0});
  }

  // The next message to send, or nullopt when empty.
  std::optional<Outgoing> pop() {
    if (slots_.empty()) return std::nullopt;
    Slot slot = std::move(slots_.front());
    slots_.pop_front();
    Outgoing out{std::move(slot.message.item), slot.message.kind, {}};
    if (slot.message.text) out.text = *slot.message.text;
    if (out.kind == MessageKind::value) out.text += ",\"skipped\":" + std::to_string(slot.skipped) + "}";
    return out;
  }

  // Drops everything queued for `item` (the browser unsubscribed).
  void forget(const std::string& item) {
    std::erase_if(slots_, [&](const Slot& s) { return s.message.item == item; });
  }

  bool empty() const noexcept { return slots_.empty(); }
  std::size_t size() const noexcept { return slots_.size(); }
  // Pushes that found the queue full.
  std::uint64_t overflows() const noexcept { return overflows_; }

 private:
  struct Slot {
    OutMessage message;
    std::uint64_t skipped = 0;
  };

  // Keeps one value slot per item (the latest, at its place), adding to its
  // skip count the values it replaces and their own skips.
  void coalesce() {
    std::unordered_map<std::string, std::size_t> latest;  // item -> index of its last value slot
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].message.kind == MessageKind::value) latest[slots_[i].message.item] = i;
    std::deque<Slot> kept;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = slots_[i];
      if (slot.message.kind == MessageKind::value) {
        std::size_t last = latest[slot.message.item];
        if (last != i) {
          slots_[last].skipped += 1 + slot.skipped;
          continue;
        }
      }
      kept.push_back(std::move(slot));
    }
    slots_.swap(kept);
  }

  bool resync_pending(const std::string& item) const {
    for (const auto& slot : slots_)
      if (slot.message.kind == MessageKind::resync && slot.message.item == item) return true;
    return false;
  }

  void drop_collection_slots(const std::string& item) {
    std::erase_if(slots_, [&](const Slot& s) {
      return s.message.item == item && (s.message.kind == MessageKind::snapshot ||
                                        s.message.kind == MessageKind::change || s.message.kind == MessageKind::resync);
    });
  }

  std::size_t limit_;
  std::deque<Slot> slots_;
  std::uint64_t overflows_ = 0;
};

}  // namespace mkweb
