// mkweb: a web view and HTTP/WebSocket gateway for mKTL stores (issue 13).
//
// One I/O thread (this one) runs Boost.Asio: the listening socket, every HTTP
// and WebSocket session, and the fan-out of broadcasts to browsers. The
// gateway's worker pool makes the Client calls that may block; the Client has
// its own threads for sockets and subscription callbacks.
#include "api.hpp"
#include "gateway.hpp"
#include "http_server.hpp"

#include <mktl/client.hpp>
#include <mktl/error.hpp>
#include <mktl/log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <getopt.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage = "usage: mkweb [options]\n";

constexpr const char* kHelp = R"(
A web view of mKTL stores: an HTTP JSON API, a WebSocket that pushes live
values, and a single-page UI (embedded, no external URL), all on one port.

options:
      --listen HOST:PORT  address to serve on (default 127.0.0.1:8080; port 0
                          picks a free port). Once listening, mkweb prints
                          "mkweb: listening on http://HOST:PORT/".
  -s, --store STORE       offer this store (repeatable); default: the stores
                          that discovery finds
      --connect tcp://HOST:PORT
                          reach the stores at this daemon's request address
                          instead of the catalog cache and discovery
                          (repeatable)
      --allow-set         allow SET through the web (POST); each needs the
                          token as "Authorization: Bearer TOKEN"
      --token-file FILE   the token: the first line of FILE, which must have
                          mode 0600 (default: $MKWEB_TOKEN)
      --ws-queue N        messages queued for one browser before its values
                          are coalesced, latest wins (default 64)
  -w, --timeout SECONDS   how long to wait for each daemon reply (default 10)
      --key NAME          this client's CURVE key pair (docs/security.md);
                          default $MKTL_KEY
      --server-key KEY    pin the daemons' public key; STORE=KEY pins one
                          store's (repeatable, as mk's; default
                          $MKTL_SERVER_KEY)
  -v, --verbose           log output on stderr (repeat for debug)
  -d, --debug             debug log output on stderr
  -h, --help              show this help and exit

HTTP API (JSON; errors as {"error": {"type", "text"}}):
  GET  /api/stores, /api/stores/STORE, /api/items/STORE.KEY[?refresh=1],
       /api/items/STORE.KEY/bulk (raw bytes), /healthz
  POST /api/items/STORE.KEY  body {"value": V}
  WebSocket /ws: {"op": "subscribe"|"unsubscribe", "items": [...]}
Statuses: 400 bad request, 401 token missing or wrong, 403 SET disabled or
refused, 404 unknown store or key, 413 body too large, 422 the daemon's
ValueError or TypeError, 502 other daemon errors, 504 timeout.
See docs/mkweb.md.

environment:
  MKWEB_TOKEN            the token for --allow-set (without --token-file)
  MKTL_ACK_TIMEOUT       seconds to wait for a daemon's ACK (default 0.5 here)
  MKTL_HOME, MKTL_BROADCAST, MKTL_LOG, MKTL_KEY, MKTL_SERVER_KEY as for mk

Exit status:
  0   stopped by SIGINT or SIGTERM
  1   could not start (address in use, bad token file, ...)
  2   usage error (unknown option, malformed argument)

examples:
  mkweb --store heater
  mkweb --listen 0.0.0.0:8080 --allow-set --token-file ~/.mKTL/web.token
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  std::vector<std::string> stores;
  std::vector<std::string> connect;
  bool allow_set = false;
  std::string token_file;
  std::size_t ws_queue = 64;
  double timeout = 10;
  std::string key;
  std::vector<std::string> server_keys;  // each KEY or STORE=KEY
  int verbosity = 0;
};

template <class T>
std::optional<T> number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void parse_listen(Options& opts, const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw UsageError("--listen: expected HOST:PORT, got '" + text + "'");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto port = number<unsigned>(std::string_view(text).substr(colon + 1));
  if (!port || *port > 65535) throw UsageError("--listen: bad port in '" + text + "'");
  opts.host = host;
  opts.port = static_cast<unsigned short>(*port);
}

