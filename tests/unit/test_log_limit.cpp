// The rate limit of log sites a peer can hit at will (issue 14, "Found from
// outside": a fuzz run wrote 16,000 warning lines). A fake clock: no sleeps.
#include <catch2/catch.hpp>

#include "config/logger.hpp"

#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_log_limit {

namespace {

using namespace std::chrono_literals;
using Clock = mktl::LogLimit::Clock;

struct Captured {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  Captured() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_pattern("%l %v");
    logger = std::make_shared<spdlog::logger>("test.limit", sink);
    logger->set_level(spdlog::level::info);
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> all;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) all.push_back(line);
    return all;
  }
};

}  // namespace

TEST_CASE("thousands() groups digits", "[log]") {
  CHECK(mktl::thousands(0) == "0");
  CHECK(mktl::thousands(999) == "999");
  CHECK(mktl::thousands(1000) == "1,000");
  CHECK(mktl::thousands(1234567) == "1,234,567");
  CHECK(mktl::thousands(18446744073709551615ull) == "18,446,744,073,709,551,615");
}

TEST_CASE("LogLimit lets a burst through per window and counts the rest", "[log]") {
  Captured captured;
  Clock::time_point now{};
  {
    mktl::LogLimit limit(captured.logger, spdlog::level::warn, 10s, 3, [&] { return now; });
    for (int i = 0; i < 1237; ++i) limit("bad frame {}", i);
    CHECK(captured.lines() == std::vector<std::string>{"warning bad frame 0", "warning bad frame 1", "warning bad frame 2"});
    CHECK(limit.suppressed_total() == 1234);

    now += 9s;  // still the same window
    limit("bad frame {}", 9999);
    CHECK(captured.lines().size() == 3);

    now += 2s;  // the window is over: the next line tells what was left out
    limit("bad frame {}", 42);
    REQUIRE(captured.lines().size() == 4);
    CHECK(captured.lines()[3] == "warning bad frame 42 (1,235 similar messages suppressed in the last 11 s)");

    // A quiet site logs every line again, without a count.
    now += 60s;
    limit("bad frame {}", 43);
    CHECK(captured.lines().back() == "warning bad frame 43");
    limit("bad frame {}", 44);
    limit("bad frame {}", 45);
    limit("bad frame {}", 46);  // the 4th in this window
    now += 3s;
  }
  // Left out at the end: told when the limit goes away.
  CHECK(captured.lines().back() == "warning 1 similar messages suppressed in the last 3 s (\"bad frame {}\")");
}

TEST_CASE("LogLimit counts nothing when its level is off", "[log]") {
  Captured captured;
  captured.logger->set_level(spdlog::level::err);
  Clock::time_point now{};
  {
    mktl::LogLimit limit(captured.logger, spdlog::level::warn, 10s, 1, [&] { return now; });
    for (int i = 0; i < 100; ++i) limit("x {}", i);
    CHECK(limit.suppressed_total() == 0);
  }
  CHECK(captured.out.str().empty());
}

}  // namespace test_log_limit
