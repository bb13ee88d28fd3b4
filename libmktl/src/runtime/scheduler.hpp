// One thread and a timer heap drive every periodic poll of a daemon. A due
// timer only posts work (to the item's strand); it never runs user code, so a
// slow poll delays nothing but its own item.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <thread>
#include <vector>

namespace mktl::detail {

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  Scheduler();
  ~Scheduler();

  // Calls `fire` every `period` until cancel(id) or a new schedule(id, ...).
  // `fire` runs on the scheduler thread and must only post work.
  void schedule(std::uint64_t id, std::chrono::nanoseconds period, std::function<void()> fire);
  void cancel(std::uint64_t id);
  void stop();

 private:
  struct Entry {
    Clock::time_point due;
    std::uint64_t id;
    std::uint64_t generation;
    bool operator>(const Entry& o) const { return due > o.due; }
  };
  struct Timer {
    std::chrono::nanoseconds period{};
    std::uint64_t generation = 0;
    std::function<void()> fire;
  };
  void run(std::stop_token stop);

  std::mutex mutex_;
  std::condition_variable_any cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  std::unordered_map<std::uint64_t, Timer> timers_;
  std::jthread thread_;
};

}  // namespace mktl::detail
