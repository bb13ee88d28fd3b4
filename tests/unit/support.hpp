// Helpers shared by the in-process tests.
#pragma once

#include <mktl/mktl.hpp>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <optional>
#include <thread>
#include <vector>

namespace test {

// The mktl::Error that `f` throws (a daemon's error REP, say); an Error of
// type "none" when it throws nothing.
inline mktl::Error remote_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const mktl::Error& e) {
    return e;
  }
  return mktl::Error("none", "no error raised");
}

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
  o.dns_sd_timeout = 0;  // DNS-SD would show daemons of other tests running beside
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

// The next multipart message on `socket` as strings, or nullopt after `timeout`.
inline std::optional<std::vector<std::string>> recv_frames(zmq::socket_t& socket, std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
    std::vector<std::string> out;
    while (true) {
      zmq::message_t m;
      (void)socket.recv(m, zmq::recv_flags::none);
      out.push_back(m.to_string());
      if (!m.more()) break;
    }
    return out;
}

// A DEALER speaking protocol 'a' by hand, so tests check the daemon's bytes
// independently of mktl::Client. Owns its own ZeroMQ context.
struct RawDealer {
  using Frames = std::vector<std::string>;
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::dealer};
  explicit RawDealer(const std::string& endpoint) {
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
  }
  void send(const Frames& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i)
      socket.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  // A request [a, id, type, target, flags, payload(, bulk)].
  void request(const std::string& id, const std::string& type, const std::string& target,
               const std::string& payload = {}, const std::string& flags = {},
               const std::optional<std::string>& bulk = std::nullopt) {
    Frames f{"a", id, type, target, flags, payload};
    if (bulk) f.push_back(*bulk);
    send(f);
  }
  // The next message, or nullopt after `timeout`.
  std::optional<Frames> recv(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return recv_frames(socket, timeout);
  }
  // Sends a GET and returns its REP (skipping the ACK); checks nothing else.
  std::optional<Frames> roundtrip(const std::string& id, const std::string& type, const std::string& target,
                                  const std::string& payload = {}) {
    request(id, type, target, payload);
    for (int i = 0; i < 4; ++i) {
      auto m = recv();
      if (!m) return std::nullopt;
      if (m->size() >= 3 && (*m)[1] == id && (*m)[2] == "REP") return m;
    }
    return std::nullopt;
  }
};

// A SUB on a daemon's PUB endpoint, with its own context.
struct RawSub {
  using Frames = std::vector<std::string>;
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::sub};
  RawSub(const std::string& endpoint, const std::string& topic) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::subscribe, topic);
    socket.connect(endpoint);
  }
  std::optional<Frames> recv(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return recv_frames(socket, timeout);
  }
};

// Calls `poke` (which should cause a broadcast) until `arrived` holds, bounded:
// gets past ZeroMQ's slow-joiner window without sleeping blindly.
inline bool until_subscribed(const std::function<void(int)>& poke, const std::function<bool()>& arrived,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
    poke(i);
    if (wait_until(arrived, std::chrono::milliseconds(50))) return true;
  }
  return false;
}

}  // namespace test
