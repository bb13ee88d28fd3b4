// mkregistryd: the mKTL registry. Daemons announce their catalog blocks to it
// (SET _catalog); clients that know nothing yet find it by UDP broadcast and
// ask it for a store's catalog (GET STORE._catalog, STORE._hash, _hash).
// It keeps everything in memory: after a restart it relearns from a discovery
// round (every daemon answering on the daemon port) and from announcements.
//
// Scripts wait for the single "ready" line on stdout; logs go to stderr.
#include "discovery/registry_state.hpp"
#include "discovery/udp.hpp"
#include "protocol/codec.hpp"
#include "transport/handshake_probe.hpp"
#include "transport/server.hpp"

#include <mktl/mktl.hpp>

#include <spdlog/spdlog.h>

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace {

using mktl::Json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage = "usage: mkregistryd [options]\n";

constexpr const char* kHelp = R"(
Runs an mKTL registry: a clearing house for catalog blocks. Daemons announce
their blocks to it when they start (SET _catalog); clients find it by UDP
broadcast and ask it for the catalog of a store (GET STORE._catalog,
STORE._hash, _hash). At start-up it also asks every daemon that answers UDP
discovery for its catalog. Nothing is stored on disk.

A block that redefines a key or the alias of another daemon's block in the
same store is rejected while that daemon answers; when it no longer answers,
the new block replaces it only if announced with override. The same daemon
(same UUID) restarting at another address replaces its old block once the
old address no longer answers.

Every --check-interval seconds it asks each daemon it knows whether it still
serves its block; one that has not answered for --drop-after seconds is
dropped (clients are no longer sent to it) and asked again at each check, to
be taken back when it answers (after a network fault, say) until
--forget-after seconds have passed. A daemon that restarts elsewhere
announces itself and replaces its old block at once.

Once it answers requests, mkregistryd prints exactly one line to stdout:
    mkregistryd: ready rep=PORT udp=PORT

options:
  -p, --port N            request (ROUTER) port; 0 = any free port (default);
                          clients learn it from UDP discovery
      --bind ADDR         address to bind the request socket to (default *)
      --hostname NAME     host name put in the provenance of relayed blocks
                          (default: this host's name)
      --broadcast ADDR    UDP broadcast address for finding daemons (default
                          $MKTL_BROADCAST, else 255.255.255.255)
      --daemon-port N     UDP port daemons answer discovery on (default
                          $MKTL_DAEMON_PORT, else 10111)
      --registry-port N   UDP port this registry answers discovery on
                          (default $MKTL_REGISTRY_PORT, else 10103)
      --discovery-wait S  seconds to collect daemon answers at start-up
                          (default 1); announcements and requests are
                          served meanwhile
      --check-interval S  seconds between liveness checks of the known
                          daemons (default 5; 0 = never check)
      --drop-after S      drop a daemon silent for this long (default 15)
      --forget-after S    stop asking a dropped daemon after this long
                          (default 3600)
  -v, --verbose           more log output (repeat for debug)
  -d, --debug             debug log output
  -h, --help              show this help and exit

environment:
  MKTL_HOME               mKTL state directory (default ~/.mKTL); its
                          discovery.json may set broadcast, daemon_port and
                          registry_port
  MKTL_LOG                log level: trace, debug, info, warn, error, off
  MKTL_BROADCAST, MKTL_DAEMON_PORT, MKTL_REGISTRY_PORT

Exit status:
  0   stopped cleanly by SIGINT or SIGTERM
  1   runtime failure (a port cannot be bound, a bad discovery.json)
  2   usage error (unknown option, bad number)
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  int port = 0;
  std::string bind = "*";
  std::string hostname;
  std::string broadcast;
  int daemon_port = 0;     // 0 = from the environment
  int registry_port = 0;   // 0 = from the environment
  double discovery_wait = 1.0;
  double check_interval = 5.0;
  double drop_after = 15.0;
  double forget_after = 3600.0;
  int verbosity = 0;
};

int parse_int(const std::string& option, const char* text, int min, int max) {
  std::string_view s(text);
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < min || value > max)
    throw UsageError("--" + option + ": expected an integer from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", got '" + std::string(s) + "'");
  return value;
}

double parse_seconds(const std::string& option, const char* text, double max = 600) {
  try {
    std::size_t used = 0;
    double value = std::stod(text, &used);
    if (used == std::string_view(text).size() && value >= 0 && value <= max) return value;
  } catch (const std::exception&) {
  }
  throw UsageError("--" + option + ": expected seconds from 0 to " + std::to_string(static_cast<long>(max)) +
                   ", got '" + std::string(text) + "'");
}

// Returns nullopt after printing --help.
std::optional<Options> parse_command_line(int argc, char** argv) {
  enum { kBind = 256, kHostname, kBroadcast, kDaemonPort, kRegistryPort, kDiscoveryWait, kCheckInterval, kDropAfter,
         kForgetAfter };
  static const option long_options[] = {
      {"port", required_argument, nullptr, 'p'},
      {"bind", required_argument, nullptr, kBind},
      {"hostname", required_argument, nullptr, kHostname},
      {"broadcast", required_argument, nullptr, kBroadcast},
      {"daemon-port", required_argument, nullptr, kDaemonPort},
      {"registry-port", required_argument, nullptr, kRegistryPort},
      {"discovery-wait", required_argument, nullptr, kDiscoveryWait},
      {"check-interval", required_argument, nullptr, kCheckInterval},
      {"drop-after", required_argument, nullptr, kDropAfter},
      {"forget-after", required_argument, nullptr, kForgetAfter},
      {"verbose", no_argument, nullptr, 'v'},
      {"debug", no_argument, nullptr, 'd'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};

  Options opts;
  opterr = 0;  // we word the message ourselves, then exit 2
  int c;
  while ((c = getopt_long(argc, argv, ":p:vdh", long_options, nullptr)) != -1) {
    switch (c) {
      case 'p': opts.port = parse_int("port", optarg, 0, 65535); break;
      case 'v': ++opts.verbosity; break;
      case 'd': opts.verbosity = std::max(opts.verbosity, 2); break;
      case 'h':
        std::cout << kUsage << kHelp;
        return std::nullopt;
      case kBind: opts.bind = optarg; break;
      case kHostname: opts.hostname = optarg; break;
      case kBroadcast: opts.broadcast = optarg; break;
      case kDaemonPort: opts.daemon_port = parse_int("daemon-port", optarg, 1, 65535); break;
      case kRegistryPort: opts.registry_port = parse_int("registry-port", optarg, 1, 65535); break;
      case kDiscoveryWait: opts.discovery_wait = parse_seconds("discovery-wait", optarg); break;
      case kCheckInterval: opts.check_interval = parse_seconds("check-interval", optarg); break;
      case kDropAfter: opts.drop_after = parse_seconds("drop-after", optarg, 86400); break;
      case kForgetAfter: opts.forget_after = parse_seconds("forget-after", optarg, 30 * 86400); break;
      case ':': throw UsageError(std::string("option ") + argv[optind - 1] + " needs an argument");
      default: throw UsageError(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  if (optind < argc) throw UsageError(std::string("unexpected argument '") + argv[optind] + "'");
  return opts;
}

std::string this_hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string endpoint(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Requests to daemons (liveness checks, start-up discovery), from the worker
// and the start-up discovery thread: Client is thread-safe.
class DaemonProbe {
 public:
  DaemonProbe() : client_(make_options()) {}

  Json request(const std::string& host, int port, const std::string& target, double timeout) {
    return client_.request(endpoint(host, port), "GET", target, Json::object(), timeout).value("value", Json());
  }

  // The daemon of `block` answers at its stratum-0 address and still serves
  // that UUID (another daemon may have taken over the port). A CURVE daemon
  // (its block names its key) does not take this registry's requests, which
  // has no key it lists: it answers when its handshake shows a daemon with
  // that key at that address (which cannot say whether it still serves the
  // same UUID: a daemon that restarts announces its new block anyway).
  bool alive(const Json& block) {
    const auto& origin = block.at("provenance").at(0);
    const std::string store = block.at("store").get<std::string>();
    const std::string uuid = block.at("uuid").get<std::string>();
    if (auto key = curve_key(origin)) {
      const bool answers = mktl::transport::curve_daemon_answers(
          context_, endpoint(origin.at("hostname").get<std::string>(), origin.at("rep").get<int>()), *key, 2.0);
      spdlog::debug("mkregistryd: {} ({}) {}", block.value("alias", ""), uuid,
                    answers ? "answers the CURVE handshake" : "does not answer the CURVE handshake");
      return answers;
    }
    try {
      Json hashes = request(origin.at("hostname").get<std::string>(), origin.at("rep").get<int>(), store + "._hash", 2.0);
      bool serves = hashes.is_object() && hashes.contains(store) && hashes[store].is_object() &&
                    hashes[store].contains(uuid);
      spdlog::debug("mkregistryd: {} ({}) {}", block.value("alias", ""), uuid,
                    serves ? "answers" : "answers, but no longer serves this block");
      return serves;
    } catch (const std::exception& e) {
      spdlog::debug("mkregistryd: {} ({}) does not answer: {}", block.value("alias", ""), uuid, e.what());
      return false;
    }
  }

  // The block the daemon of `block` serves now for its UUID, asked at the
  // block's stratum-0 address; nullopt when it does not answer or no longer
  // serves that UUID.
  std::optional<Json> current(const Json& block) {
    const auto& origin = block.at("provenance").at(0);
    const std::string store = block.at("store").get<std::string>();
    const std::string uuid = block.at("uuid").get<std::string>();
    // A CURVE daemon cannot be asked for its block: it comes back by
    // announcing itself, as it does whenever it starts.
    if (curve_key(origin)) return std::nullopt;
    try {
      Json blocks = request(origin.at("hostname").get<std::string>(), origin.at("rep").get<int>(), store + "._catalog",
                            2.0);
      if (blocks.is_object() && blocks.contains(uuid) && blocks[uuid].is_object()) return blocks[uuid];
    } catch (const std::exception& e) {
      spdlog::debug("mkregistryd: lost {} ({}) still does not answer: {}", block.value("alias", ""), uuid, e.what());
    }
    return std::nullopt;
  }

 private:
  static mktl::ClientOptions make_options() {
    mktl::ClientOptions options;
    options.use_cache = false;
    return options;
  }
  // The daemon's public key when its block says it requires CURVE.
  static std::optional<std::string> curve_key(const Json& origin) {
    auto it = origin.find("curve");
    if (it == origin.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return std::nullopt;
    return it->get<std::string>();
  }
  mktl::Client client_;
  zmq::context_t context_{1};  // the CURVE handshake probes
};

// The thread that takes announcements, in arrival order: processing one may
// probe a daemon's liveness, which the server's I/O thread must never wait for.
class Worker {
 public:
  struct Task {
    mktl::transport::Incoming request;
    mktl::transport::Reply reply;
  };
  using Handler = std::function<void(Task&)>;

  explicit Worker(Handler handler) : handler_(std::move(handler)), thread_([this](std::stop_token stop) { run(stop); }) {}
  ~Worker() {
    thread_.request_stop();
    changed_.notify_all();
  }

  void push(Task task) {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
    changed_.notify_all();
  }

 private:
  void run(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    while (!stop.stop_requested()) {
      changed_.wait(lock, stop, [&] { return !tasks_.empty(); });
      while (!tasks_.empty()) {
        Task task = std::move(tasks_.front());
        tasks_.pop_front();
        lock.unlock();
        handler_(task);
        lock.lock();
        if (stop.stop_requested()) return;
      }
    }
  }

  Handler handler_;
  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<Task> tasks_;
  std::jthread thread_;   // last: starts after the queue exists
};

// SET _catalog: {"value": block, "override": bool} (the reference puts the
// override flag inside the block instead; RegistryState takes both).
void handle_announcement(mktl::discovery::RegistryState& state, Worker::Task& task) {
  try {
    Json payload = mktl::protocol::parse_payload(task.request.payload);
    if (!payload.is_object() || !payload.contains("value"))
      throw mktl::ValueError("SET _catalog needs the catalog block as its value");
    bool override = false;
    if (auto flag = payload.find("override"); flag != payload.end() && flag->is_boolean()) override = flag->get<bool>();
    state.process(std::move(payload["value"]), override);
    task.reply.send(std::string(mktl::protocol::set_ok_payload()));
  } catch (const mktl::Error& e) {
    task.reply.error(e.type(), e.text());
  } catch (const std::exception& e) {
    task.reply.error("RuntimeError", e.what());
  }
}

// Start-up discovery: every daemon answering on the daemon port is asked for
// its stores (_hash) and then each store's blocks (STORE._catalog). It runs on
// a thread of its own, beside the announcements, and ends early on `stop`.
void discover_daemons(mktl::discovery::RegistryState& state, DaemonProbe& probe,
                      const mktl::discovery::Config& config, double wait, std::stop_token stop) {
  // The configured hosts are registries, not daemons: broadcast only.
  auto broadcast_only = config;
  broadcast_only.hosts.clear();
  auto daemons = mktl::discovery::call(broadcast_only, config.daemon_port, wait, false, stop);
  int learned = 0;
  for (const auto& daemon : daemons) {
    if (stop.stop_requested()) return;
    const std::string where = daemon.address + ":" + std::to_string(daemon.rep_port);
    Json hashes;
    try {
      hashes = probe.request(daemon.address, daemon.rep_port, "_hash", 2.0);
    } catch (const std::exception& e) {
      spdlog::warn("mkregistryd: GET _hash from {} failed: {}", where, e.what());
      continue;
    }
    if (!hashes.is_object()) {
      spdlog::warn("mkregistryd: GET _hash from {}: expected an object, got {}", where, hashes.type_name());
      continue;
    }
    for (const auto& [store, uuids] : hashes.items()) {
      if (stop.stop_requested()) return;
      Json blocks;
      try {
        blocks = probe.request(daemon.address, daemon.rep_port, store + "._catalog", 2.0);
      } catch (const std::exception& e) {
        spdlog::warn("mkregistryd: GET {}._catalog from {} failed: {}", store, where, e.what());
        continue;
      }
      if (!blocks.is_object()) continue;
      for (auto& [uuid, block] : blocks.items()) {
        try {
          // The daemon just answered: it may displace blocks of daemons gone.
          if (state.process(block, true) == mktl::discovery::RegistryState::Outcome::Accepted) ++learned;
        } catch (const std::exception& e) {
          spdlog::warn("mkregistryd: block {} of {} from {} not taken: {}", uuid, store, where, e.what());
        }
      }
    }
  }
  spdlog::info("mkregistryd: start-up discovery: {} daemon(s) answered, {} block(s) learned", daemons.size(), learned);
}

void dispatch(const mktl::discovery::RegistryState& state, Worker& worker, mktl::transport::Incoming&& request,
              mktl::transport::Reply reply) {
  using mktl::protocol::MessageType;
  try {
    if (request.type == MessageType::SET) {
      if (request.target != "_catalog")
        throw mktl::ValueError("a registry takes SET only for _catalog, not '" + request.target + "'");
      worker.push(Worker::Task{std::move(request), std::move(reply)});
      return;
    }
    if (request.target == "_hash" || request.target == "._hash") {
      reply.send(mktl::protocol::value_payload(state.hashes(), now()));
      return;
    }
    auto target = mktl::protocol::split_target(request.target);
    if (target && target->key == "_hash") {
      reply.send(mktl::protocol::value_payload(state.hashes(target->store), now()));
      return;
    }
    if (target && target->key == "_catalog") {
      reply.send(mktl::protocol::value_payload(state.catalog(target->store), now()));
      return;
    }
    throw mktl::ValueError("a registry answers GET _hash, STORE._hash and STORE._catalog, not '" + request.target + "'");
  } catch (const mktl::Error& e) {
    reply.error(e.type(), e.text());
  } catch (const std::exception& e) {
    reply.error("RuntimeError", e.what());
  }
}

int run(const Options& opts) {
  auto config = mktl::discovery::Config::from_env();
  if (!opts.broadcast.empty()) config.broadcast = opts.broadcast;
  if (opts.daemon_port > 0) config.daemon_port = opts.daemon_port;
  if (opts.registry_port > 0) config.registry_port = opts.registry_port;
  const std::string hostname = opts.hostname.empty() ? this_hostname() : opts.hostname;

  DaemonProbe probe;
  // Set once the request port is known; requests that come earlier (no one
  // knows the port yet) are told to retry.
  std::unique_ptr<mktl::discovery::RegistryState> state;
  std::atomic<mktl::discovery::RegistryState*> ready_state{nullptr};
  Worker worker([&](Worker::Task& task) { handle_announcement(*ready_state.load(), task); });

  mktl::transport::ServerOptions server_options;
  server_options.rep_endpoint = endpoint(opts.bind, opts.port);
  server_options.pub_endpoint.clear();   // a registry publishes nothing
  mktl::transport::Server server(server_options, [&](mktl::transport::Incoming&& request, mktl::transport::Reply reply) {
    auto* current = ready_state.load();
    if (!current) return reply.error("RuntimeError", "the registry is starting; try again");
    dispatch(*current, worker, std::move(request), std::move(reply));
  });
  server.start();
  const int rep_port = server.rep_port();

  state = std::make_unique<mktl::discovery::RegistryState>(hostname, rep_port,
                                                          [&probe](const Json& block) { return probe.alive(block); });
  ready_state = state.get();

  mktl::discovery::Responder responder(config.registry_port, rep_port);
  std::cout << "mkregistryd: ready rep=" << rep_port << " udp=" << responder.port() << std::endl;
  spdlog::info("mkregistryd: serving on {} as {}; discovery on UDP {}, daemons on UDP {} via {}",
               server.rep_endpoint(), hostname, responder.port(), config.daemon_port, config.broadcast);

  // Beside the announcements, not before them: a daemon starting now is
  // taken (and its clients answered) at once, not after the discovery wait.
  std::jthread startup_discovery([&](std::stop_token stop) {
    try {
      discover_daemons(*state, probe, config, opts.discovery_wait, stop);
    } catch (const std::exception& e) {
      spdlog::error("mkregistryd: start-up discovery: {}", e.what());
    }
  });

  // Liveness checks: drop daemons that went away, take them back when they answer.
  std::jthread liveness;
  if (opts.check_interval > 0) {
    liveness = std::jthread([&](std::stop_token stop) {
      std::mutex mutex;
      std::condition_variable_any wake;
      const auto start = std::chrono::steady_clock::now();
      const auto interval = std::chrono::duration<double>(opts.check_interval);
      while (!stop.stop_requested()) {
        std::unique_lock lock(mutex);
        if (wake.wait_for(lock, stop, interval, [] { return false; }) || stop.stop_requested()) return;
        lock.unlock();
        try {
          double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          state->sweep(seconds, opts.drop_after, opts.forget_after,
                       [&probe](const Json& block) { return probe.current(block); });
        } catch (const std::exception& e) {
          spdlog::error("mkregistryd: liveness check: {}", e.what());
        }
      }
    });
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("mkregistryd: signal {}, stopping", signal_number);
  liveness.request_stop();
  startup_discovery.request_stop();
  responder.stop();
  server.stop();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists so that only sigwait()
  // in run() sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::optional<Options> opts;
  try {
    opts = parse_command_line(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "mkregistryd: " << e.what() << "\n" << kUsage << "Try 'mkregistryd --help' for more information.\n";
    return kExitUsage;
  }
  if (!opts) return kExitOk;
  mktl::setup_logging(opts->verbosity);

  try {
    return run(*opts);
  } catch (const mktl::Error& e) {
    std::cerr << "mkregistryd: " << e.type() << ": " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "mkregistryd: " << e.what() << "\n";
    return kExitFailure;
  }
}
