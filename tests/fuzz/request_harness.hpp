// The request fuzz targets' shared part (fuzz_daemon_request.cpp,
// fuzz_collection_request.cpp): a daemon in this process, requests through
// its whole request path with detail::Runtime::exchange, and the checks of
// what comes back.
//
// Input: up to 8 requests separated by 0x1E; each request's frames (as a
// DEALER sends them: version, id, type, target, flags, payload, bulk)
// separated by 0x1F. The ROUTER identity is put in front. Requests run in
// order against one daemon, which keeps what earlier inputs SET.
//
// Checks, besides sanitizers: every frame set sent goes to the requester and
// decodes as a response; a request gets at most one ACK and one REP; a
// well-formed GET or SET without NO_REP gets exactly one REP, with its id,
// whose payload is a JSON object.
#pragma once

#include "fuzz.hpp"

#include "protocol/codec.hpp"
#include "runtime/runtime.hpp"

#include <mktl/daemon.hpp>
#include <mktl/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace mktl::fuzz {

// A daemon "fuzz" (alias fuzz1) with `catalog`, and tables and services when
// `collections` is not empty, in scratch()/home.
inline std::unique_ptr<Daemon> start_daemon(const char* catalog, const char* collections = nullptr) {
  auto home = scratch() / "home";
  auto options = DaemonOptions::isolated(home.string());
  options.workers = 2;
  if (collections) {
    options.collections = json::parse(collections);
    options.collections_source = "fuzz collections";
  }
  auto daemon = std::make_unique<Daemon>("fuzz", "fuzz1", json::parse(catalog), options, "fuzz catalog");
  daemon->start();
  return daemon;
}

// Stops `daemon` and starts it again from an empty home.
inline void restart_empty(std::unique_ptr<Daemon>& daemon, const char* catalog, const char* collections = nullptr) {
  daemon->stop();
  daemon.reset();
  std::filesystem::remove_all(scratch() / "home");
  daemon = start_daemon(catalog, collections);
}

namespace request_detail {

using mktl::Json;
namespace protocol = mktl::protocol;

inline const std::string kIdentity("\0fuzz", 5);

inline void check(const std::vector<std::string>& request, const std::vector<std::vector<std::string>>& sent) {
  using mktl::fuzz::expect;
  int acks = 0, reps = 0;
  for (auto& frames : sent) {
    expect(!frames.empty() && frames[0] == kIdentity, "a reply went to another identity");
    std::vector<std::string_view> views(frames.begin() + 1, frames.end());
    std::string error;
    auto r = protocol::decode_response(views, &error);
    expect(r.has_value(), "the daemon sent a malformed response: " + error);
    if (r->type == protocol::MessageType::ACK) ++acks;
    if (r->type == protocol::MessageType::REP) {
      ++reps;
      Json payload;
      try {
        payload = protocol::parse_payload(r->payload);
      } catch (const std::exception& e) {
        mktl::fuzz::fail(std::string("a REP payload does not parse: ") + e.what());
      }
      expect(payload.is_object(), "a REP payload is not an object");
    }
  }
  expect(acks <= 1 && reps <= 1, "more than one ACK or REP for one request");

  std::vector<std::string_view> views;
  for (std::size_t i = 1; i < request.size() && views.size() < 16; ++i) views.emplace_back(request[i]);
  if (request.size() > 16) return;  // frames past 16 (identity included) are dropped, like recv_multipart
  auto decoded = protocol::decode(views);
  if (!decoded.message) return;
  auto& msg = *decoded.message;
  bool request_type = msg.type == protocol::MessageType::GET || msg.type == protocol::MessageType::SET;
  if (request_type && msg.wants_rep()) {
    expect(reps == 1, "a well-formed request got no REP");
    for (auto& frames : sent)
      if (frames.size() > 3 && frames[3] == "REP") expect(frames[2] == msg.id, "a REP carries another id");
  }
  if (request_type && !msg.wants_rep()) expect(reps == 0, "a REP for a NO_REP request");
  if (request_type) expect(acks == (msg.wants_ack() ? 1 : 0), "ACK does not follow NO_ACK");
}

}  // namespace request_detail

// Runs the input's requests against `daemon` and checks each answer.
inline void run_requests(Daemon& daemon, const std::uint8_t* data, std::size_t size) {
  using request_detail::kIdentity;
  auto requests = split(text(data, size), '\x1e', 8);
  auto& runtime = daemon.runtime();
  for (auto& text : requests) {
    std::vector<std::string> frames{kIdentity};
    for (auto& f : split(text, '\x1f', 32)) frames.push_back(std::move(f));
    auto sent = runtime.exchange(frames);
    request_detail::check(frames, sent);
  }
}

// A request target's daemon, made at its first use and made again from an
// empty home every `renew_every` inputs (0: never).
class RequestTarget {
 public:
  RequestTarget(const char* catalog, const char* collections = nullptr, int renew_every = 0)
      : catalog_(catalog), collections_(collections), renew_every_(renew_every) {}
  // LLVMFuzzerInitialize's part: quiet logs and a running daemon.
  void initialize() {
    quiet();
    daemon();
  }
  // LLVMFuzzerTestOneInput's part.
  void run(const std::uint8_t* data, std::size_t size) {
    if (renew_every_ > 0 && ++inputs_ % renew_every_ == 0) restart_empty(daemon_, catalog_, collections_);
    run_requests(daemon(), data, size);
  }

 private:
  Daemon& daemon() {
    if (!daemon_) daemon_ = start_daemon(catalog_, collections_);
    return *daemon_;
  }
  const char* catalog_;
  const char* collections_;
  int renew_every_;
  int inputs_ = 0;
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace mktl::fuzz

// A request target's libFuzzer entry points around `target`, a RequestTarget.
#define MKTL_FUZZ_REQUEST_ENTRY_POINTS(target)                                      \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {                              \
    (target).initialize();                                                          \
    return 0;                                                                       \
  }                                                                                 \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    (target).run(data, size);                                                       \
    return 0;                                                                       \
  }
