// Logging set-up: one shared stderr sink behind every mktl logger, levels from
// -v/-d or $MKTL_LOG ("debug", or "info,mktl.transport=trace").
#include <mktl/log.hpp>

#include "config/logger.hpp"

#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace mktl {

namespace {

constexpr const char* kPattern = "%Y-%m-%d %H:%M:%S.%e %^%l%$ %n: %v";
constexpr const char* kLoggerNames[] = {"mktl.transport", "mktl.runtime",  "mktl.client",
                                        "mktl.discovery", "mktl.persist", "mktl.registry"};

std::optional<spdlog::level::level_enum> level_named(std::string_view name) {
  if (name == "warning") return spdlog::level::warn;
  if (name == "critical") return spdlog::level::critical;
  for (int i = spdlog::level::trace; i < spdlog::level::n_levels; ++i) {
    const auto level = static_cast<spdlog::level::level_enum>(i);
    const auto& text = spdlog::level::to_string_view(level);
    if (std::string_view(text.data(), text.size()) == name) return level;
  }
  return std::nullopt;
}

struct LogState {
  std::mutex mutex;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> sink;
  spdlog::level::level_enum level = spdlog::level::warn;
  std::map<std::string, spdlog::level::level_enum, std::less<>> overrides;  // from "name=level"

  LogState() : sink(std::make_shared<spdlog::sinks::dist_sink_mt>()) {
    auto err = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    err->set_pattern(kPattern);
    sink->add_sink(err);
    read_env();
  }

  // $MKTL_LOG: a default level and/or name=level entries, comma-separated;
  // unknown words are ignored rather than fatal.
  bool env_level = false;
  void read_env() {
    const char* env = std::getenv("MKTL_LOG");
    if (!env) return;
    std::string_view rest(env);
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view entry = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      const auto eq = entry.find('=');
      if (eq == std::string_view::npos) {
        if (auto l = level_named(entry)) {
          level = *l;
          env_level = true;
        }
      } else if (auto l = level_named(entry.substr(eq + 1))) {
        overrides[std::string(entry.substr(0, eq))] = *l;
      }
    }
  }

  spdlog::level::level_enum level_for(const std::string& name) const {
    auto it = overrides.find(name);
    return it == overrides.end() ? level : it->second;
  }
};

LogState& state() {
  static LogState s;  // never destroyed before loggers that hold its sink
  return s;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const char* name) {
  if (auto existing = spdlog::get(name)) return existing;
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (auto existing = spdlog::get(name)) return existing;
  auto created = std::make_shared<spdlog::logger>(name, s.sink);
  created->set_level(s.level_for(name));
  created->flush_on(spdlog::level::warn);
  try {
    spdlog::register_logger(created);
  } catch (const spdlog::spdlog_ex&) {
    // Someone outside the library registered the name first: use theirs.
    if (auto existing = spdlog::get(name)) return existing;
  }
  return created;
}

void setup_logging(int verbosity) {
  auto& s = state();
  {
    std::lock_guard lock(s.mutex);
    if (!s.env_level)
      s.level = verbosity <= 0 ? spdlog::level::warn : verbosity == 1 ? spdlog::level::info : spdlog::level::debug;
    auto main = std::make_shared<spdlog::logger>("mktl", s.sink);
    main->set_level(s.level_for("mktl"));
    main->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(std::move(main));
  }
  for (const char* name : kLoggerNames) logger(name);
  // Existing mktl loggers (including ones created before this call) follow.
  std::lock_guard lock(s.mutex);
  spdlog::apply_all([&s](const std::shared_ptr<spdlog::logger>& l) {
    if (l->name().rfind("mktl", 0) == 0) l->set_level(s.level_for(l->name()));
  });
}

std::string thousands(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

namespace {

// Whole seconds, rounded up: "in the last 10 s".
long long seconds_of(LogLimit::Clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms <= 0 ? 0 : (ms + 999) / 1000;
}

}  // namespace

LogLimit::LogLimit(std::shared_ptr<spdlog::logger> logger, spdlog::level::level_enum level, Clock::duration window,
                   int burst, std::function<Clock::time_point()> now)
    : logger_(std::move(logger)),
      level_(level),
      window_(window),
      burst_(burst < 1 ? 1 : burst),
      now_(now ? std::move(now) : std::function<Clock::time_point()>([] { return Clock::now(); })) {}

LogLimit::~LogLimit() {
  std::lock_guard lock(mutex_);
  if (suppressed_ == 0) return;
  try {
    logger_->log(level_, "{} similar messages suppressed in the last {} s (\"{}\")", thousands(suppressed_),
                 seconds_of(now_() - window_start_), format_);
  } catch (...) {
  }
}

std::optional<std::string> LogLimit::admit(std::string_view format) {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  std::string suffix;
  if (!started_ || now - window_start_ >= window_) {
    if (suppressed_ > 0)
      suffix = " (" + thousands(suppressed_) + " similar messages suppressed in the last " +
               std::to_string(seconds_of(now - window_start_)) + " s)";
    started_ = true;
    window_start_ = now;
    in_window_ = 0;
    suppressed_ = 0;
  }
  if (in_window_ >= burst_) {
    ++suppressed_;
    ++suppressed_total_;
    if (format_.empty()) format_ = std::string(format);
    return std::nullopt;
  }
  ++in_window_;
  return suffix;
}

std::uint64_t LogLimit::suppressed_total() const {
  std::lock_guard lock(mutex_);
  return suppressed_total_;
}

}  // namespace mktl
