// mkweb end to end in-process: an in-process daemon, the gateway, the HTTP
// server, and a Beast WebSocket client that stops reading while the item
// changes fast: its queue coalesces (the skip count shows in the messages)
// and the latest value still arrives.
#include "support.hpp"

#include <api.hpp>
#include <gateway.hpp>
#include <http_server.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <catch2/catch.hpp>

#include <optional>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_mkweb_ws {

using mktl::Json;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

const char* kItems = R"({"text": {"type": "string", "initial": "start"}})";

class WebDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
};

struct Web {
  test::TempDir home;
  WebDaemon daemon{"web", "web1", Json::parse(kItems), test::isolated(home)};
  std::unique_ptr<mktl::Client> client;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<mkweb::Gateway> gateway;
  std::unique_ptr<mkweb::Api> api;
  std::unique_ptr<mkweb::HttpServer> server;
  unsigned short port = 0;
  std::thread io_thread;

  explicit Web(std::size_t ws_queue) {
    daemon.start();
    client = std::make_unique<mktl::Client>(test::client_options(home));
    gateway = std::make_unique<mkweb::Gateway>(io, *client, mkweb::GatewayOptions{{}, {daemon.rep_endpoint()}});
    api = std::make_unique<mkweb::Api>(*gateway, mkweb::ApiOptions{});
    mkweb::ServerOptions options;
    options.ws_queue = ws_queue;
    server = std::make_unique<mkweb::HttpServer>(io, *gateway, *api, options);
    port = server->listen("127.0.0.1", 0).port();
    io_thread = std::thread([this] { io.run(); });
  }
  ~Web() {
    guard.reset();
    io.stop();
    io_thread.join();
    server.reset();
    api.reset();
    gateway.reset();
    client.reset();
    daemon.stop();
  }
};

// A browser: a WebSocket client with a small receive buffer, so that the
// gateway's side fills up soon once it stops reading.
struct Browser {
  asio::io_context io;
  websocket::stream<tcp::socket> ws{io};
  beast::flat_buffer buffer;

  explicit Browser(unsigned short port) {
    ws.next_layer().open(tcp::v4());
    ws.next_layer().set_option(asio::socket_base::receive_buffer_size(4096));
    ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ws.handshake("127.0.0.1:" + std::to_string(port), "/ws");
  }
  void send(const std::string& text) { ws.write(asio::buffer(text)); }
  // The next message, or nullopt after `timeout`.
  std::optional<Json> next(std::chrono::milliseconds timeout = 10s) {
    std::optional<Json> out;
    bool done = false;
    ws.async_read(buffer, [&](beast::error_code ec, std::size_t) {
      done = true;
      if (!ec) out = mktl::json::parse(beast::buffers_to_string(buffer.data()));
      buffer.consume(buffer.size());
    });
    io.restart();
    io.run_for(timeout);
    if (!done) {
      beast::error_code ignored;
      ws.next_layer().close(ignored);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("mkweb websocket: a browser that falls behind gets the latest value, with the skipped ones counted",
          "[mkweb]") {
  Web web(4);
  Browser browser(web.port);
  browser.send(R"({"op":"subscribe","items":["web.text"]})");
  auto first = browser.next();
  REQUIRE(first);
  CHECK((*first)["value"] == "start");
  CHECK((*first)["skipped"] == 0);

  // While the browser reads nothing: 2,000 values of 8 KiB (16 MB, more
  // than the sockets between them hold), then a last one.
  // The same broadcasts, seen straight from the Client, tell when the last
  // one has been sent.
  test::Collector seen;
  auto subscription = web.client->subscribe("web.text", seen.callback());
  // Past ZeroMQ's slow joiner: both subscriptions get broadcasts.
  auto poke = [&](int i) { web.client->set("web.text", mktl::Reading(Json("poke" + std::to_string(i)))); };
  REQUIRE(test::until_subscribed(poke, [&] { return seen.size() > 0; }));
  // While the browser reads nothing: 2,000 values of 8 KiB (16 MB, more
  // than the sockets between them hold).
  const int n = 2000;
  for (int i = 0; i < n; ++i)
    web.client->set_nowait("web.text", mktl::Reading(Json(std::string(8192, 'x') + std::to_string(i))));
  const Json final_value = std::string(8192, 'x') + std::to_string(n - 1);
  REQUIRE(seen.wait_for_value(final_value, 30s));

  std::uint64_t skipped = 0;
  int received = 0;
  bool last = false;
  while (!last) {
    auto message = browser.next();
    REQUIRE(message);
    REQUIRE((*message)["type"] == "value");
    skipped += (*message)["skipped"].get<std::uint64_t>();
    ++received;
    last = (*message)["value"] == final_value;
  }
  INFO("received " << received << ", skipped " << skipped);
  CHECK(skipped > 0);
  CHECK(received < n);
}

TEST_CASE("mkweb websocket: bad input gets an error message and the session goes on", "[mkweb]") {
  Web web(64);
  Browser browser(web.port);
  browser.send("{\"op\":");
  auto error = browser.next();
  REQUIRE(error);
  CHECK((*error)["type"] == "error");
  CHECK((*error)["error"]["type"] == "ValueError");
  browser.send(R"({"op":"subscribe","items":["web.text"]})");
  auto value = browser.next();
  REQUIRE(value);
  CHECK((*value)["value"] == "start");
}

}  // namespace test_mkweb_ws
