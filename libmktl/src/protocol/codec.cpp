// Frames of protocol 'a' to and from bytes. No I/O, no JSON parsing on the
// decode path: the daemon forwards payloads it does not need to look at.
#include "protocol/codec.hpp"

#include "json/detail.hpp"

#include <mktl/error.hpp>

#include <charconv>

namespace mktl::protocol {

std::string_view type_name(MessageType type) noexcept {
  switch (type) {
    case MessageType::GET: return "GET";
    case MessageType::SET: return "SET";
    case MessageType::ACK: return "ACK";
    case MessageType::REP: return "REP";
  }
  return "?";
}

namespace {

std::optional<MessageType> parse_type(std::string_view text) noexcept {
  if (text == "GET") return MessageType::GET;
  if (text == "SET") return MessageType::SET;
  if (text == "ACK") return MessageType::ACK;
  if (text == "REP") return MessageType::REP;
  return std::nullopt;
}

// Frame contents for an error text: printable ASCII kept, the rest as \xNN,
// and long frames cut, so a hostile frame cannot flood the log or the REP.
std::string printable(std::string_view bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  constexpr std::size_t kMax = 40;
  std::string out = "'";
  for (std::size_t i = 0; i < bytes.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  if (bytes.size() > kMax) out += "...";
  out.push_back('\'');
  return out;
}

// The checks every request and response passes (frame count, version,
// type): the message type, or nullopt with `error` set.
std::optional<MessageType> check_frames(std::span<const std::string_view> frames, std::string& error) {
  if (frames.size() != 6 && frames.size() != 7) {
    error = "expected 6 or 7 frames, got " + std::to_string(frames.size());
    return std::nullopt;
  }
  if (frames[0] != kVersion) {
    error = "unsupported protocol version " + printable(frames[0]) + ", expected 'a'";
    return std::nullopt;
  }
  auto type = parse_type(frames[2]);
  if (!type) error = "unknown message type " + printable(frames[2]);
  return type;
}

Decoded failure(std::optional<std::string> id, std::string text) {
  Decoded d;
  d.error = DecodeError{std::move(id), std::move(text)};
  return d;
}

}  // namespace

Decoded decode(std::span<const std::string_view> frames) {
  std::optional<std::string> id;
  if (frames.size() >= 2) id = std::string(frames[1]);
  std::string error;
  auto type = check_frames(frames, error);
  if (!type) return failure(std::move(id), std::move(error));
  if (!json::detail::valid_utf8(frames[3]))
    return failure(std::move(id), "target is not valid UTF-8: " + printable(frames[3]));

  Decoded d;
  Message& m = d.message.emplace();
  m.id = std::move(*id);
  m.type = *type;
  m.target = std::string(frames[3]);
  m.flags = decode_flags(frames[4]);
  m.payload = std::string(frames[5]);
  if (frames.size() == 7) {
    m.has_bulk = true;
    m.bulk = frames[6];
  }
  return d;
}

std::optional<ResponseView> decode_response(std::span<const std::string_view> frames, std::string* error) {
  std::string text;
  auto type = check_frames(frames, text);
  if (!type) {
    if (error) *error = std::move(text);
    return std::nullopt;
  }
  ResponseView r;
  r.id = frames[1];
  r.type = *type;
  r.payload = frames[5];
  r.has_bulk = frames.size() == 7;
  return r;
}

RequestIdText format_request_id(std::uint32_t id) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  RequestIdText text;
  for (int i = 7; i >= 0; --i, id >>= 4) text[static_cast<std::size_t>(i)] = hex[id & 0xF];
  return text;
}

std::optional<std::uint32_t> parse_request_id(std::string_view text) noexcept {
  if (text.size() != 8) return std::nullopt;
  std::uint32_t id = 0;
  for (char c : text) {
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else return std::nullopt;
    id = (id << 4) | digit;
  }
  return id;
}

std::uint64_t decode_flags(std::string_view bytes) noexcept {
  std::uint64_t flags = 0;
  for (char c : bytes) flags = (flags << 8) | static_cast<unsigned char>(c);
  return flags;
}

std::string encode_flags(std::uint64_t flags) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8) {
    auto byte = static_cast<unsigned char>(flags >> shift);
    if (byte != 0 || !out.empty()) out.push_back(static_cast<char>(byte));
  }
  return out;
}

std::vector<std::string> encode(std::string_view id, MessageType type, std::string_view target,
                                std::uint64_t flags, std::string_view payload) {
  std::vector<std::string> frames;
  frames.reserve(7);  // room for a bulk frame the caller may add
  frames.emplace_back(kVersion);
  frames.emplace_back(id);
  frames.emplace_back(type_name(type));
  frames.emplace_back(target);
  frames.emplace_back(encode_flags(flags));
  frames.emplace_back(payload);
  return frames;
}

std::vector<std::string> encode_ack(std::string_view id) { return encode(id, MessageType::ACK, {}, 0, {}); }

std::string topic(std::string_view full_key) {
  std::string out;
  out.reserve(full_key.size() + 1);
  out.append(full_key);
  out.push_back('.');
  return out;
}

std::optional<DecodedBroadcast> decode_broadcast(std::span<const std::string_view> frames, std::string* error) {
  auto fail = [&](std::string text) -> std::optional<DecodedBroadcast> {
    if (error) *error = std::move(text);
    return std::nullopt;
  };
  if (frames.size() != 3 && frames.size() != 4)
    return fail("expected 3 or 4 broadcast frames, got " + std::to_string(frames.size()));
  if (frames[1] != kVersion)
    return fail("unsupported protocol version " + printable(frames[1]) + ", expected 'a'");
  std::string_view t = frames[0];
  if (t.size() < 2 || t.back() != '.') return fail("broadcast topic without a trailing '.': " + printable(t));
  if (!json::detail::valid_utf8(t)) return fail("broadcast topic is not valid UTF-8: " + printable(t));
  DecodedBroadcast b;
  b.key = std::string(t.substr(0, t.size() - 1));
  b.payload = std::string(frames[2]);
  if (frames.size() == 4) {
    b.has_bulk = true;
    b.bulk = frames[3];
  }
  return b;
}

