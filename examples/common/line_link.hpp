// LineLink: a client connection to a line-protocol controller (the simulators
// in hardware/, or a real device speaking the same kind of protocol).
//
// One command line out, one answer line back, optionally followed by a binary
// payload whose size the answer line announces. Connects lazily, reconnects
// after any failure, and bounds every connect, send and receive by a timeout,
// so a dead controller fails a request instead of hanging a worker thread.
// Failures and "ERR ..." answers are thrown as mktl::RuntimeError with the
// text "<name>: <what went wrong>", which reaches the client of a SET as is.
//
// Threading: every public method may be called from any thread; one mutex
// serialises whole exchanges, so answers never interleave.
#pragma once

#include <mktl/json.hpp>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

namespace mktl::examples {

struct Address {
  std::string host;
  int port = 0;
};

// The controller address: appconfig {"host": ..., "port": N} or
// {"address": "host:port"}, else the environment variable `env_name`
// ("host:port"). Throws mktl::ConfigError naming what to set when neither is
// there or the value is malformed.
Address controller_address(const Json& appconfig, const char* env_name);

class LineLink {
 public:
  LineLink(std::string name, Address address, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
  ~LineLink();
  LineLink(const LineLink&) = delete;
  LineLink& operator=(const LineLink&) = delete;

  // Sends `line`, returns the answer line (without its newline). An answer
  // starting with "ERR " is thrown as RuntimeError("<name>: <rest>").
  std::string command(const std::string& line);

  // Sends `line`; `payload_size(answer_line)` says how many raw bytes follow
  // the answer line (it may throw to reject the answer); returns both.
  struct Answer {
    std::string line;
    std::string payload;
  };
  Answer command_with_payload(const std::string& line,
                              const std::function<std::size_t(const std::string&)>& payload_size);

  // Sends `line` and expects exactly "OK".
  void expect_ok(const std::string& line);

  const std::string& name() const noexcept { return name_; }

 private:
  Answer exchange(const std::string& line, const std::function<std::size_t(const std::string&)>* payload_size);
  Answer exchange_once(const std::string& line, const std::function<std::size_t(const std::string&)>* payload_size);
  void connect_locked();
  void close_locked();
  [[noreturn]] void fail(const std::string& what);

  std::string name_;
  Address address_;
  std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  int fd_ = -1;
  std::string buffer_;  // bytes received past the last answer
};

// Parses a whole string as a finite double; throws RuntimeError("<name>:
// bad answer ...") if it is not one.
double parse_answer_number(const std::string& name, const std::string& answer, const std::string& text);

// The numeric value of a SET (a JSON number, or a string holding one).
double json_to_double(const Json& value);

}  // namespace mktl::examples
