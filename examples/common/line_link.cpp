#include "line_link.hpp"

#include <mktl/error.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace mktl::examples {

namespace {

using Clock = std::chrono::steady_clock;

// A failure of the connection itself (as opposed to an ERR answer), worth one
// retry on a fresh connection.
struct LinkFailure : RuntimeError {
  using RuntimeError::RuntimeError;
};

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

bool parse_port(const std::string& text, int& port) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos) return false;
  port = std::atoi(text.c_str());
  return port > 0 && port <= 65535;
}

}  // namespace

Address controller_address(const Json& appconfig, const char* env_name) {
  const std::string hint = std::string("set appconfig {\"host\": ..., \"port\": N} or ") + env_name + "=host:port";
  auto split = [&](const std::string& text, const std::string& where) {
    auto colon = text.rfind(':');
    Address a;
    if (colon == std::string::npos || colon == 0 || !parse_port(text.substr(colon + 1), a.port))
      throw ConfigError(where, "", "controller address '" + text + "' is not host:port (port 1..65535)");
    a.host = text.substr(0, colon);
    return a;
  };
  if (appconfig.is_object()) {
    if (appconfig.contains("address") && appconfig["address"].is_string())
      return split(appconfig["address"].get<std::string>(), "appconfig");
    if (appconfig.contains("port")) {
      Address a;
      a.host = appconfig.value("host", std::string("127.0.0.1"));
      const Json& p = appconfig["port"];
      bool ok = (p.is_number_integer() && p.get<long long>() > 0 && p.get<long long>() <= 65535) ||
                (p.is_string() && parse_port(p.get<std::string>(), a.port));
      if (!ok) throw ConfigError("appconfig", "/port", "expected a TCP port number (1..65535)");
      if (p.is_number_integer()) a.port = static_cast<int>(p.get<long long>());
      return a;
    }
  }
  if (const char* env = std::getenv(env_name); env && *env) return split(env, env_name);
  throw ConfigError("appconfig", "", "no controller address: " + hint);
}

LineLink::LineLink(std::string name, Address address, std::chrono::milliseconds timeout)
    : name_(std::move(name)), address_(std::move(address)), timeout_(timeout) {}

LineLink::~LineLink() { close_locked(); }

void LineLink::close_locked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

void LineLink::fail(const std::string& what) {
  close_locked();
  throw LinkFailure(name_ + ": " + what);
}

void LineLink::connect_locked() {
  const std::string where = address_.host + ":" + std::to_string(address_.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(address_.port);
  if (int rc = ::getaddrinfo(address_.host.c_str(), service.c_str(), &hints, &found); rc != 0)
    fail("cannot resolve " + address_.host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);

  fd_ = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, found->ai_protocol);
  if (fd_ < 0) fail(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd_, found->ai_addr, found->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) fail("cannot connect to " + where + ": " + std::strerror(errno));
    if (!wait_for(fd_, POLLOUT, Clock::now() + timeout_)) fail("timeout connecting to " + where);
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) fail("cannot connect to " + where + ": " + std::strerror(err));
  }
}

LineLink::Answer LineLink::exchange_once(const std::string& line,
                                         const std::function<std::size_t(const std::string&)>* payload_size) {
  if (fd_ < 0) connect_locked();
  const auto deadline = Clock::now() + timeout_;
  buffer_.clear();  // stale bytes would shift every later answer

  std::string out = line + "\n";
  std::size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(fd_, POLLOUT, deadline)) fail("timeout sending '" + line + "'");
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      fail(std::string("connection lost: ") + std::strerror(errno));
    }
  }

  // Reads until `want(buffer_)` is satisfied.
  auto fill = [&](auto&& have_enough) {
    char buf[65536];
    while (!have_enough()) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        buffer_.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0) {
        fail("connection closed by the controller");
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_for(fd_, POLLIN, deadline)) fail("no answer to '" + line + "' within timeout");
      } else if (errno != EINTR) {
        fail(std::string("connection lost: ") + std::strerror(errno));
      }
    }
  };

  fill([&] { return buffer_.find('\n') != std::string::npos; });
  auto nl = buffer_.find('\n');
  Answer answer;
  answer.line = buffer_.substr(0, nl);
  if (!answer.line.empty() && answer.line.back() == '\r') answer.line.pop_back();
  buffer_.erase(0, nl + 1);

  if (payload_size && answer.line.rfind("ERR", 0) != 0) {
    std::size_t size = 0;
    try {
      size = (*payload_size)(answer.line);
    } catch (...) {
      close_locked();  // the stream position is unknown now
      throw;
    }
    fill([&] { return buffer_.size() >= size; });
    answer.payload = buffer_.substr(0, size);
    buffer_.erase(0, size);
  }
  return answer;
}

LineLink::Answer LineLink::exchange(const std::string& line,
                                    const std::function<std::size_t(const std::string&)>* payload_size) {
  std::lock_guard lock(mutex_);
  const bool reused = fd_ >= 0;
  try {
    return exchange_once(line, payload_size);
  } catch (const LinkFailure&) {
    // A kept connection may have died since its last use (controller
    // restarted): try once more on a fresh one. A fresh one failing is final.
    if (!reused) throw;
  }
  return exchange_once(line, payload_size);
}

std::string LineLink::command(const std::string& line) {
  Answer a = exchange(line, nullptr);
  if (a.line.rfind("ERR", 0) == 0) {
    std::string text = a.line.size() > 4 ? a.line.substr(4) : "error";
    throw RuntimeError(name_ + ": " + text);
  }
  return a.line;
}

LineLink::Answer LineLink::command_with_payload(const std::string& line,
                                                const std::function<std::size_t(const std::string&)>& payload_size) {
  Answer a = exchange(line, &payload_size);
  if (a.line.rfind("ERR", 0) == 0) {
    std::string text = a.line.size() > 4 ? a.line.substr(4) : "error";
    throw RuntimeError(name_ + ": " + text);
  }
  return a;
}

void LineLink::expect_ok(const std::string& line) {
  std::string answer = command(line);
  if (answer != "OK") throw RuntimeError(name_ + ": unexpected answer '" + answer + "' to '" + line + "'");
}

double parse_answer_number(const std::string& name, const std::string& answer, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v))
    throw RuntimeError(name + ": bad answer '" + answer + "'");
  return v;
}

double json_to_double(const Json& value) {
  if (value.is_number()) return value.get<double>();
  if (value.is_boolean()) return value.get<bool>() ? 1.0 : 0.0;
  if (value.is_string()) {
    const std::string s = value.get<std::string>();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return v;
    throw ValueError("could not convert string to float: '" + s + "'");
  }
  throw TypeError("expected a number, got " + std::string(value.type_name()));
}

}  // namespace mktl::examples
