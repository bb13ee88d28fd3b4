// Pure codec of mKTL protocol 'a' frames: bytes in, bytes out, no I/O.
//
// Request/response frames (after the ROUTER identity frame):
//   [version 'a', id, type, target, flags, payload(, bulk)]
// Broadcast frames: [topic "store.key.", 'a', payload(, bulk)]
// The bulk frame is optional; an absent bulk frame and an empty one differ.
#pragma once

#include <mktl/bulk.hpp>
#include <mktl/json.hpp>
#include <mktl/reading.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mktl::protocol {

inline constexpr std::string_view kVersion = "a";
inline constexpr std::uint64_t NO_ACK = 0x01;
inline constexpr std::uint64_t NO_REP = 0x02;

enum class MessageType { GET, SET, ACK, REP };
std::string_view type_name(MessageType type) noexcept;

// A decoded request or response. `payload` is the raw JSON text (possibly
// empty); parse it with parse_payload() only when needed, so that the hot
// path need not touch it.
struct Message {
  std::string id;
  MessageType type = MessageType::GET;
  std::string target;
  std::uint64_t flags = 0;
  std::string payload;
  bool has_bulk = false;
  std::string_view bulk;   // valid only while the decoded frames live

  bool wants_ack() const noexcept { return (flags & NO_ACK) == 0; }
  bool wants_rep() const noexcept { return (flags & NO_REP) == 0; }
};

// Why a frame sequence could not be decoded. `id` is set when the id frame
// could still be read, so that the sender can be told.
struct DecodeError {
  std::optional<std::string> id;
  std::string text;
};

// Decodes frames that follow the identity frame. Returns the message, or the
// error (never throws).
struct Decoded {
  std::optional<Message> message;
  std::optional<DecodeError> error;
};
Decoded decode(std::span<const std::string_view> frames);

// What a client needs of a response (ACK or REP), as views into the frames:
// no copies on the client's hot path. Frames are checked as decode() checks
// them, except that the target (unused in responses) is not looked at.
struct ResponseView {
  std::string_view id;
  MessageType type = MessageType::REP;
  std::string_view payload;
  bool has_bulk = false;
};
std::optional<ResponseView> decode_response(std::span<const std::string_view> frames, std::string* error = nullptr);

// Request ids this library sends: eight lower-case hex digits of a counter.
// parse_request_id() is their inverse (nullopt for any other id, such as a
// reply meant for some other client's scheme).
using RequestIdText = std::array<char, 8>;
RequestIdText format_request_id(std::uint32_t id) noexcept;
std::optional<std::uint32_t> parse_request_id(std::string_view text) noexcept;

// Flags: big-endian unsigned integer of any length; empty means 0. Values
// wider than 64 bits keep their low 64 bits.
std::uint64_t decode_flags(std::string_view bytes) noexcept;
// Empty for 0, otherwise the fewest big-endian bytes.
std::string encode_flags(std::uint64_t flags);

// The six fixed frames of a request or response (bulk, if any, goes after).
std::vector<std::string> encode(std::string_view id, MessageType type, std::string_view target,
                                std::uint64_t flags, std::string_view payload);

// ACK frames [a, id, ACK, '', '', ''].
std::vector<std::string> encode_ack(std::string_view id);

// Broadcast topic for "store.key": "store.key." (the trailing dot keeps
// "demo.temp." from matching "demo.temperature.").
std::string topic(std::string_view full_key);

struct DecodedBroadcast {
  std::string key;        // "store.key" without the trailing dot
  std::string payload;    // raw JSON
  bool has_bulk = false;
  std::string_view bulk;
};
// Decodes [topic, 'a', payload(, bulk)]; nullopt (and `error` filled) on bad frames.
std::optional<DecodedBroadcast> decode_broadcast(std::span<const std::string_view> frames, std::string* error = nullptr);

// ---- payloads ----------------------------------------------------------------

// Parses a payload (empty text = null). Throws ValueError on bad JSON or when
// the text is not an object.
Json parse_payload(std::string_view text);

// {"value": v, "time": t} (value always present, possibly null) — the GET reply
// and broadcast payload of a plain value.
std::string value_payload(const Json& value, double time);
// {"time": t, "shape": [...], "dtype": "..."} — the payload of a bulk value.
std::string bulk_payload(const Bulk& bulk, double time);
// {"error": {"type": T, "text": X, "debug": D}} (debug omitted when empty).
std::string error_payload(std::string_view type, std::string_view text, std::string_view debug = {});
// {"value": true} — a successful SET.
std::string_view set_ok_payload() noexcept;

// The Reading a payload describes: `value` and `time`, or, with a bulk frame,
// `shape` and `dtype` applied to the frame's bytes (shared, not copied). A
// missing time is `default_time`; a bulk frame without a shape is a flat array.
Reading reading_from_payload(const Json& payload, std::optional<Bulk> bulk, double default_time);

// The same Reading read straight from the payload text: the value is parsed
// once and moved in, the object around it never built. With `error` given, it
// receives the payload's `error` member (null when there is none). Throws
// ValueError as parse_payload() does.
Reading read_reading(std::string_view payload, std::optional<Bulk> bulk, double default_time, Json* error = nullptr);

// Only the payload's `error` member (null when there is none), for a REP
// whose value nobody reads (a SET's): the rest is checked as JSON, not built.
// Throws ValueError as parse_payload() does.
Json read_error(std::string_view payload);

// Splits "store.key" at the first '.'; nullopt when there is no '.'.
struct Target {
  std::string store;
  std::string key;
};
std::optional<Target> split_target(std::string_view target);

// A JSON double as the wire writes it (shortest round-trip, NaN/Infinity).
void append_double(std::string& out, double value);

}  // namespace mktl::protocol
