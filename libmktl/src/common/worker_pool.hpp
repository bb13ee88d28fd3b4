// A fixed pool of worker threads, and strands: queues whose tasks run one at a
// time, in order, on the pool (one strand per item keeps its hooks serial).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace mktl::detail {

// Wraps a move-only callable (one holding a Reply, say) as a std::function.
template <class F>
std::function<void()> share_task(F&& f) {
  auto held = std::make_shared<std::decay_t<F>>(std::forward<F>(f));
  return [held] { (*held)(); };
}

class WorkerPool {
 public:
  using Clock = std::chrono::steady_clock;
  explicit WorkerPool(int threads);
  ~WorkerPool();  // finishes queued tasks, then joins (see shutdown)
  void post(std::function<void()> task);
  // Blocks until no task is queued or running.
  void wait_idle();
  // Finishes queued tasks and joins the threads. With a `grace` > 0, waits at
  // most that long for the tasks: threads still held by one then are
  // detached (logged; what they share with the pool stays alive until they
  // end) and the queued tasks are dropped. Item code that never returns
  // would otherwise hang the daemon's stop.
  void shutdown(std::chrono::nanoseconds grace = {});
  // Gives up on the threads running one task since before `cutoff` (user code
  // that blocks): each gets a fresh thread in its place, so the pool keeps
  // its size for the other tasks, and retires when its task ends. At most
  // `max_stuck` threads are given up on at once. Returns how many were now.
  int replace_stuck(Clock::time_point cutoff, int max_stuck = 64);
  int stuck() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Tasks posted to one Strand run serially, in posting order, on the pool.
class Strand : public std::enable_shared_from_this<Strand> {
 public:
  explicit Strand(WorkerPool& pool) : pool_(pool) {}
  void post(std::function<void()> task);
  // Runs `task` right here when the strand is idle (nothing queued or
  // running), keeping the strand's order; false (and nothing run) otherwise.
  template <class F>
  bool run_if_idle(F&& task) {
    {
      std::lock_guard lock(mutex_);
      if (running_ || !tasks_.empty()) return false;
      running_ = true;
    }
    task();
    bool more;
    {
      std::lock_guard lock(mutex_);
      more = !tasks_.empty();
      running_ = more;
    }
    if (more) pool_.post([self = shared_from_this()] { self->drain(); });
    return true;
  }

 private:
  void drain();
  WorkerPool& pool_;
  std::mutex mutex_;
  std::deque<std::function<void()>> tasks_;
  bool running_ = false;
};

}  // namespace mktl::detail
