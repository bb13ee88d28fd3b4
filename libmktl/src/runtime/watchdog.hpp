// Deadlines for item hooks. A request whose hook (req_get, validate, req_set)
// has not answered within the daemon's hook timeout is answered with
// TimeoutError by the watchdog's thread; the hook's own answer, if it ever
// comes, is dropped and logged. Requests queued behind a stuck hook on the
// same item time out the same way and never run. Worker threads held by a
// stuck hook (a request's or a poll's) are replaced, so other items keep
// working.
#pragma once

#include "common/worker_pool.hpp"
#include "transport/server.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace mktl::detail {

// A reply shared by a hook's task and the watchdog: whichever answers first wins.
class GuardedReply {
 public:
  GuardedReply(transport::Reply reply, std::string what) : reply_(std::move(reply)), what_(std::move(what)) {}

  // Called when the task starts; false when the request already timed out
  // while it waited (the task must then not run the hook at all).
  bool begin() {
    int expected = kQueued;
    return state_.compare_exchange_strong(expected, kRunning);
  }
  void send(std::string payload, std::optional<Bulk> bulk = std::nullopt);
  void send_shared(std::shared_ptr<const std::string> payload, std::optional<Bulk> bulk = std::nullopt);
  void error(std::string_view type, std::string_view text);
  // The watchdog's answer: TimeoutError, unless the hook answered first.
  // Returns whether the hook was running (it holds a worker thread).
  bool expire(double timeout_s);
  // The daemon stops with the request still open: TimeoutError, saying so.
  void abandon();
  bool answered() const { return state_.load() == kAnswered; }
  const std::string& what() const { return what_; }

 private:
  enum { kQueued, kRunning, kAnswered };
  bool claim();
  std::atomic<int> state_{kQueued};
  transport::Reply reply_;  // touched only by whoever claimed the answer
  std::string what_;        // "store.key req_set", for the log
};

class HookWatchdog {
 public:
  using Clock = std::chrono::steady_clock;
  // timeout_s <= 0 turns deadlines off (watch() then only wraps the reply).
  HookWatchdog(WorkerPool& pool, double timeout_s);
  ~HookWatchdog();

  // Wraps `reply` for a hook that is about to be queued; the deadline runs
  // from now.
  std::shared_ptr<GuardedReply> watch(transport::Reply reply, std::string what);
  // Ends the thread, and answers the requests still open (TimeoutError).
  void stop();
  std::uint64_t expired() const { return expired_.load(); }

 private:
  void run();
  struct Entry {
    Clock::time_point deadline;
    std::weak_ptr<GuardedReply> reply;
  };
  WorkerPool& pool_;
  double timeout_s_;
  Clock::duration timeout_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Entry> entries_;  // in deadline order: every entry has the same timeout
  bool stopping_ = false;
  std::atomic<std::uint64_t> expired_{0};
  std::jthread thread_;
};

}  // namespace mktl::detail
