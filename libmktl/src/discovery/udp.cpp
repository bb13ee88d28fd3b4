#include "discovery/udp.hpp"
#include "common/thread_name.hpp"

#include "discovery/logger.hpp"

#include <mktl/error.hpp>
#include <mktl/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

namespace mktl::discovery {

namespace {

using Clock = std::chrono::steady_clock;

// Python's bytes.strip(): ASCII whitespace at both ends.
std::string_view strip(std::string_view text) noexcept {
  constexpr std::string_view space = " \t\n\r\v\f";
  auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  auto last = text.find_last_not_of(space);
  return text.substr(first, last - first + 1);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

Fd udp_socket() {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw RuntimeError(errno_text("discovery: cannot create a UDP socket"));
  return fd;
}

void set_option(int fd, int option, const char* name) {
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, option, &one, sizeof one) != 0)
    throw RuntimeError(errno_text((std::string("discovery: setsockopt ") + name).c_str()));
}

std::string address_text(const sockaddr_in& address) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
  return text;
}

// IPv4 address of a host name or dotted quad; nullopt if it does not resolve.
std::optional<in_addr> resolve(const std::string& host) {
  in_addr out{};
  if (::inet_pton(AF_INET, host.c_str(), &out) == 1) return out;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* result = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0 || result == nullptr) return std::nullopt;
  out = reinterpret_cast<const sockaddr_in*>(result->ai_addr)->sin_addr;
  ::freeaddrinfo(result);
  return out;
}

int parse_port(const std::string& text, const char* source) {
  try {
    std::size_t used = 0;
    int port = std::stoi(text, &used);
    if (used == text.size() && port > 0 && port < 65536) return port;
  } catch (const std::exception&) {
  }
  throw ValueError(std::string(source) + ": not a port number: '" + text + "'");
}

std::string home_directory(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* home = std::getenv("MKTL_HOME"); home && *home) return home;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.mKTL";
  return {};
}

// Largest UDP payload over IPv4; anything bigger is truncated (and ignored).
constexpr std::size_t kMaxDatagram = 65536;

}  // namespace

bool is_call(std::string_view datagram) noexcept { return strip(datagram) == kCall; }

std::optional<int> parse_answer(std::string_view datagram) noexcept {
  auto text = strip(datagram);
  if (text.substr(0, kAnswer.size()) != kAnswer) return std::nullopt;
  auto digits = strip(text.substr(kAnswer.size()));
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  int port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + (c - '0');
  }
  if (port <= 0 || port > 65535) return std::nullopt;
  return port;
}

// ---- Config ------------------------------------------------------------------

Config Config::from_env(const std::string& mktl_home) {
  Config config;
  const std::string home = home_directory(mktl_home);

  if (!home.empty()) {
    const std::string path = home + "/discovery.json";
    std::ifstream in(path);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      Json file;
      try {
        file = Json::parse(text.str());
      } catch (const std::exception& e) {
        throw ValueError(path + ": " + e.what());
      }
      if (!file.is_object()) throw ValueError(path + ": expected a JSON object");
      if (auto it = file.find("broadcast"); it != file.end()) {
        if (!it->is_string()) throw ValueError(path + ": /broadcast: expected a string");
        config.broadcast = it->get<std::string>();
      }
      for (auto [name, field] : {std::pair{"daemon_port", &config.daemon_port},
                                 std::pair{"registry_port", &config.registry_port}}) {
        auto it = file.find(name);
        if (it == file.end()) continue;
        if (!it->is_number_integer() || it->get<long long>() <= 0 || it->get<long long>() > 65535)
          throw ValueError(path + ": /" + name + ": expected a port number");
        *field = it->get<int>();
      }
    }

    std::ifstream registries(home + "/client/registries");
    std::string line;
    while (std::getline(registries, line)) {
      line = line.substr(0, line.find('#'));
      std::istringstream words(line);
      std::string host;
      while (words >> host) config.hosts.push_back(host);
    }
  }

  if (const char* value = std::getenv("MKTL_BROADCAST"); value && *value) config.broadcast = value;
  if (const char* value = std::getenv("MKTL_DAEMON_PORT"); value && *value)
    config.daemon_port = parse_port(value, "MKTL_DAEMON_PORT");
  if (const char* value = std::getenv("MKTL_REGISTRY_PORT"); value && *value)
    config.registry_port = parse_port(value, "MKTL_REGISTRY_PORT");
  return config;
}

