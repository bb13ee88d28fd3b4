// Fuzz target: request frames through a daemon's whole request path
// (transport::Server's decoding and ACK, the runtime's dispatch, lookup,
// GET from the cache or the strand, SET validation and coercion, persistence,
// the REP's encoding), in-process through detail::Runtime::exchange; and
// through its tables and collections: SETs of record items (checked,
// committed by the writer, answered after the COMMIT) and GETs of keyed,
// table and stream collections in every mode (snapshot with filter,
// maxcount and cursor; since; rowid; refresh; stats).
//
// Input: up to 8 requests separated by 0x1E; each request's frames (as a
// DEALER sends them: version, id, type, target, flags, payload, bulk)
// separated by 0x1F. The ROUTER identity is put in front. Requests run in
// order against one daemon, whose items keep what earlier inputs SET.
//
// Checks, besides sanitizers: every frame set sent goes to the requester and
// decodes as a response; a request gets at most one ACK and one REP; a
// well-formed GET or SET without NO_REP gets exactly one REP, with its id,
// whose payload is a JSON object.
#include "fuzz.hpp"

#include "protocol/codec.hpp"
#include "runtime/runtime.hpp"

#include <mktl/daemon.hpp>
#include <mktl/json.hpp>

#include <array>
#include <memory>

namespace {

using mktl::Json;
namespace protocol = mktl::protocol;

// Every item type, with the fields validation reads.
const char* const kCatalog = R"({
  "flag":     {"type": "boolean", "description": "a boolean"},
  "onoff":    {"type": "boolean", "enumerators": {"0": "Off", "1": "On"}},
  "temp":     {"type": "numeric", "units": "degC", "format": "%.2f", "min": -50, "max": 150},
  "count":    {"type": "numeric", "format": "%d", "min": 0},
  "angle":    {"type": "numeric", "units": {"": "rad", "formatted": "deg"}, "format": "%d:%02d:%04.1f"},
  "mode":     {"type": "enumerated", "enumerators": {"0": "Off", "1": "On", "2": "Auto"}},
  "bits":     {"type": "mask", "enumerators": {"0": "A", "1": "B", "5": "F", "None": "clear"}},
  "name":     {"type": "string", "initial": "fuzz"},
  "offsets":  {"type": "numeric array", "min": -10, "max": 10},
  "image":    {"type": "bulk"},
  "setpoint": {"type": "numeric", "persist": true, "min": 0, "max": 100, "initial": 20},
  "note":     {"type": "string", "persist": true},
  "readonly": {"type": "numeric", "settable": false, "initial": 3},
  "hidden":   {"type": "numeric", "gettable": false},
  "any":      {"description": "typeless"}
})";

// Tables and services: record items (w_put, w_del) and a keyed, a table
// and a stream collection, with the expressions and GET modes they take.
const char* const kCollections = R"json({
  "batch_max_wait_ms": 0,
  "tables": {
    "rows": {"columns": {"id": "INTEGER PRIMARY KEY", "grp": "TEXT NOT NULL", "qty": "INTEGER NOT NULL",
                         "price": "REAL", "note": "TEXT"}},
    "log": {"columns": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "row": "INTEGER NOT NULL", "what": "TEXT NOT NULL"}}
  },
  "services": {
    "w": {"protocol": "transaction", "ops": {
      "put": [{"table": "rows", "op_type": "upsert", "key": ["id"], "fields": ["id", "grp", "qty", "price", "note"]},
              {"table": "log", "op_type": "insert", "defaults": {"what": "put"}, "bind": {"row": "$0.id"}}],
      "del": [{"table": "rows", "op_type": "delete", "key": ["id"]},
              {"table": "log", "op_type": "insert", "defaults": {"what": "del"}, "bind": {"row": "$0.id"}}]
    }},
    "keyed": {"protocol": "subpub", "primary_table": "rows", "key": "id", "where": "qty > 0",
              "publish": {"value": "qty * coalesce(price, 0)"}, "filterable": ["grp", "qty"]},
    "table": {"protocol": "query", "primary_table": "rows", "change_log_size": 50},
    "stream": {"protocol": "stream", "primary_table": "log", "buffer_size": 100}
  }
})json";

const std::string kIdentity("\0fuzz", 5);

std::unique_ptr<mktl::Daemon> make_daemon() {
  auto home = mktl::fuzz::scratch() / "home";
  auto options = mktl::DaemonOptions::isolated(home.string());
  options.workers = 2;
  options.collections = mktl::json::parse(kCollections);
  options.collections_source = "fuzz collections";
  auto daemon = std::make_unique<mktl::Daemon>("fuzz", "fuzz1", mktl::json::parse(kCatalog), options, "fuzz catalog");
  daemon->start();
  return daemon;
}

mktl::Daemon& daemon() {
  static std::unique_ptr<mktl::Daemon> d = make_daemon();
  return *d;
}

void check(const std::vector<std::string>& request, const std::vector<std::vector<std::string>>& sent) {
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

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mktl::fuzz::quiet();
  daemon();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto requests = mktl::fuzz::split(mktl::fuzz::text(data, size), '\x1e', 8);
  auto& runtime = daemon().runtime();
  for (auto& text : requests) {
    std::vector<std::string> frames{kIdentity};
    for (auto& f : mktl::fuzz::split(text, '\x1f', 32)) frames.push_back(std::move(f));
    auto sent = runtime.exchange(frames);
    check(frames, sent);
  }
  return 0;
}
