// mkweb_ws_probe: a small WebSocket client for tests/cli/test_mkweb.sh.
//
//   mkweb_ws_probe HOST PORT [--send TEXT]... [--send-size N] [--binary TEXT]
//                  [--count N] [--timeout S] [--pause-after-send S]
//
// Connects to ws://HOST:PORT/ws, sends each --send TEXT as a text message
// (--send-size N: one text message of N bytes; --binary: a binary message),
// then prints every message it receives, one per line, until it has printed
// --count of them (exit 0), the server closes the connection (a line
// "closed CODE REASON", exit 0) or --timeout seconds pass (exit 1). A send
// the server cut short prints "write failed: ..." and reading goes on.
// --pause-after-send S reads nothing for S seconds first (a slow browser).
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

struct Message {
  std::string text;
  bool binary = false;
};

struct Probe {
  websocket::stream<tcp::socket>& ws;
  long count;
  long seen = 0;
  int rc = 1;
  beast::flat_buffer buffer;

  void read(asio::io_context& io) {
    ws.async_read(buffer, [this, &io](beast::error_code ec, std::size_t) {
      if (ec) {
        // A close frame received counts even when answering it failed.
        if (ec == websocket::error::closed || ws.reason().code != websocket::close_code::none) {
          std::cout << "closed " << ws.reason().code << " " << ws.reason().reason.c_str() << std::endl;
          rc = 0;
        } else {
          std::cerr << "mkweb_ws_probe: read: " << ec.message() << "\n";
        }
        io.stop();
        return;
      }
      std::cout << beast::buffers_to_string(buffer.data()) << std::endl;
      buffer.consume(buffer.size());
      if (count > 0 && ++seen >= count) {
        rc = 0;
        io.stop();
        return;
      }
      read(io);
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: mkweb_ws_probe HOST PORT [--send TEXT]... [--send-size N] [--binary TEXT] [--count N]"
                 " [--timeout S] [--pause-after-send S]\n";
    return 2;
  }
  std::string host = argv[1], port = argv[2];
  std::vector<Message> messages;
  long count = 0;
  double timeout = 10, pause = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string opt = argv[i], arg = argv[i + 1];
    if (opt == "--send") messages.push_back({arg, false});
    else if (opt == "--binary") messages.push_back({arg, true});
    else if (opt == "--send-size") messages.push_back({std::string(std::stoul(arg), 'x'), false});
    else if (opt == "--count") count = std::stol(arg);
    else if (opt == "--timeout") timeout = std::stod(arg);
    else if (opt == "--pause-after-send") pause = std::stod(arg);
    else {
      std::cerr << "mkweb_ws_probe: unknown option " << opt << "\n";
      return 2;
    }
  }
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    websocket::stream<tcp::socket> ws(io);
    asio::connect(ws.next_layer(), resolver.resolve(host, port));
    ws.handshake(host + ":" + port, "/ws");
    for (const auto& m : messages) {
      ws.binary(m.binary);
      beast::error_code ec;
      ws.write(asio::buffer(m.text), ec);
      // The server may close on a message it refuses: say so, then read what it sent.
      if (ec) {
        std::cout << "write failed: " << ec.message() << std::endl;
        break;
      }
    }
    if (pause > 0) std::this_thread::sleep_for(std::chrono::duration<double>(pause));
    Probe probe{ws, count, 0, 1, {}};
    asio::steady_timer timer(io, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(timeout)));
    timer.async_wait([&](beast::error_code ec) {
      if (!ec) {
        std::cerr << "mkweb_ws_probe: timed out after " << probe.seen << " messages\n";
        io.stop();
      }
    });
    probe.read(io);
    io.run();
    return probe.rc;
  } catch (const std::exception& e) {
    std::cerr << "mkweb_ws_probe: " << e.what() << "\n";
    return 1;
  }
}