// ---- Responder ---------------------------------------------------------------

struct Responder::Impl {
  Fd socket;
  Fd wake_read;
  Fd wake_write;
  int port = 0;
  std::string answer;
  std::atomic<std::uint64_t> answered{0};
  std::map<std::pair<std::uint32_t, std::uint16_t>, Clock::time_point> seen;
  std::mutex stop_mutex;
  std::jthread thread;

  void run();
  void handle(const char* data, std::size_t size, const sockaddr_in& sender);
};

Responder::Responder(int port, int rep_port, const std::string& bind_address) : impl_(std::make_unique<Impl>()) {
  auto& impl = *impl_;
  impl.answer = std::string(kAnswer) + std::to_string(rep_port);
  impl.socket = udp_socket();
  set_option(impl.socket.get(), SO_REUSEADDR, "SO_REUSEADDR");
  set_option(impl.socket.get(), SO_REUSEPORT, "SO_REUSEPORT");
  // Needed to receive (and answer) on a broadcast-capable socket on some stacks.
  set_option(impl.socket.get(), SO_BROADCAST, "SO_BROADCAST");

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, bind_address.c_str(), &address.sin_addr) != 1)
    throw RuntimeError("discovery: not an IPv4 address: '" + bind_address + "'");
  if (::bind(impl.socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    throw RuntimeError(errno_text(("discovery: cannot bind UDP " + bind_address + ":" + std::to_string(port)).c_str()));
  socklen_t length = sizeof address;
  ::getsockname(impl.socket.get(), reinterpret_cast<sockaddr*>(&address), &length);
  impl.port = ntohs(address.sin_port);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) throw RuntimeError(errno_text("discovery: pipe"));
  impl.wake_read = Fd(pipe_fds[0]);
  impl.wake_write = Fd(pipe_fds[1]);

  impl.thread = std::jthread([&impl] { impl.run(); });
  log().debug("discovery responder on UDP {}:{} answers with port {}", bind_address, impl.port, rep_port);
}

Responder::~Responder() { stop(); }

void Responder::stop() {
  std::lock_guard lock(impl_->stop_mutex);
  if (!impl_->thread.joinable()) return;
  char byte = 0;
  // A full pipe already means "wake up"; the result does not matter.
  [[maybe_unused]] auto ignored = ::write(impl_->wake_write.get(), &byte, 1);
  impl_->thread.join();
}

int Responder::port() const noexcept { return impl_->port; }
std::uint64_t Responder::answered() const noexcept { return impl_->answered.load(); }

void Responder::Impl::run() {
  mktl::detail::name_this_thread("mktl-discovery");
  std::string buffer(kMaxDatagram, '\0');
  pollfd fds[2] = {{socket.get(), POLLIN, 0}, {wake_read.get(), POLLIN, 0}};
  for (;;) {
    int ready = ::poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      log().error("discovery responder: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    sockaddr_in sender{};
    socklen_t length = sizeof sender;
    ssize_t size = ::recvfrom(socket.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC,
                              reinterpret_cast<sockaddr*>(&sender), &length);
    if (size < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        log().warn("discovery responder: recvfrom failed: {}", std::strerror(errno));
      continue;
    }
    if (static_cast<std::size_t>(size) > buffer.size()) {
      log().debug("discovery responder: ignored an oversized datagram ({} bytes) from {}", size, address_text(sender));
      continue;
    }
    handle(buffer.data(), static_cast<std::size_t>(size), sender);
  }
}

void Responder::Impl::handle(const char* data, std::size_t size, const sockaddr_in& sender) {
  const std::string_view datagram(data, size);
  if (!is_call(datagram)) {
    log().debug("discovery responder: ignored a {}-byte datagram from {}:{}", size, address_text(sender),
                ntohs(sender.sin_port));
    return;
  }
  const auto now = Clock::now();
  // Forget senders not seen for a while so that the table stays small.
  std::erase_if(seen, [now](const auto& entry) { return now - entry.second >= std::chrono::seconds(1); });
  const auto key = std::pair{sender.sin_addr.s_addr, sender.sin_port};
  if (seen.contains(key)) {
    log().debug("discovery responder: throttled {}:{}", address_text(sender), ntohs(sender.sin_port));
    return;
  }
  // Counted before sending so that whoever reads our answer also sees the count.
  ++answered;
  if (::sendto(socket.get(), answer.data(), answer.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&sender),
               sizeof sender) < 0) {
    --answered;
    log().warn("discovery responder: cannot answer {}:{}: {}", address_text(sender), ntohs(sender.sin_port),
               std::strerror(errno));
    return;
  }
  seen[key] = now;
}

