#include "runtime/watchdog.hpp"
#include "common/thread_name.hpp"

#include "config/logger.hpp"

#include <cstdio>

namespace mktl::detail {

namespace {
std::string secs_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}
}  // namespace

bool GuardedReply::claim() {
  int state = state_.load();
  while (state != kAnswered)
    if (state_.compare_exchange_weak(state, kAnswered)) return true;
  logger("mktl.runtime")->warn("{} answered after its deadline; that answer is dropped (the client had a TimeoutError)",
                               what_);
  return false;
}

void GuardedReply::send(std::string payload, std::optional<Bulk> bulk) {
  if (claim()) reply_.send(std::move(payload), std::move(bulk));
}

void GuardedReply::send_shared(std::shared_ptr<const std::string> payload, std::optional<Bulk> bulk) {
  if (claim()) reply_.send_shared(std::move(payload), std::move(bulk));
}

void GuardedReply::error(std::string_view type, std::string_view text) {
  if (claim()) reply_.error(type, text);
}

void GuardedReply::abandon() {
  int state = state_.load();
  while (state != kAnswered)
    if (state_.compare_exchange_weak(state, kAnswered)) {
      reply_.error("TimeoutError", what_ + " was still waiting for item code when the daemon stopped");
      return;
    }
}

bool GuardedReply::expire(double timeout_s) {
  int state = state_.load();
  while (state != kAnswered) {
    if (state_.compare_exchange_weak(state, kAnswered)) {
      bool running = state == kRunning;
      reply_.error("TimeoutError", what_ + (running ? " did not return within " : " waited behind a hook for more than ") +
                                       secs_text(timeout_s) + " s (the daemon's hook timeout)");
      return running;
    }
  }
  return false;
}

HookWatchdog::HookWatchdog(WorkerPool& pool, double timeout_s)
    : pool_(pool),
      timeout_s_(timeout_s),
      timeout_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s > 0 ? timeout_s : 0))) {
  if (timeout_s_ > 0) thread_ = std::jthread([this] { run(); });
}

HookWatchdog::~HookWatchdog() { stop(); }

void HookWatchdog::stop() {
  std::deque<Entry> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    left.swap(entries_);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The daemon stops: requests still waiting for item code are answered now,
  // while the server can still send.
  for (auto& e : left)
    if (auto r = e.reply.lock()) r->abandon();
}

std::shared_ptr<GuardedReply> HookWatchdog::watch(transport::Reply reply, std::string what) {
  // Not make_shared: the entry's weak_ptr must not keep the reply's memory.
  std::shared_ptr<GuardedReply> guarded(new GuardedReply(std::move(reply), std::move(what)));
  if (timeout_s_ <= 0) return guarded;
  std::lock_guard lock(mutex_);
  // Answered requests leave the front here, so the queue holds only those
  // behind the oldest one still open.
  while (!entries_.empty()) {
    auto front = entries_.front().reply.lock();
    if (front && !front->answered()) break;
    entries_.pop_front();
  }
  entries_.push_back({Clock::now() + timeout_, guarded});
  // The thread wakes at least once a second, and the timeout is rarely shorter.
  if (entries_.size() == 1 && timeout_ < std::chrono::seconds(1)) cv_.notify_one();
  return guarded;
}

void HookWatchdog::run() {
  mktl::detail::name_this_thread("mktl-watchdog");
  auto log = logger("mktl.runtime");
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto wake = Clock::now() + std::chrono::seconds(1);
    if (!entries_.empty() && entries_.front().deadline < wake) wake = entries_.front().deadline;
    cv_.wait_until(lock, wake, [&] { return stopping_; });
    if (stopping_) break;
    auto now = Clock::now();
    std::vector<std::shared_ptr<GuardedReply>> due;
    while (!entries_.empty() && entries_.front().deadline <= now) {
      if (auto r = entries_.front().reply.lock(); r && !r->answered()) due.push_back(std::move(r));
      entries_.pop_front();
    }
    lock.unlock();
    for (auto& r : due) r->expire(timeout_s_);
    if (!due.empty()) {
      expired_.fetch_add(due.size());
      log->warn("{} request(s) answered with TimeoutError: their item's hook did not answer within {} s (first: {})",
                due.size(), secs_text(timeout_s_), due.front()->what());
    }
    // Threads held past the timeout (a request's hook or a poll) are replaced.
    if (int n = pool_.replace_stuck(now - timeout_); n > 0)
      log->error("{} worker thread(s) held by item code for more than {} s; replaced so that other items keep working",
                 n, secs_text(timeout_s_));
    due.clear();
    lock.lock();
  }
}

}  // namespace mktl::detail
