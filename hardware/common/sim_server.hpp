// SimServer: the TCP front end shared by the hardware simulators.
//
// A simulator is a plain process that speaks a line protocol over TCP: one
// command per line, one answer per command (an answer may carry raw bytes
// after its text line). SimServer owns the sockets and a poll() loop; the
// simulator supplies a handler that turns one command line into the bytes of
// its answer. It depends on nothing but POSIX and the C++ standard library:
// the simulators stand in for real devices and must not share code with mktl.
//
// Threading: single-threaded. The handler runs on the thread that calls
// run(), one command at a time, so simulator state needs no locking.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sim {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free port
};

class SimServer {
 public:
  using Handler = std::function<std::string(const std::string& line)>;

  // Binds and listens; throws std::runtime_error on failure.
  SimServer(const ServerOptions& options, Handler handler);
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  // The port actually bound (useful with port 0).
  int port() const noexcept;

  // Serves until SIGTERM or SIGINT arrives (installed by run()). Returns 0.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Command-line helpers shared by the simulators.
// Splits on blanks.
std::vector<std::string> split_words(const std::string& line);
// Upper-cases ASCII.
std::string upper(std::string text);
// Parses a whole string as a finite double; false if it is not one.
bool parse_number(const std::string& text, double& out);
// Formats a number with up to `decimals` decimals, keeping at least one
// ("45.0", "45.25").
std::string format_number(double value, int decimals = 3);

}  // namespace sim
