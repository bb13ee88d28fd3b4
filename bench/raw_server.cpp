// mktl_bench_raw_server: the baseline server, cppzmq alone (no mktl code).
//
// A ROUTER and a PUB socket on 127.0.0.1, speaking the frame layout of mKTL
// protocol 'a' so that the baseline moves the same messages mktl does. The
// request's target picks the work:
//   bench.echo      REP with a fixed payload (no JSON work)
//   bench.echo_ack  as bench.echo, preceded by an ACK (mKTL's message count)
//   bench.json      parse the request payload with nlohmann::json, REP a
//                   freshly dumped {"value": ..., "time": ...}
//   bench.json_ack  as bench.json, preceded by an ACK (mKTL's message count)
//   bench.bulk      REP with an 8 MiB bulk frame (zero-copy)
//   bench.hello     publish one message on "bench.hello.", then REP
//   bench.pub       REP, then publish COUNT (the payload, decimal) messages of
//                   about 100 bytes on "bench.bcast." as fast as ZeroMQ takes
//                   them (the PUB drops past its high-water mark, as mktl's)
// Prints "raw_server ready rep=PORT pub=PORT" and serves until killed.
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace {

int port_of(zmq::socket_t& s) {
  std::string ep = s.get(zmq::sockopt::last_endpoint);
  return std::atoi(ep.c_str() + ep.rfind(':') + 1);
}

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main() {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  // Same socket options as mktl's server, so only the code on top differs.
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::sndhwm, 100000);
  router.set(zmq::sockopt::rcvhwm, 100000);
  pub.set(zmq::sockopt::linger, 0);
  pub.set(zmq::sockopt::sndhwm, 10000);
  router.bind("tcp://127.0.0.1:*");
  pub.bind("tcp://127.0.0.1:*");
  std::cout << "raw_server ready rep=" << port_of(router) << " pub=" << port_of(pub) << std::endl;

  const std::string version = "a", rep = "REP", ack = "ACK";
  const std::string fixed = "{\"value\":42.5,\"time\":1712345678.25}";
  std::vector<char> bulk(8u << 20, '\x5a');
  std::uint64_t seq = 0;
  std::vector<zmq::message_t> frames;
  while (true) {
    frames.clear();
    bool more = true;
    while (more) {
      zmq::message_t m;
      if (!router.recv(m, zmq::recv_flags::none)) continue;
      more = m.more();
      frames.push_back(std::move(m));
    }
    if (frames.size() < 7) continue;
    auto view = [&](std::size_t i) { return frames[i].to_string_view(); };
    std::string_view id = view(2), target = view(4), payload = view(6);
    auto reply = [&](std::string_view body, bool with_bulk = false) {
      router.send(frames[0], zmq::send_flags::sndmore);
      router.send(zmq::buffer(version), zmq::send_flags::sndmore);
      router.send(zmq::buffer(id), zmq::send_flags::sndmore);
      router.send(zmq::buffer(rep), zmq::send_flags::sndmore);
      router.send(zmq::buffer(target), zmq::send_flags::sndmore);
      router.send(zmq::message_t(), zmq::send_flags::sndmore);
      router.send(zmq::buffer(body), with_bulk ? zmq::send_flags::sndmore : zmq::send_flags::none);
      if (with_bulk) router.send(zmq::message_t(bulk.data(), bulk.size(), nullptr, nullptr), zmq::send_flags::none);
    };
    auto acknowledge = [&] {
      zmq::message_t identity;
      identity.copy(frames[0]);
      router.send(identity, zmq::send_flags::sndmore);
      router.send(zmq::buffer(version), zmq::send_flags::sndmore);
      router.send(zmq::buffer(id), zmq::send_flags::sndmore);
      router.send(zmq::buffer(ack), zmq::send_flags::sndmore);
      router.send(zmq::message_t(), zmq::send_flags::sndmore);
      router.send(zmq::message_t(), zmq::send_flags::sndmore);
      router.send(zmq::message_t(), zmq::send_flags::none);
    };
    if (target == "bench.echo" || target == "bench.echo_ack") {
      if (target == "bench.echo_ack") acknowledge();
      reply(fixed);
    } else if (target == "bench.json" || target == "bench.json_ack") {
      if (target == "bench.json_ack") acknowledge();
      nlohmann::json request = nlohmann::json::parse(payload, nullptr, false);
      double value = request.is_object() ? request.value("value", 0.0) : 0.0;
      nlohmann::json answer = {{"value", value + 1}, {"time", wall_time()}};
      reply(answer.dump());
    } else if (target == "bench.bulk") {
      reply("{\"time\":1712345678.25,\"shape\":[4194304],\"dtype\":\"uint16\"}", true);
    } else if (target == "bench.hello") {
      pub.send(zmq::str_buffer("bench.hello."), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(version), zmq::send_flags::sndmore);
      pub.send(zmq::str_buffer("{}"), zmq::send_flags::none);
      reply("{}");
    } else if (target == "bench.pub") {
      long count = std::strtol(std::string(payload).c_str(), nullptr, 10);
      reply("{}");
      char body[128];
      for (long i = 0; i < count; ++i) {
        // ~100 bytes with topic and version, like the mktl broadcast it is compared to.
        int n = std::snprintf(body, sizeof body, "{\"value\":\"%060llu\",\"time\":%.6f}",
                              static_cast<unsigned long long>(seq++), 1712345678.25 + i * 1e-6);
        pub.send(zmq::str_buffer("bench.bcast."), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(version), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(body, static_cast<std::size_t>(n)), zmq::send_flags::none);
      }
    } else {
      reply("{\"error\":{\"type\":\"KeyError\",\"text\":\"unknown bench target\"}}");
    }
  }
}