std::string endpoint_of(const std::string& address) {
  std::string endpoint = address.find("://") == std::string::npos ? "tcp://" + address : address;
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < endpoint.find("://") + 3 || colon + 1 == endpoint.size())
    throw UsageError("--connect: '" + address + "' is not tcp://HOST:PORT");
  return endpoint;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<Options> parse_command_line(int argc, char** argv) {
  enum { kListen = 256, kConnect, kAllowSet, kTokenFile, kWsQueue, kKey, kServerKey };
  static const option long_options[] = {
      {"listen", required_argument, nullptr, kListen},   {"store", required_argument, nullptr, 's'},
      {"connect", required_argument, nullptr, kConnect}, {"allow-set", no_argument, nullptr, kAllowSet},
      {"token-file", required_argument, nullptr, kTokenFile}, {"ws-queue", required_argument, nullptr, kWsQueue},
      {"timeout", required_argument, nullptr, 'w'},      {"key", required_argument, nullptr, kKey},
      {"server-key", required_argument, nullptr, kServerKey}, {"verbose", no_argument, nullptr, 'v'},
      {"debug", no_argument, nullptr, 'd'},              {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  Options opts;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":s:w:vdh", long_options, nullptr)) != -1) {
    switch (c) {
      case kListen: parse_listen(opts, optarg); break;
      case 's': opts.stores.push_back(lower(optarg)); break;
      case kConnect: opts.connect.push_back(endpoint_of(optarg)); break;
      case kAllowSet: opts.allow_set = true; break;
      case kTokenFile: opts.token_file = optarg; break;
      case kWsQueue: {
        auto n = number<std::size_t>(optarg);
        if (!n || *n == 0 || *n > 1000000) throw UsageError(std::string("--ws-queue: expected 1..1000000, got '") + optarg + "'");
        opts.ws_queue = *n;
        break;
      }
      case 'w': {
        auto seconds = number<double>(optarg);
        if (!seconds || !(*seconds > 0) || !std::isfinite(*seconds))
          throw UsageError(std::string("--timeout: expected a positive number of seconds, got '") + optarg + "'");
        opts.timeout = *seconds;
        break;
      }
      case kKey: opts.key = optarg; break;
      case kServerKey: opts.server_keys.push_back(optarg); break;
      case 'v': ++opts.verbosity; break;
      case 'd': opts.verbosity = std::max(opts.verbosity, 2); break;
      case 'h': std::cout << kUsage << kHelp; return std::nullopt;
      case ':': throw UsageError(std::string("option ") + argv[optind - 1] + " needs an argument");
      default: throw UsageError(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  if (optind < argc) throw UsageError(std::string("unexpected argument '") + argv[optind] + "'");
  if (!opts.token_file.empty() && !opts.allow_set) throw UsageError("--token-file goes with --allow-set");
  return opts;
}

int run(const Options& opts) {
  mkweb::ApiOptions api_options;
  api_options.allow_set = opts.allow_set;
  if (opts.allow_set) {
    if (!opts.token_file.empty()) {
      api_options.token = mkweb::read_token_file(opts.token_file);
    } else if (const char* env = std::getenv("MKWEB_TOKEN"); env && *env) {
      api_options.token = env;
    } else {
      throw mktl::ValueError("--allow-set needs a token: --token-file FILE (mode 0600) or $MKWEB_TOKEN");
    }
  }
  mktl::ClientOptions client_options = mktl::ClientOptions::from_env();
  client_options.timeout = opts.timeout;
  // A gateway answers for many viewers: one ACK late on a busy host should not
  // show as a TimeoutError on every screen, so it waits 0.5 s (mk: 0.1 s).
  if (!std::getenv("MKTL_ACK_TIMEOUT")) client_options.ack_timeout = 0.5;
  if (!opts.key.empty()) client_options.key = opts.key;
  if (!opts.server_keys.empty()) client_options.replace_server_keys(opts.server_keys);

  // Declared in this order so that the gateway (and the subscriptions that
  // pending handlers hold) go before the io_context, and both before the Client.
  mktl::Client client(client_options);
  boost::asio::io_context io;
  mkweb::Gateway gateway(io, client, {opts.stores, opts.connect});
  mkweb::Api api(gateway, api_options);
  mkweb::ServerOptions server_options;
  server_options.ws_queue = opts.ws_queue;
  mkweb::HttpServer server(io, gateway, api, server_options);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    server.close();
    io.stop();
  });
  boost::asio::ip::tcp::endpoint bound;
  try {
    bound = server.listen(opts.host, opts.port);
  } catch (const std::exception& e) {
    throw mktl::RuntimeError("cannot listen on " + opts.host + ":" + std::to_string(opts.port) + ": " + e.what());
  }
  std::string host = bound.address().to_string();
  if (bound.address().is_v6()) host = "[" + host + "]";
  std::cout << "mkweb: listening on http://" << host << ":" << bound.port() << "/" << std::endl;
  io.run();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> opts;
  try {
    opts = parse_command_line(argc, argv);
    if (!opts) return kExitOk;
  } catch (const UsageError& e) {
    std::cerr << "mkweb: " << e.what() << "\n" << kUsage << "Try 'mkweb --help' for more information.\n";
    return kExitUsage;
  }
  mktl::setup_logging(opts->verbosity);
  try {
    return run(*opts);
  } catch (const mktl::Error& e) {
    std::cerr << "mkweb: " << e.type() << ": " << e.text() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "mkweb: " << e.what() << "\n";
  }
  return kExitFailed;
}
