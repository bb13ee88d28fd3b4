#include "common/worker_pool.hpp"
#include "common/thread_name.hpp"

#include "config/logger.hpp"

#include <list>

namespace mktl::detail {

// Shared by the pool and its threads: a thread the pool gave up on (detached
// at stop while item code held it) may return after the pool is gone.
struct WorkerPool::State : std::enable_shared_from_this<State> {
  struct Worker {
    std::thread thread;
    Clock::time_point busy_since{};
    bool busy = false;
    bool stuck = false;
    bool ended = false;  // its loop returned: join it
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::condition_variable idle_cv;
  std::deque<std::function<void()>> tasks;
  int busy = 0;
  int stuck = 0;
  bool stopping = false;
  bool abandoned = false;  // shutdown's grace ran out: take no more tasks
  std::list<Worker> workers;  // stable addresses: each thread holds its own

  void spawn() {  // with mutex held
    Worker& w = workers.emplace_back();
    w.thread = std::thread([self = shared_from_this(), &w] { self->run(w); });
  }
  void reap() {  // with mutex held: joins retired threads (their loops returned)
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->ended && it->thread.joinable() && it->thread.get_id() != std::this_thread::get_id()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }
  void run(Worker& self);
};

void WorkerPool::State::run(Worker& self) {
  mktl::detail::name_this_thread("mktl-worker");
  std::unique_lock lock(mutex);
  while (true) {
    cv.wait(lock, [&] { return stopping || !tasks.empty(); });
    if (tasks.empty() || abandoned) break;  // stopping and drained, or given up
    auto task = std::move(tasks.front());
    tasks.pop_front();
    ++busy;
    self.busy = true;
    self.busy_since = Clock::now();
    lock.unlock();
    try {
      task();
    } catch (const std::exception& e) {
      logger("mktl.runtime")->error("a worker task failed: {}", e.what());
    } catch (...) {
      logger("mktl.runtime")->error("a worker task failed with a non-standard exception");
    }
    task = nullptr;
    lock.lock();
    --busy;
    self.busy = false;
    if (busy == 0 && tasks.empty()) idle_cv.notify_all();
    if (self.stuck) {
      // Replaced while its task ran: the pool is a thread over its size.
      --stuck;
      logger("mktl.runtime")->warn("a worker thread given up on returned from item code; it retires");
      break;
    }
  }
  self.ended = true;
}

WorkerPool::WorkerPool(int threads) : state_(std::make_shared<State>()) {
  if (threads < 1) threads = 1;
  std::lock_guard lock(state_->mutex);
  for (int i = 0; i < threads; ++i) state_->spawn();
}

WorkerPool::~WorkerPool() { shutdown(); }

int WorkerPool::replace_stuck(Clock::time_point cutoff, int max_stuck) {
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.stopping) return 0;
  s.reap();
  int now = 0;
  for (auto& w : s.workers) {
    if (!w.busy || w.stuck || w.busy_since >= cutoff) continue;
    if (s.stuck >= max_stuck) {
      logger("mktl.runtime")->error("{} worker threads are held by item code that does not return; no more are added",
                                    s.stuck);
      break;
    }
    w.stuck = true;
    ++s.stuck;
    ++now;
    s.spawn();
  }
  return now;
}

int WorkerPool::stuck() const {
  std::lock_guard lock(state_->mutex);
  return state_->stuck;
}

void WorkerPool::shutdown(std::chrono::nanoseconds grace) {
  auto& s = *state_;
  std::list<State::Worker*> to_join;
  {
    std::unique_lock lock(s.mutex);
    if (s.stopping) return;
    s.stopping = true;
    s.cv.notify_all();
    auto idle = [&] { return s.tasks.empty() && s.busy == 0; };
    if (grace > std::chrono::nanoseconds::zero() && !s.idle_cv.wait_for(lock, grace, idle)) {
      s.abandoned = true;
      if (!s.tasks.empty())
        logger("mktl.runtime")->error("stopping: {} queued task(s) dropped behind item code that did not return",
                                      s.tasks.size());
      s.tasks.clear();
    }
    for (auto& w : s.workers) {
      if (!w.thread.joinable()) continue;
      if (s.abandoned && w.busy) {
        // Its task may never return: joining would hang the stop.
        logger("mktl.runtime")->error("stopping with a worker thread still held by item code that does not return");
        w.thread.detach();
      } else {
        to_join.push_back(&w);
      }
    }
  }
  // Entries are not erased once stopping, so the pointers stay valid.
  for (auto* w : to_join) w->thread.join();
}

void WorkerPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(state_->mutex);
    state_->tasks.push_back(std::move(task));
  }
  state_->cv.notify_one();
}

void WorkerPool::wait_idle() {
  auto& s = *state_;
  std::unique_lock lock(s.mutex);
  s.idle_cv.wait(lock, [&] { return s.tasks.empty() && s.busy == 0; });
}

void Strand::post(std::function<void()> task) {
  bool start;
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
    start = !running_;
    running_ = true;
  }
  if (start) pool_.post([self = shared_from_this()] { self->drain(); });
}

void Strand::drain() {
  // Run a bounded batch, then yield the worker so one busy item cannot starve others.
  for (int n = 0; n < 32; ++n) {
    std::function<void()> task;
    {
      std::lock_guard lock(mutex_);
      if (tasks_.empty()) {
        running_ = false;
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      logger("mktl.runtime")->error("an item task failed: {}", e.what());
    } catch (...) {
      logger("mktl.runtime")->error("an item task failed with a non-standard exception");
    }
  }
  pool_.post([self = shared_from_this()] { self->drain(); });
}

}  // namespace mktl::detail
