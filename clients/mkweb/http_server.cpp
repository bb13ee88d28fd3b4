#include "http_server.hpp"
#include "log.hpp"

#include <mktl/error.hpp>

#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <optional>

namespace mkweb {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr auto kIdle = std::chrono::seconds(60);

// ---- WebSocket ----------------------------------------------------------------------

class WsSession : public Sink, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket socket, Gateway& gateway, const ServerOptions& options)
      : ws_(std::move(socket)), gateway_(gateway), queue_(options.ws_queue), max_message_(options.max_ws_message) {
    // A value goes out the moment it is written: with Nagle's algorithm on,
    // the kernel held each small message back until the previous one was
    // acknowledged (a median of 9 ms with two browsers or more). A backlog
    // is corked instead (write()), so it still leaves in full segments.
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ec);
  }

  void start(http::request<http::string_body> request) {
    // Pings keep a quiet connection (an item that does not change) open; a
    // browser that answers nothing for the idle time is dropped.
    auto timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.read_message_max(max_message_);
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->end("accept", ec);
      self->read();
    });
  }

  void deliver(OutMessage message) override {
    if (closed_) return;
    queue_.push(std::move(message));
    if (!writing_) write();
  }

 private:
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->end("read", ec);
      self->on_message();
      self->read();
    });
  }

  void on_message() {
    std::string text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    if (!ws_.got_text()) return complain("ValueError", "binary messages are not understood: send JSON text");
    mktl::Json message;
    try {
      message = mktl::json::parse(text);
    } catch (const std::exception& e) {
      return complain("ValueError", std::string("not JSON: ") + e.what());
    }
    if (!message.is_object() || !message.contains("op") || !message["op"].is_string())
      return complain("ValueError", "expected {\"op\": \"subscribe\"|\"unsubscribe\", \"items\": [...]}");
    const std::string op = message["op"].get<std::string>();
    if (op != "subscribe" && op != "unsubscribe") return complain("ValueError", "unknown op '" + op + "'");
    auto items = message.find("items");
    if (items == message.end() || !items->is_array())
      return complain("ValueError", op + " needs \"items\": a list of STORE.KEY names");
    for (const auto& item : *items) {
      if (!item.is_string()) {
        complain("ValueError", op + ": each item must be a \"STORE.KEY\" string");
        continue;
      }
      std::string key = item.get<std::string>();
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (op == "subscribe") {
        gateway_.subscribe(shared_from_this(), key);
      } else {
        gateway_.unsubscribe(this, key);
        queue_.forget(key);
      }
    }
  }

  void complain(const std::string& type, const std::string& text) {
    mktl::Json message = {{"type", "error"}, {"item", nullptr}, {"error", {{"type", type}, {"text", text}}}};
    deliver({"", MessageKind::other, std::make_shared<const std::string>(mktl::json::dump(message))});
  }

  void write() {
    while (auto next = queue_.pop()) {
      if (next->kind == MessageKind::resync) {
        auto text = gateway_.collection_snapshot(next->item);
        if (!text) continue;
        next->text = *text;
      }
      // More waiting behind this one: cork until the queue drains, so the
      // messages share segments instead of one segment (and ACK) each.
      if (!queue_.empty()) cork(true);
      writing_ = true;
      out_ = std::move(next->text);
      ws_.text(true);
      ws_.async_write(asio::buffer(out_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
        self->writing_ = false;
        if (ec) return self->end("write", ec);
        self->write();
      });
      return;
    }
    cork(false);  // drained: what is held back goes now
  }

  void cork(bool on) {
    if (corked_ == on) return;
    corked_ = on;
    const int value = on ? 1 : 0;
    ::setsockopt(beast::get_lowest_layer(ws_).socket().native_handle(), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
  }

  void end(const char* what, beast::error_code ec) {
    if (closed_) return;
    closed_ = true;
    if (ec != websocket::error::closed && ec != asio::error::operation_aborted && ec != asio::error::eof)
      log()->info("browser connection ({}): {}", what, ec.message());
    gateway_.drop(this);
  }

  websocket::stream<beast::tcp_stream> ws_;
  Gateway& gateway_;
  OutQueue queue_;
  std::size_t max_message_;
  beast::flat_buffer in_;
  std::string out_;
  bool writing_ = false;
  bool corked_ = false;
  bool closed_ = false;
};

// ---- HTTP -----------------------------------------------------------------------------

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, Gateway& gateway, Api& api, const ServerOptions& options)
      : stream_(std::move(socket)), gateway_(gateway), api_(api), options_(options) {}

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxHeader);
    parser_->body_limit(options_.max_body);
    stream_.expires_after(kIdle);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
      return close();
    if (ec == http::error::body_limit)
      return reply(error_response(413, "ValueError",
                                  "request body larger than " + std::to_string(options_.max_body) + " bytes"),
                   false);
    if (ec == http::error::header_limit)
      return reply(error_response(431, "ValueError", "request headers larger than 16 KiB"), false);
    if (ec) return reply(error_response(400, "ValueError", "bad HTTP request: " + ec.message()), false);

    http::request<http::string_body> request = parser_->release();
    if (websocket::is_upgrade(request)) {
      if (request.target() != "/ws")
        return reply(error_response(404, "KeyError", "WebSocket connections go to /ws"), false);
      stream_.expires_never();
      auto session = std::make_shared<WsSession>(stream_.release_socket(), gateway_, options_);
      session->start(std::move(request));
      return;
    }
    ApiRequest api_request;
    api_request.method = std::string(request.method_string());
    api_request.target = std::string(request.target());
    if (auto it = request.find(http::field::authorization); it != request.end())
      api_request.authorization = std::string(it->value());
    api_request.body = std::move(request.body());
    bool keep_alive = request.keep_alive();
    api_.handle(std::move(api_request), [self = shared_from_this(), keep_alive](ApiResponse response) {
      self->reply(std::move(response), keep_alive);
    });
  }

  void reply(ApiResponse answer, bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>();
    response->result(static_cast<unsigned>(answer.status));
    response->version(11);
    response->set(http::field::server, "mkweb");
    response->set(http::field::content_type, answer.content_type);
    response->set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : answer.headers) response->set(name, value);
    response->body() = std::move(answer.body);
    response->keep_alive(keep_alive);
    response->prepare_payload();
    stream_.expires_after(kIdle);
    http::async_write(stream_, *response, [self = shared_from_this(), response](beast::error_code ec, std::size_t) {
      if (ec || !response->keep_alive()) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  Gateway& gateway_;
  Api& api_;
  const ServerOptions& options_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

}  // namespace

HttpServer::HttpServer(asio::io_context& io, Gateway& gateway, Api& api, ServerOptions options)
    : io_(io), gateway_(gateway), api_(api), options_(options), acceptor_(io) {}

HttpServer::~HttpServer() { close(); }

tcp::endpoint HttpServer::listen(const std::string& host, unsigned short port) {
  tcp::resolver resolver(io_);
  auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service);
  tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  accept();
  return acceptor_.local_endpoint();
}

void HttpServer::close() {
  beast::error_code ignored;
  acceptor_.close(ignored);
}

void HttpServer::accept() {
  acceptor_.async_accept(io_, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors and the like: keep accepting.
      log()->warn("accept: {}", ec.message());
    } else {
      std::make_shared<HttpSession>(std::move(socket), gateway_, api_, options_)->start();
    }
    accept();
  });
}

}  // namespace mkweb
