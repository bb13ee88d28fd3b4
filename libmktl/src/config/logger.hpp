// The library's named loggers ("mktl.transport", "mktl.runtime", ...).
//
// Every module logs through mktl::logger("mktl.<module>"). Until an
// executable calls setup_logging(), these loggers write warnings and errors
// (or the level $MKTL_LOG names) to stderr, so that errors are never silent;
// setup_logging() then sets the level from -v/-d. The library never touches
// spdlog's default logger or the sinks of loggers it did not create.
//
// Thread-safe. The lookup takes a lock: fetch the logger once (e.g. keep it in
// a member or a function-local static), not per message.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mktl {

// The logger `name`, created on first use with the library's stderr sink.
std::shared_ptr<spdlog::logger> logger(const char* name);

// "1234567" -> "1,234,567", for counts people read in logs.
std::string thousands(std::uint64_t n);

// A rate limit for one log site that outsiders can trigger at will (a
// malformed frame, an oversized request, a full subscriber queue): at most
// `burst` lines per `window`; the rest are counted, not formatted, and the
// next line let through says how many were left out ("... (1,234 similar
// messages suppressed in the last 10 s)"). Lines left out at the end are
// reported when the limit is destroyed. Thread-safe.
class LogLimit {
 public:
  using Clock = std::chrono::steady_clock;
  LogLimit(std::shared_ptr<spdlog::logger> logger, spdlog::level::level_enum level,
           Clock::duration window = std::chrono::seconds(10), int burst = 5,
           std::function<Clock::time_point()> now = {});
  ~LogLimit();
  LogLimit(const LogLimit&) = delete;
  LogLimit& operator=(const LogLimit&) = delete;

  template <class... Args>
  void operator()(fmt::format_string<Args...> format, Args&&... args) {
    if (!logger_->should_log(level_)) return;
    const fmt::string_view text = format;
    auto suffix = admit(std::string_view(text.data(), text.size()));
    if (!suffix) return;
    logger_->log(level_, "{}{}", fmt::format(format, std::forward<Args>(args)...), *suffix);
  }

  // Lines left out so far (for tests).
  std::uint64_t suppressed_total() const;

 private:
  // nullopt: leave this line out; else the text to append to it.
  std::optional<std::string> admit(std::string_view format);

  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum level_;
  Clock::duration window_;
  int burst_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mutex_;
  Clock::time_point window_start_{};
  bool started_ = false;
  int in_window_ = 0;
  std::uint64_t suppressed_ = 0;        // in the current window
  std::uint64_t suppressed_total_ = 0;  // ever
  std::string format_;                  // the site's format string, for the last report
};

}  // namespace mktl
