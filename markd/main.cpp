// markd: runs one mKTL daemon for STORE ALIAS until SIGINT or SIGTERM.
//
// The daemon is a plain caching mktl::Daemon, or a subclass registered with
// MKTL_REGISTER_DAEMON in a shared library (--module LIB.so --subclass NAME).
// Scripts wait for the single "ready" line on stdout; everything else (logs,
// errors) goes to stderr.
#include <mktl/config_file.hpp>
#include <mktl/mktl.hpp>

#include <spdlog/spdlog.h>

#include <dlfcn.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace {

// sysexits.h values: systemd's RestartPreventExitStatus=78 keys on EX_CONFIG.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConfig = 78;

constexpr const char* kUsage = "usage: markd [options] STORE ALIAS\n       markd [options] STORE:ALIAS\n";

constexpr const char* kHelp = R"(
Runs one mKTL daemon: serves the items of one catalog block (ALIAS) of the
store STORE until SIGINT or SIGTERM. Without --module the daemon is a plain
caching daemon: every item holds whatever is set or published. With --module
and --subclass, the daemon is a mktl::Daemon subclass built into a shared
library with MKTL_REGISTER_DAEMON(NAME).

STORE:ALIAS as a single argument is the same as STORE ALIAS (the form used by
the markd@STORE:ALIAS systemd unit).

Once the daemon answers requests, markd prints exactly one line to stdout:
    markd: STORE ALIAS ready rep=PORT pub=PORT

options:
  -c, --catalog FILE     items of this daemon ({key: description} JSON); it
                         also replaces the stored copy in
                         $MKTL_HOME/daemon/store/STORE/ALIAS.json, which is
                         what is used when --catalog is not given. A TOML
                         file, or a JSON object with `tables` or `services`
                         beside an optional `items`, also declares tables
                         and services as --mkio does ({"items": {...}}
                         alone: the items, no tables)
      --mkio FILE        tables and services in mkio's shape (TOML when FILE
                         ends in .toml, else JSON; an mkio file unchanged):
                         each transaction op set becomes a settable record
                         item, each subpub, stream and query service a
                         collection item; mkio keys with no meaning here
                         (host, port, static, reqrep services) are logged
                         and ignored
      --migrate          apply schema changes that can lose data (a changed
                         column type or key, a dropped column or table);
                         without it markd refuses to start and lists them
  -m, --module LIB.so    shared library holding the daemon subclass
  -s, --subclass NAME    daemon subclass registered in --module with
                         MKTL_REGISTER_DAEMON(NAME)
  -a, --appconfig FILE   JSON configuration handed to the subclass
                         (mktl::DaemonOptions::appconfig); its
                         `security` member, if any, is read as --security
      --security FILE    CurveZMQ and access rules (docs/security.md): a
                         JSON file of the security section {curve,
                         server_key, clients, acl} (or an object with a
                         `security` member); off by default
  -o, --override         replace a conflicting catalog block at registries
                         (allowed only when its daemon no longer answers)
      --check            load and check catalog, tables and services,
                         module, subclass and appconfig, construct the
                         daemon, and exit without serving
      --rep-port N       request (ROUTER) port; 0 = any free port (default)
      --pub-port N       broadcast (PUB) port; 0 = any free port (default)
      --bind ADDR        address to bind both sockets to (default *)
      --hostname NAME    host name advertised to clients (default: this
                         host's name); it must resolve for them
      --broadcast ADDR   UDP broadcast address for discovery (sets
                         $MKTL_BROADCAST; default 255.255.255.255)
      --no-discovery     neither answer UDP discovery nor announce to
                         registries
      --workers N        worker threads running item code (default 4)
      --max-request-bytes N
                         largest request taken, all frames together (K, M
                         or G for KiB, MiB, GiB; default 128M; 0 = no
                         limit); a bigger one is answered with a ValueError
      --subscriber-grace S
                         seconds a subscriber whose queue is full may read
                         nothing before broadcasts are dropped for it
                         (counted in _ALIASdrops); until then broadcasts
                         wait for it (default 0.2; 0 = drop at once)
      --hook-timeout S   seconds a request may wait for its item's code
                         before it is answered with TimeoutError, and a
                         worker held by item code is replaced (default 60;
                         0 = no deadline)
  -v, --verbose          more log output (repeat for debug)
  -d, --debug            debug log output
  -h, --help             show this help and exit

environment:
  MKTL_HOME              mKTL state directory (default ~/.mKTL)
  MKTL_LOG               log level: trace, debug, info, warn, error, off
  MKTL_BROADCAST         UDP broadcast address for discovery
  MKTL_AVAHI_MODULE      DNS-SD module to load instead of libmktl_avahi.so
                         next to libmktl

Exit status:
  0   stopped cleanly by SIGINT or SIGTERM (or --check passed)
  1   runtime failure (for example a port already in use, a registry
      rejecting the catalog)
  2   usage error (unknown option, missing STORE or ALIAS)
  78  bad catalog or configuration (EX_CONFIG): unreadable or invalid JSON
      or TOML, a bad item description, table or service, module or
      subclass not found; the message names the file and the field (with
      the line for TOML); or a persistence database found empty or
      missing while its marker says it held values (delete the marker
      named in the message to start without them)

example:
  markd --catalog heater.json heater heater1
  markd --mkio orders.toml book book1
  markd -m libheaterd.so -s HeaterDaemon -a heater.conf heater heater1
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string store;
  std::string alias;
  std::string catalog;
  std::string module;
  std::string subclass;
  std::string appconfig;
  std::string security;
  std::string mkio;
  bool migrate = false;
  bool override_registry = false;
  bool check = false;
  bool discovery = true;
  int rep_port = 0;
  int pub_port = 0;
  std::string bind = "*";
  std::string hostname;
  std::string broadcast;
  int workers = 4;
  std::uint64_t max_request_bytes = 128ull << 20;
  double hook_timeout = 60;
  double subscriber_grace = 0.2;
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

double parse_seconds(const std::string& option, const char* text) {
  std::string_view s(text);
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value) || value < 0 || value > 86400)
    throw UsageError("--" + option + ": expected seconds from 0 to 86400, got '" + std::string(s) + "'");
  return value;
}