// ---- call --------------------------------------------------------------------

std::vector<Found> call(const Config& config, int port, double timeout_s, bool first_only, std::stop_token stop) {
  if (stop.stop_requested()) return {};
  Fd sock = udp_socket();
  // A stop request wakes the wait below through an eventfd.
  Fd wake;
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (stop.stop_possible()) {
    wake = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (wake.get() < 0) throw RuntimeError(errno_text("discovery: eventfd"));
    on_stop.emplace(stop, [fd = wake.get()] {
      std::uint64_t one = 1;
      // A full counter already means "wake up"; the result does not matter.
      [[maybe_unused]] auto ignored = ::write(fd, &one, sizeof one);
    });
  }
  set_option(sock.get(), SO_BROADCAST, "SO_BROADCAST");

  // Without a broadcast, the hosts asked are all that can answer: the wait
  // ends once each has (a registry listed in client/registries answers in
  // milliseconds; no need to sit out the timeout).
  std::set<in_addr_t> unanswered;
  auto send_to = [&](const std::string& host) {
    auto address = resolve(host);
    if (!address) {
      log().warn("discovery: cannot resolve '{}'", host);
      return;
    }
    unanswered.insert(address->s_addr);
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(static_cast<std::uint16_t>(port));
    target.sin_addr = *address;
    if (::sendto(sock.get(), kCall.data(), kCall.size(), 0, reinterpret_cast<const sockaddr*>(&target), sizeof target) < 0)
      log().warn("discovery: cannot send to {}:{}: {}", host, port, std::strerror(errno));
  };
  for (const auto& host : config.hosts) send_to(host);
  const bool hosts_only = config.broadcast.empty() && !unanswered.empty();
  if (!config.broadcast.empty()) send_to(config.broadcast);
  if (unanswered.empty()) return {};  // nowhere to ask: nobody can answer

  std::vector<Found> found;
  std::string buffer(kMaxDatagram, '\0');
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  for (;;) {
    int wait_ms = 0;
    // After the first answer in first_only mode, only drain what is queued.
    if (!(first_only && !found.empty())) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      wait_ms = static_cast<int>(left);
    }
    pollfd fds[2] = {{sock.get(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
    int ready = ::poll(fds, wake.get() >= 0 ? 2 : 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[1].revents != 0) break;
    sockaddr_in sender{};
    socklen_t length = sizeof sender;
    ssize_t size = ::recvfrom(sock.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC,
                              reinterpret_cast<sockaddr*>(&sender), &length);
    if (size < 0 || static_cast<std::size_t>(size) > buffer.size()) continue;
    auto rep = parse_answer(std::string_view(buffer.data(), static_cast<std::size_t>(size)));
    if (!rep) {
      log().debug("discovery: ignored a {}-byte answer from {}", size, address_text(sender));
      continue;
    }
    Found answer{address_text(sender), *rep};
    if (std::find(found.begin(), found.end(), answer) == found.end()) found.push_back(std::move(answer));
    unanswered.erase(sender.sin_addr.s_addr);
    if (hosts_only && unanswered.empty()) break;
  }
  log().debug("discovery: {} answer(s) on UDP port {}", found.size(), port);
  return found;
}

}  // namespace mktl::discovery
