// mktl::Future<T>: the outcome of an asynchronous request (Client::get_async
// gives a Future<Reading>, Client::set_async a Future<void>).
//
//   auto f = client.get_async("heater.temp");
//   ...
//   double t = f.get().value;       // blocks until the REP; throws its error
//
// It reads like std::future: get() waits, then returns the value or throws
// the request's error, once; wait_for() returns std::future_status. What
// differs is the cost: completing a request nobody is waiting on yet makes
// no system call (std::promise always makes one), which is what keeps many
// requests in flight cheap.
//
// Threading promise: ready(), wait(), wait_for() and wait_until() may be
// called from several threads at once on the same Future, and all of them
// wake when the request completes; get() changes the Future, so no other call
// on it may run at the same time.
#pragma once

#include <mktl/reading.hpp>

#include <chrono>
#include <future>
#include <memory>

namespace mktl {

class Client;
namespace detail {
class FutureState;
}

template <class T>
class Future {
  static_assert(std::is_same_v<T, Reading> || std::is_void_v<T>, "mktl::Future holds a Reading or nothing");

 public:
  Future() noexcept = default;

  // False for a default-constructed Future and after get().
  bool valid() const noexcept { return static_cast<bool>(state_); }
  // True once the request completed (get() will not block).
  bool ready() const;
  void wait() const;
  template <class Rep, class Period>
  std::future_status wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return wait_seconds(std::chrono::duration<double>(timeout).count());
  }
  template <class Clock, class Duration>
  std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    return wait_seconds(std::chrono::duration<double>(deadline - Clock::now()).count());
  }
  // Waits, then returns the value or throws the request's error (mktl::Error
  // with the daemon's type and text, TimeoutError without an ACK). The Future
  // is no longer valid afterwards. Throws std::future_error if not valid().
  T get();

 private:
  friend class Client;
  explicit Future(std::shared_ptr<detail::FutureState> state) noexcept : state_(std::move(state)) {}
  std::future_status wait_seconds(double seconds) const;
  std::shared_ptr<detail::FutureState> state_;
};

extern template class Future<Reading>;
extern template class Future<void>;

}  // namespace mktl