// A byte count: digits, then optionally K, M or G (binary multiples).
std::uint64_t parse_bytes(const std::string& option, const char* text) {
  std::string_view s(text);
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  std::string_view suffix(end, static_cast<std::size_t>(s.data() + s.size() - end));
  int shift = suffix.empty() ? 0 : suffix == "K" || suffix == "k" ? 10 : suffix == "M" ? 20 : suffix == "G" ? 30 : -1;
  if (ec != std::errc() || end == s.data() || shift < 0 || value > (std::uint64_t{1} << 40) >> shift)
    throw UsageError("--" + option + ": expected a byte count like 1048576, 64M or 1G (at most 1024G), got '" +
                     std::string(s) + "'");
  return value << shift;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Returns nullopt after printing --help.
std::optional<Options> parse_command_line(int argc, char** argv) {
  enum { kCheck = 256, kRepPort, kPubPort, kBind, kHostname, kBroadcast, kNoDiscovery, kWorkers, kMkio, kMigrate, kHookTimeout };
  enum { kMaxRequestBytes = 512, kSubscriberGrace };
  static const option long_options[] = {
      {"catalog", required_argument, nullptr, 'c'},  {"module", required_argument, nullptr, 'm'},
      {"subclass", required_argument, nullptr, 's'}, {"appconfig", required_argument, nullptr, 'a'},
      {"override", no_argument, nullptr, 'o'},       {"check", no_argument, nullptr, kCheck},
      {"rep-port", required_argument, nullptr, kRepPort}, {"pub-port", required_argument, nullptr, kPubPort},
      {"bind", required_argument, nullptr, kBind},   {"hostname", required_argument, nullptr, kHostname},
      {"broadcast", required_argument, nullptr, kBroadcast},
      {"no-discovery", no_argument, nullptr, kNoDiscovery},
      {"workers", required_argument, nullptr, kWorkers},
      {"security", required_argument, nullptr, 'S'},
      {"max-request-bytes", required_argument, nullptr, kMaxRequestBytes},
      {"hook-timeout", required_argument, nullptr, kHookTimeout},
      {"subscriber-grace", required_argument, nullptr, kSubscriberGrace},
      {"mkio", required_argument, nullptr, kMkio},   {"migrate", no_argument, nullptr, kMigrate},
      {"verbose", no_argument, nullptr, 'v'},        {"debug", no_argument, nullptr, 'd'},
      {"help", no_argument, nullptr, 'h'},           {nullptr, 0, nullptr, 0}};

  Options opts;
  opterr = 0;  // we word the message ourselves, then exit 2
  int c;
  while ((c = getopt_long(argc, argv, ":c:m:s:a:ovdh", long_options, nullptr)) != -1) {
    switch (c) {
      case 'c': opts.catalog = optarg; break;
      case 'm': opts.module = optarg; break;
      case 's': opts.subclass = optarg; break;
      case 'a': opts.appconfig = optarg; break;
      case 'S': opts.security = optarg; break;
      case 'o': opts.override_registry = true; break;
      case 'v': ++opts.verbosity; break;
      case 'd': opts.verbosity = std::max(opts.verbosity, 2); break;
      case 'h':
        std::cout << kUsage << kHelp;
        return std::nullopt;
      case kCheck: opts.check = true; break;
      case kRepPort: opts.rep_port = parse_int("rep-port", optarg, 0, 65535); break;
      case kPubPort: opts.pub_port = parse_int("pub-port", optarg, 0, 65535); break;
      case kBind: opts.bind = optarg; break;
      case kMaxRequestBytes: opts.max_request_bytes = parse_bytes("max-request-bytes", optarg); break;
      case kHostname: opts.hostname = optarg; break;
      case kBroadcast: opts.broadcast = optarg; break;
      case kNoDiscovery: opts.discovery = false; break;
      case kWorkers: opts.workers = parse_int("workers", optarg, 1, 1024); break;
      case kHookTimeout: opts.hook_timeout = parse_seconds("hook-timeout", optarg); break;
      case kSubscriberGrace: opts.subscriber_grace = parse_seconds("subscriber-grace", optarg); break;
      case kMkio: opts.mkio = optarg; break;
      case kMigrate: opts.migrate = true; break;
      case ':':
        throw UsageError(std::string("option ") + argv[optind - 1] + " needs an argument");
      default:
        throw UsageError(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  std::vector<std::string> positional(argv + optind, argv + argc);
  if (positional.size() == 1 && positional[0].find(':') != std::string::npos) {
    auto colon = positional[0].find(':');
    positional = {positional[0].substr(0, colon), positional[0].substr(colon + 1)};
  }
  if (positional.size() != 2) throw UsageError("expected STORE and ALIAS");
  opts.store = lower(positional[0]);
  opts.alias = lower(positional[1]);
  if (opts.store.empty() || opts.alias.empty()) throw UsageError("STORE and ALIAS must not be empty");
  if (opts.store.find('.') != std::string::npos) throw UsageError("STORE must not contain '.'");
  if (!opts.module.empty() && opts.subclass.empty()) throw UsageError("--module needs --subclass");
  if (opts.module.empty() && !opts.subclass.empty() && opts.subclass != "Daemon")
    throw UsageError("--subclass needs --module");
  return opts;
}

std::string endpoint(const std::string& bind, int port) {
  // IPv6 literals need brackets in a zmq endpoint.
  bool v6 = bind.find(':') != std::string::npos && bind.front() != '[';
  return "tcp://" + (v6 ? "[" + bind + "]" : bind) + ":" + std::to_string(port);
}

std::string default_catalog_path(const Options& opts) {
  return mktl::mktl_home() + "/daemon/store/" + opts.store + "/" + opts.alias + ".json";
}

// A loaded --module; closed after the daemon it built is gone (its code and
// vtable live in the library).
struct DlCloser {
  void operator()(void* handle) const noexcept {
    if (handle) dlclose(handle);
  }
};
using ModuleHandle = std::unique_ptr<void, DlCloser>;

mktl::DaemonFactory load_factory(const Options& opts, ModuleHandle& module) {
  dlerror();
  module.reset(dlopen(opts.module.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!module) {
    const char* why = dlerror();
    throw mktl::ConfigError(opts.module, "--module", why ? why : "cannot load the library");
  }
  std::string symbol = "mktl_daemon_registration_" + opts.subclass;
  dlerror();
  void* address = dlsym(module.get(), symbol.c_str());
  if (!address)
    throw mktl::ConfigError(opts.module, "--subclass",
                            "no daemon subclass '" + opts.subclass + "' in this library (symbol " + symbol +
                                " not found; is MKTL_REGISTER_DAEMON(" + opts.subclass + ") in it?)");
  auto registration = reinterpret_cast<const mktl::DaemonRegistration* (*)()>(address)();
  if (!registration || !registration->factory)
    throw mktl::ConfigError(opts.module, "--subclass", "registration of '" + opts.subclass + "' has no factory");
  return registration->factory;
}

// A catalog that also declares tables and services (TOML, or a JSON daemon
// configuration) is stored as a JSON daemon configuration, with its db_path
// made absolute so that the stored copy keeps using the same database.
mktl::Json stored_daemon_config(const std::string& catalog, const mktl::Json& items, mktl::Json collections) {
  namespace fs = std::filesystem;
  if (collections.contains("db_path") && collections["db_path"].is_string()) {
    const fs::path db = collections["db_path"].get<std::string>();
    if (db.is_relative() && db != ":memory:")
      collections["db_path"] = fs::absolute(fs::path(catalog).parent_path() / db).lexically_normal().string();
  }
  if (!collections.contains("tables") && !collections.contains("services")) collections["tables"] = mktl::Json::object();
  collections["items"] = items;
  return collections;
}

// Keeps the catalog given with --catalog as this daemon's stored one, so that
// a later start without --catalog serves the same items (as the reference).
// `daemon_config` (not null) is written instead of copying the file.
void store_catalog_copy(const Options& opts, const mktl::Json& daemon_config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target = default_catalog_path(opts);
  if (fs::equivalent(opts.catalog, target, ec)) return;
  fs::create_directories(target.parent_path(), ec);
  fs::path temporary = target;
  temporary += ".tmp";
  if (daemon_config.is_null()) {
    fs::copy_file(opts.catalog, temporary, fs::copy_options::overwrite_existing, ec);
  } else {
    std::ofstream out(temporary, std::ios::trunc);
    out << daemon_config.dump(2, ' ', false, mktl::Json::error_handler_t::replace) << "\n";
    out.close();
    if (!out) ec = std::make_error_code(std::errc::io_error);
  }
  if (!ec) fs::rename(temporary, target, ec);
  if (ec) spdlog::warn("markd: could not store the catalog as {}: {}", target.string(), ec.message());
}

int run(const Options& opts) {
  if (!opts.broadcast.empty()) setenv("MKTL_BROADCAST", opts.broadcast.c_str(), 1);

  std::string catalog_path = opts.catalog.empty() ? default_catalog_path(opts) : opts.catalog;
  mktl::DaemonConfig config;  // no catalog and --mkio: a daemon of tables and services only
  if (!opts.catalog.empty() || std::filesystem::exists(catalog_path))
    config = mktl::load_daemon_config(catalog_path);
  else if (opts.mkio.empty())
    throw mktl::ConfigError(catalog_path, "", "no stored catalog for this daemon; give one with --catalog FILE (or --mkio FILE)");
  mktl::Json stored;
  if (!config.collections.is_null() && !opts.catalog.empty())
    stored = stored_daemon_config(catalog_path, config.items, config.collections);
  mktl::Json items = std::move(config.items);

  mktl::DaemonOptions options;
  options.rep_endpoint = endpoint(opts.bind, opts.rep_port);
  options.pub_endpoint = endpoint(opts.bind, opts.pub_port);
  options.hostname = opts.hostname;
  options.workers = opts.workers;
  options.max_request_bytes = opts.max_request_bytes;
  options.hook_timeout = opts.hook_timeout;
  options.subscriber_grace = opts.subscriber_grace;
  options.override_registry = opts.override_registry;
  options.discovery = opts.discovery;
  if (!opts.appconfig.empty()) options.appconfig = mktl::load_json_file(opts.appconfig);
  // Security: --security FILE, else the `security` member of --appconfig.
  if (!opts.security.empty()) {
    mktl::Json section = mktl::load_json_file(opts.security);
    if (section.is_object() && section.contains("security")) section = mktl::Json(section["security"]);
    options.security = mktl::SecurityOptions::from_json(section, opts.security);
    options.security_source = opts.security;
  } else if (options.appconfig.is_object() && options.appconfig.contains("security")) {
    options.security = mktl::SecurityOptions::from_json(options.appconfig["security"], opts.appconfig);
    options.security_source = opts.appconfig;
  }
  if (!opts.mkio.empty()) {
    if (!config.collections.is_null())
      throw mktl::ConfigError(opts.mkio, "--mkio", "the catalog " + catalog_path +
                                                       " already declares tables and services; keep them in one of the two files");
    options.collections = mktl::load_config_file(opts.mkio);
    options.collections_source = opts.mkio;
  } else if (!config.collections.is_null()) {
    options.collections = std::move(config.collections);
    options.collections_source = catalog_path;
  }
  options.migrate = opts.migrate;

  // Declared before the daemon so that it is closed after the daemon is gone.
  ModuleHandle module;
  std::unique_ptr<mktl::Daemon> daemon;
  if (opts.module.empty()) {
    daemon = std::make_unique<mktl::Daemon>(opts.store, opts.alias, std::move(items), options, catalog_path);
  } else {
    mktl::DaemonFactory factory = load_factory(opts, module);
    daemon = factory(opts.store, opts.alias, std::move(items), options, catalog_path);
    if (!daemon) throw mktl::ConfigError(opts.module, "--subclass", "the factory of '" + opts.subclass + "' made no daemon");
  }

  if (opts.check) {
    std::cout << "markd: " << daemon->store() << " " << daemon->alias() << " configuration OK ("
              << daemon->items().size() << " items)" << std::endl;
    return kExitOk;
  }

  daemon->start();
  if (!opts.catalog.empty()) store_catalog_copy(opts, stored);
  std::cout << "markd: " << daemon->store() << " " << daemon->alias() << " ready rep=" << daemon->rep_port()
            << " pub=" << daemon->pub_port() << std::endl;  // endl flushes: scripts wait for this line
  spdlog::info("markd: {} {} serving on {} and {}", daemon->store(), daemon->alias(), daemon->rep_endpoint(),
               daemon->pub_endpoint());

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("markd: {} {}: signal {}, stopping", daemon->store(), daemon->alias(), signal_number);
  daemon->stop();
  daemon.reset();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists, so that every thread the
  // daemon starts inherits the mask and only sigwait() in main sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // glibc raises its mmap threshold each time a large block is freed, after
  // which request frames of 1-16 MiB come from the heap and stay there when
  // freed (RSS grew from 11 to 230 MB). A fixed threshold (which also fixes
  // the trim threshold) hands every block of 1 MiB or more back at once.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // That fixed trim threshold is 128 KiB: a heap whose free top passes it is
  // shrunk at once (madvise), and its next growth faults the pages back in.
  // The tables writer frees and reallocates more than that with every
  // COMMIT (SQLite's pages, a batch's rows): in a profile of the
  // transactions benchmark, madvise and page faults were 8 % of markd's
  // samples (docs/performance.md). Each heap now keeps up to 1 MiB free.
  mallopt(M_TRIM_THRESHOLD, 1 << 20);

  std::optional<Options> opts;
  try {
    opts = parse_command_line(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "markd: " << e.what() << "\n" << kUsage << "Try 'markd --help' for more information.\n";
    return kExitUsage;
  }
  if (!opts) return kExitOk;
  mktl::setup_logging(opts->verbosity);

  const std::string who = opts->store + " " + opts->alias;
  try {
    return run(*opts);
  } catch (const mktl::ConfigError& e) {
    std::cerr << "markd: " << who << ": bad configuration: " << e.what() << "\n";
    return kExitConfig;
  } catch (const mktl::Error& e) {
    std::cerr << "markd: " << who << ": " << e.type() << ": " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "markd: " << who << ": " << e.what() << "\n";
    return kExitFailure;
  }
}
