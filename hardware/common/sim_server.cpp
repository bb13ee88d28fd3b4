#include "sim_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <list>
#include <sstream>
#include <stdexcept>

namespace sim {

namespace {

// A command line longer than this is garbage, not a command.
constexpr std::size_t kMaxLine = 4096;
// Stop reading from a client that does not drain its answers.
constexpr std::size_t kMaxPendingOutput = 64u << 20;

int signal_pipe[2] = {-1, -1};

void on_signal(int) {
  // Only async-signal-safe calls here: wake the poll() loop.
  int saved = errno;
  char c = 1;
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &c, 1);
  errno = saved;
}

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

struct Client {
  int fd;
  std::string in;
  std::string out;
  bool closing = false;  // close once `out` is flushed
};

}  // namespace

struct SimServer::Impl {
  Handler handler;
  int listen_fd = -1;
  int port = 0;
  std::list<Client> clients;

  ~Impl() {
    for (auto& c : clients) ::close(c.fd);
    if (listen_fd >= 0) ::close(listen_fd);
  }

  void accept_clients() {
    for (;;) {
      int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) return;  // EAGAIN: no more pending; other errors: try again on next poll
      set_nonblocking(fd);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      clients.push_back(Client{fd, {}, {}});
    }
  }

  // Returns false when the client is gone.
  bool read_client(Client& c) {
    char buf[4096];
    bool eof = false;
    for (;;) {
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n == 0) {
        eof = true;  // answer what came before the half-close, then close
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        return false;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < sizeof buf) break;
    }
    std::size_t start = 0;
    for (;;) {
      std::size_t nl = c.in.find('\n', start);
      if (nl == std::string::npos) break;
      std::string line = c.in.substr(start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are ignored
      try {
        c.out += handler(line);
      } catch (const std::exception& e) {
        c.out += std::string("ERR ") + e.what() + "\n";
      }
    }
    c.in.erase(0, start);
    if (c.in.size() > kMaxLine) {
      c.out += "ERR line too long\n";
      c.closing = true;
      c.in.clear();
    }
    if (eof) c.closing = true;
    return true;
  }

  bool write_client(Client& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        return false;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    return !c.closing;
  }
};

SimServer::SimServer(const ServerOptions& options, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(options.port);
  int rc = ::getaddrinfo(options.host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) throw std::runtime_error("cannot resolve " + options.host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);

  int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) throw sys_error("socket");
  impl_->listen_fd = fd;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0)
    throw sys_error("cannot bind " + options.host + ":" + service);
  if (::listen(fd, 64) != 0) throw sys_error("listen");
  set_nonblocking(fd);

  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  if (bound.ss_family == AF_INET6)
    impl_->port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  else
    impl_->port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

SimServer::~SimServer() = default;

int SimServer::port() const noexcept { return impl_->port; }

int SimServer::run() {
  if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw sys_error("pipe");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({signal_pipe[0], POLLIN, 0});
    fds.push_back({impl_->listen_fd, POLLIN, 0});
    for (auto& c : impl_->clients) {
      short events = 0;
      if (!c.closing && c.out.size() < kMaxPendingOutput) events |= POLLIN;
      if (!c.out.empty()) events |= POLLOUT;
      fds.push_back({c.fd, events, 0});
    }
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw sys_error("poll");
    }
    if (fds[0].revents) break;  // SIGTERM/SIGINT
    if (fds[1].revents & POLLIN) impl_->accept_clients();

    std::size_t i = 2;
    for (auto it = impl_->clients.begin(); it != impl_->clients.end() && i < fds.size(); ++i) {
      short ev = fds[i].revents;
      bool alive = true;
      if (ev & POLLIN) alive = impl_->read_client(*it);
      else if (ev & (POLLHUP | POLLERR)) alive = false;
      if (alive && !it->out.empty()) alive = impl_->write_client(*it);
      else if (alive && it->closing) alive = false;
      if (!alive) {
        ::close(it->fd);
        it = impl_->clients.erase(it);
      } else {
        ++it;
      }
    }
  }
  ::close(signal_pipe[0]);
  ::close(signal_pipe[1]);
  signal_pipe[0] = signal_pipe[1] = -1;
  return 0;
}

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

std::string upper(std::string text) {
  for (auto& ch : text) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return text;
}

bool parse_number(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) return false;
  out = v;
  return true;
}

std::string format_number(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  auto dot = s.find('.');
  if (dot == std::string::npos) return s + ".0";
  while (s.size() > dot + 2 && s.back() == '0') s.pop_back();
  if (s == "-0.0") s = "0.0";
  return s;
}

}  // namespace sim
