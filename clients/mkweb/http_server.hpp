// mkweb::HttpServer: accepts TCP connections and speaks HTTP/1.1 on them with
// Boost.Beast; a GET of /ws with an Upgrade header becomes a WebSocket
// session (a Sink of the gateway), every other request goes to the Api.
//
// Limits, so that nothing a browser sends can take the gateway down: request
// headers 16 KiB and bodies `max_body` (413 beyond), WebSocket messages
// `max_ws_message` (the connection is closed with code 1009 "too big"
// beyond), `ws_queue` messages queued per browser before coalescing
// (OutQueue), idle HTTP connections dropped after a minute.
//
// Threading promise: everything runs on the one I/O thread that runs the
// io_context; the constructor and listen() must be called before it runs.
#pragma once

#include "api.hpp"
#include "gateway.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace mkweb {

struct ServerOptions {
  std::size_t ws_queue = 64;
  std::size_t max_ws_message = 64 * 1024;
  std::size_t max_body = 1024 * 1024;
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, Gateway& gateway, Api& api, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds HOST:PORT (port 0: any free port) and starts accepting; returns the
  // bound endpoint. Throws boost::system::system_error when it cannot bind.
  boost::asio::ip::tcp::endpoint listen(const std::string& host, unsigned short port);
  // Stops accepting.
  void close();

 private:
  void accept();

  boost::asio::io_context& io_;
  Gateway& gateway_;
  Api& api_;
  ServerOptions options_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

}  // namespace mkweb