// ---- payloads ------------------------------------------------------------------

Json parse_payload(std::string_view text) {
  if (text.empty()) return Json();
  Json j = json::parse(text);
  if (!j.is_object()) throw ValueError(std::string("payload is not a JSON object but ") + j.type_name());
  return j;
}

// Payloads are built by hand: nlohmann's objects sort their keys, and peers
// (and our golden tests) expect "value" before "time".
std::string value_payload(const Json& value, double time) {
  std::string out;
  // One allocation for the usual payload: a string value's text, plus quotes,
  // escapes (a few) and the time member.
  out.reserve(value.is_string() ? 48 + value.get_ref<const std::string&>().size() * 9 / 8 : 64);
  out.append("{\"value\":");
  json::dump_to(out, value);
  out.append(",\"time\":");
  json::detail::append_double(out, time);
  out.push_back('}');
  return out;
}

std::string bulk_payload(const Bulk& bulk, double time) {
  std::string out;
  out.reserve(64);
  out.append("{\"time\":");
  json::detail::append_double(out, time);
  out.append(",\"shape\":[");
  bool first = true;
  for (auto dim : bulk.shape()) {
    if (!first) out.push_back(',');
    first = false;
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof buf, dim);
    out.append(buf, res.ptr);
  }
  out.append("],\"dtype\":");
  json::detail::append_string(out, bulk.dtype());
  out.push_back('}');
  return out;
}

std::string error_payload(std::string_view type, std::string_view text, std::string_view debug) {
  std::string out;
  out.reserve(32 + type.size() + text.size() + debug.size());
  out.append("{\"error\":{\"type\":");
  json::detail::append_string(out, type);
  out.append(",\"text\":");
  json::detail::append_string(out, text);
  if (!debug.empty()) {
    out.append(",\"debug\":");
    json::detail::append_string(out, debug);
  }
  out.append("}}");
  return out;
}

std::string_view set_ok_payload() noexcept { return "{\"value\":true}"; }

std::optional<Target> split_target(std::string_view target) {
  auto dot = target.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  return Target{std::string(target.substr(0, dot)), std::string(target.substr(dot + 1))};
}

void append_double(std::string& out, double value) { json::detail::append_double(out, value); }

namespace {

// The bulk frame's array: `shape` and `dtype` (members of the payload) applied
// to the frame's bytes.
Bulk bulk_array(const Json* shape_member, const Json* dtype_member, const Bulk& frame) {
  std::vector<std::int64_t> shape;
  if (shape_member && shape_member->is_array()) {
    for (auto& d : *shape_member) {
      if (!d.is_number_integer()) throw ValueError("bulk shape must be a list of integers");
      shape.push_back(d.get<std::int64_t>());
    }
  } else {
    shape.push_back(static_cast<std::int64_t>(frame.size()));
  }
  std::string dtype =
      dtype_member && dtype_member->is_string() ? dtype_member->get<std::string>() : std::string("uint8");
  return Bulk(std::move(shape), std::move(dtype), frame.owner(), frame.bytes().data(), frame.size());
}

const Json* member(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

}  // namespace

Reading reading_from_payload(const Json& payload, std::optional<Bulk> bulk, double default_time) {
  Reading r;
  r.time = default_time;
  if (!payload.is_object()) return r;
  if (auto t = payload.find("time"); t != payload.end() && t->is_number()) r.time = t->get<double>();
  if (bulk) r.bulk = bulk_array(member(payload, "shape"), member(payload, "dtype"), *bulk);
  else if (auto v = payload.find("value"); v != payload.end()) r.value = *v;
  return r;
}

Reading read_reading(std::string_view payload, std::optional<Bulk> bulk, double default_time, Json* error) {
  auto first = payload.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || payload[first] != '{') {
    // Empty, or not an object: parse_payload's answer (null, or its error).
    Reading r = reading_from_payload(parse_payload(payload), std::move(bulk), default_time);
    if (error) *error = nullptr;
    return r;
  }
  struct Visitor final : json::detail::MemberVisitor {
    Reading r;
    Json shape, dtype, error;
    void member(std::string_view key, Json&& value) override {
      if (key == "value") r.value = std::move(value);
      else if (key == "time") time = std::move(value);
      else if (key == "error") error = std::move(value);
      else if (key == "shape") shape = std::move(value);
      else if (key == "dtype") dtype = std::move(value);
    }
    Json time;
  } v;
  json::detail::parse_members(payload, v);
  v.r.time = v.time.is_number() ? v.time.get<double>() : default_time;
  if (bulk) {
    v.r.value = nullptr;
    v.r.bulk = bulk_array(v.shape.is_null() ? nullptr : &v.shape, v.dtype.is_null() ? nullptr : &v.dtype, *bulk);
  }
  if (error) *error = std::move(v.error);
  return std::move(v.r);
}

Json read_error(std::string_view payload) {
  auto first = payload.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || payload[first] != '{') {
    (void)parse_payload(payload);  // empty, or its error
    return nullptr;
  }
  struct Visitor final : json::detail::MemberVisitor {
    Json error;
    bool wants(std::string_view key) override { return key == "error"; }
    void member(std::string_view, Json&& value) override { error = std::move(value); }
  } v;
  json::detail::parse_members(payload, v);
  return std::move(v.error);
}

}  // namespace mktl::protocol
