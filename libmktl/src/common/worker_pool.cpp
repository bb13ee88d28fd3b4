#include "common/worker_pool.hpp"

#include "config/logger.hpp"

namespace mktl::detail {

WorkerPool::WorkerPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

WorkerPool::~WorkerPool() { shutdown(); }

void WorkerPool::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void WorkerPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void WorkerPool::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [&] { return tasks_.empty() && busy_ == 0; });
}

void WorkerPool::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping and drained
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    ++busy_;
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
    --busy_;
    if (busy_ == 0 && tasks_.empty()) idle_cv_.notify_all();
  }
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
