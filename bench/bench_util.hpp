// Helpers shared by the benchmark programs: child processes with a piped
// stdout, /proc readings, and order statistics. Not part of libmktl.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline bool executable(const std::string& path) { return !path.empty() && access(path.c_str(), X_OK) == 0; }

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A child process whose stdout we read line by line (stderr is inherited, or
// sent to /dev/null when `quiet`).
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept { *this = std::move(o); }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(fd_, o.fd_);
    std::swap(buffer_, o.buffer_);
    return *this;
  }
  ~Child() { kill(SIGKILL); }

  // posix_spawn, not fork: glibc spawns with CLONE_VFORK, so the start of a
  // child does not cost a copy of this (large, multi-threaded) process's page
  // tables, which would show up in `mk get`'s whole-process time.
  static Child spawn(const std::vector<std::string>& argv, bool quiet = true) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC
    if (quiet) posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (rc != 0) {
      close(pipe_fds[0]);
      throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    }
    Child c;
    c.pid_ = pid;
    c.fd_ = pipe_fds[0];
    return c;
  }

  // The next line of stdout, or nullopt on EOF or after `timeout` seconds.
  std::optional<std::string> read_line(double timeout) {
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
    while (true) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (fd_ < 0) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) {
        close(fd_);
        fd_ = -1;
        continue;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Waits for a line starting with `prefix`; nullopt on EOF or timeout.
  std::optional<std::string> wait_for(const std::string& prefix, double timeout) {
    auto start = Clock::now();
    while (true) {
      double left = timeout - seconds_since(start);
      if (left <= 0) return std::nullopt;
      auto line = read_line(left);
      if (!line) return std::nullopt;
      if (line->rfind(prefix, 0) == 0) return line;
    }
  }

  // SIGTERM, then SIGKILL if it has not exited within `grace` seconds.
  int terminate(double grace = 3.0) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    auto start = Clock::now();
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (seconds_since(start) > grace) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      usleep(2000);
    }
    pid_ = -1;
    close_fd();
    return status;
  }

  // Waits for the child to exit; returns its waitpid status.
  int wait() {
    int status = 0;
    if (pid_ > 0) waitpid(pid_, &status, 0);
    pid_ = -1;
    close_fd();
    return status;
  }

  void kill(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    close_fd();
  }

  pid_t pid() const { return pid_; }

 private:
  void close_fd() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;
};

// A numeric field of /proc/<pid>/status ("VmRSS" in kB, "Threads"); -1 if absent.
inline long proc_status(pid_t pid, const std::string& field) {
  std::ifstream in(pid > 0 ? "/proc/" + std::to_string(pid) + "/status" : std::string("/proc/self/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  return -1;
}

// Seconds the threads of a process have run on a CPU (the first field of
// /proc/<pid>/task/*/schedstat, in ns), leaving out the threads in `except`.
// pid 0: this process. Threads that ended are not counted.
inline double cpu_seconds(pid_t pid, const std::vector<pid_t>& except = {}) {
  namespace fs = std::filesystem;
  const fs::path tasks = fs::path("/proc") / (pid > 0 ? std::to_string(pid) : std::string("self")) / "task";
  double ns = 0;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(tasks, ec)) {
    const pid_t tid = static_cast<pid_t>(std::strtol(task.path().filename().c_str(), nullptr, 10));
    if (std::find(except.begin(), except.end(), tid) != except.end()) continue;
    std::ifstream in(task.path() / "schedstat");
    double run = 0;
    if (in >> run) ns += run;
  }
  return ns * 1e-9;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
// The q-quantile (0 < q <= 1) by nearest rank; 0 for no samples.
inline double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  k = std::min(k, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}
inline double min_of(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
inline double max_of(const std::vector<double>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }

// Value of "key=VALUE" in a line of "word key=value key=value" form.
inline std::string field_of(const std::string& line, const std::string& key) {
  auto pos = line.find(" " + key + "=");
  if (pos == std::string::npos) return {};
  pos += key.size() + 2;
  auto end = line.find(' ', pos);
  return line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

}  // namespace bench
