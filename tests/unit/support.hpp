// Helpers shared by the in-process tests.
#pragma once

#include <mktl/mktl.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>

namespace test {

// A fresh directory under the system temp dir, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("mktl-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

// Options for an isolated daemon on loopback with ephemeral ports.
inline mktl::DaemonOptions isolated(const TempDir& home) {
  mktl::DaemonOptions o;
  o.rep_endpoint = "tcp://127.0.0.1:0";
  o.pub_endpoint = "tcp://127.0.0.1:0";
  o.hostname = "127.0.0.1";
  o.home = home.str();
  return o;
}

inline mktl::ClientOptions client_options(const TempDir& home) {
  mktl::ClientOptions o;
  o.home = home.str() + "/client-home";
  o.ack_timeout = 1.0;  // generous: sanitizer builds on loaded machines are slow
  o.timeout = 20.0;
  return o;
}

// Waits (bounded) until `done` holds; polls with a condition variable tick.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock lock(m);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    cv.wait_for(lock, std::chrono::milliseconds(2));
  }
  return true;
}

// Collects broadcasts delivered to a subscription callback.
struct Collector {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<mktl::Reading> readings;
  mktl::Callback callback() {
    return [this](const std::string&, const mktl::Reading& r) {
      std::lock_guard lock(mutex);
      readings.push_back(r);
      cv.notify_all();
    };
  }
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return readings.size() >= n; });
  }
  bool wait_for_value(const mktl::Json& v, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] {
      for (auto& r : readings)
        if (r.value == v) return true;
      return false;
    });
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return readings.size();
  }
};

}  // namespace test
