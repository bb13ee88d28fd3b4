#include "runtime/scheduler.hpp"
#include "common/thread_name.hpp"

namespace mktl::detail {

Scheduler::Scheduler() : thread_([this](std::stop_token st) { run(st); }) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  cv_.notify_all();
  thread_.join();
}

void Scheduler::schedule(std::uint64_t id, std::chrono::nanoseconds period, std::function<void()> fire) {
  if (period < std::chrono::milliseconds(1)) period = std::chrono::milliseconds(1);
  {
    std::lock_guard lock(mutex_);
    auto& t = timers_[id];
    t.period = period;
    t.fire = std::move(fire);
    ++t.generation;
    heap_.push({Clock::now() + period, id, t.generation});
  }
  cv_.notify_all();
}

void Scheduler::cancel(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  timers_.erase(id);  // stale heap entries are skipped when they come due
}

void Scheduler::run(std::stop_token stop) {
  mktl::detail::name_this_thread("mktl-poll");
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    if (heap_.empty()) {
      cv_.wait(lock, stop, [&] { return !heap_.empty(); });
      continue;
    }
    auto due = heap_.top().due;
    if (Clock::now() < due) {
      cv_.wait_until(lock, stop, due, [&] { return !heap_.empty() && heap_.top().due < due; });
      continue;
    }
    Entry e = heap_.top();
    heap_.pop();
    auto it = timers_.find(e.id);
    if (it == timers_.end() || it->second.generation != e.generation) continue;
    auto& t = it->second;
    // Next time from the schedule, not from now, so periods do not drift; but
    // never queue a backlog after a stall.
    auto next = e.due + t.period;
    auto now = Clock::now();
    if (next <= now) next = now + t.period;
    heap_.push({next, e.id, e.generation});
    auto fire = t.fire;
    lock.unlock();
    fire();
    lock.lock();
  }
}

}  // namespace mktl::detail
