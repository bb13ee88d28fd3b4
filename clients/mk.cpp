// mk: the mKTL command-line client (get, set, watch, list, describe,
// discover), in the shape of the reference's `mk`.
//
// Start-up is kept lean: one Client, stores made known once each (from the
// catalog cache, or from --connect), then exactly the requests asked for.
#include <mktl/mktl.hpp>

#include "collections.hpp"
#include "records.hpp"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <future>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "usage: mk [options] get|set|watch|list|describe|discover|keygen [requests ...]\n";

constexpr const char* kHelp = R"(
The mKTL command-line client. Options may come before or after the command.

commands:
  get STORE.KEY ...          print the current value of items
  get STORE.KEY --snapshot [--filter EXPR]
                             a collection item's rows, one per line, then
                             the seq they are consistent with
  get STORE.KEY --since SEQ  a collection item's changes after SEQ (or after
                             a transaction ref), each with its op and seq, or
                             "reset" and the rows when no longer held
  set STORE.KEY=VALUE ...    set items (in parallel unless --serial);
                             STORE.KEY VALUE (two arguments) works too
  set STORE.KEY --file FILE  one transaction per row of FILE (record items:
                             CSV with a header row, or JSON), each reported
  watch STORE.KEY ...        print the current value, then every broadcast,
                             until interrupted (SIGINT or SIGTERM); for a
                             collection item, its rows, then every change
                             with its op and seq (missed changes are fetched)
  list STORE ...             list the keys of stores, with type and access
  describe STORE.KEY|STORE   print item descriptions (JSON)
  discover [tcp://HOST:PORT ...]
                             list the stores known to the given registries
                             or daemons
  keygen NAME                write a new CURVE key pair: NAME.key (secret,
                             mode 0600) and NAME.pub in $MKTL_HOME/keys (or
                             at the path NAME), and print the public key

options:
  -s, --store STORE      prefix STORE. to every key (get -s heater temp)
      --serial           run set requests one after the other, stopping at
                         the first failure (default: all in parallel)
      --no-wait          send set requests and exit without waiting for
                         their outcome (not with --serial)
      --formatted        show formatted values (enumerator names, printf
                         format, display units); for set, read the given
                         text as a formatted value. The default for get.
      --unformatted      show the values as sent on the wire; for set, send
                         the text as JSON when it parses as JSON, else as a
                         string, and let the daemon convert it. With both
                         --formatted and --unformatted, get shows
                         "RAW => FORMATTED".
      --terse            print the value only (no key, units or time)
      --timestamp        prefix get lines with the value's time
      --no-timestamp     no time prefix on watch lines (default: HH:MM:SS.mmm)
      --refresh          get: ask the daemon to read the hardware rather
                         than answer from its cache
      --ref REF          get of a record item: whether the transaction REF
                         committed, and its result; set of a record item:
                         send REF with it (a ref that committed before is
                         answered with that result, not run again)
  -f, --file FILE        set of a record item: the transactions in FILE
      --snapshot         get of a collection item: all its rows
      --since SEQ        get of a collection item: the changes after SEQ
      --filter EXPR      collection items: only rows matching EXPR (see
                         docs/expressions.md); get --snapshot: evaluated by
                         the daemon, watch: by mk
      --row ID           watch of a collection item: only the row ID
                         (compared in mk, not filtered by the daemon)
      --json             one JSON object per line on stdout (machine output)
  -o, --output FILE      get of one bulk item: write its raw bytes (native
                         byte order, C order; shape and dtype are printed)
                         to FILE. For another item, FILE gets its JSON value.
  -w, --timeout SECONDS  how long to wait for each reply (default 60)
      --connect tcp://HOST:PORT
                         reach the store(s) at this daemon or registry
                         address instead of using the catalog cache and
                         discovery (repeatable)
      --key NAME         this client's CURVE key pair (NAME ->
                         $MKTL_HOME/keys/NAME.key, or a secret key file),
                         for daemons that require CURVE (docs/security.md);
                         default $MKTL_KEY
      --server-key KEY   pin the daemons' public key (Z85 text, a .pub file
                         or a key name): used instead of the key their
                         catalogs announce, and for --connect
      --server-key STORE=KEY
                         pin the key of one store's daemons: they are
                         reached only over CURVE with it, whatever their
                         catalogs say (repeatable; --server-key replaces
                         $MKTL_SERVER_KEY, which takes the same entries
                         separated by commas)
      --force            keygen: replace an existing key pair
  -v, --verbose          log output on stderr (repeat for debug)
  -d, --debug            debug log output on stderr
  -h, --help             show this help and exit

Without --formatted or --unformatted, set reads a value the way the item's
type reads formatted text (enumerator and mask bit names, sexagesimal, display
units) and falls back to JSON or plain text when that fails; string items
always get the text as given.

Bulk items: get prints the shape, dtype, minimum, maximum and mean; use
--output FILE for the data. Setting bulk items is not supported by mk.

Errors go to stderr as "mk: STORE.KEY: TYPE: TEXT", TYPE being the error type
the daemon raised (ValueError, KeyError, TypeError, TimeoutError, ...).

environment:
  MKTL_HOME              mKTL state directory (catalog cache; default ~/.mKTL)
  MKTL_BROADCAST         UDP broadcast address for discovery
  MKTL_LOG               log level: trace, debug, info, warn, error, off
  MKTL_KEY               this client's key pair (as --key)
  MKTL_SERVER_KEY        pinned server keys (as --server-key, separated by
                         commas)

Exit status:
  0   all requests succeeded
  1   some request failed (error on stderr)
  2   usage error (unknown option or command, malformed request)

examples:
  mk get heater.temp heater.setpoint
  mk get -s heater temp setpoint --unformatted
  mk set heater.setpoint=45 heater.mode=On
  mk set book.orders_new '{"symbol": "AAPL", "qty": 100}'
  mk set book.orders_new --file orders.csv
  mk get book.orders_new --ref '20261201 10:47:20.123456789000'
  mk watch heater.temp
  mk get book.positions --snapshot --filter "qty > 0"
  mk get book.fills --since 1200
  mk watch book.positions --row AAPL
  mk list heater
  mk get --connect tcp://127.0.0.1:10079 heater.temp
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The outcome of a failed request, as printed.
struct Failure {
  std::string type;
  std::string text;
};

Failure failure_of(const std::exception& e) {
  if (auto* error = dynamic_cast<const mktl::Error*>(&e)) return {error->type(), error->text()};
  return {"RuntimeError", e.what()};
}

struct Options {
  std::string command;
  std::vector<std::string> requests;
  std::string store;
  bool serial = false;
  bool no_wait = false;
  bool formatted = true;
  bool unformatted = false;
  bool formatted_given = false;
  bool unformatted_given = false;
  bool terse = false;
  bool timestamp = false;
  bool json = false;
  bool refresh = false;
  std::string output;
  std::string file;
  std::string ref;
  bool snapshot = false;
  std::optional<std::string> since;
  std::string filter;
  std::string row;
  std::optional<double> timeout;
  std::vector<std::string> connect;
  std::string key;         // --key
  std::vector<std::string> server_keys;  // --server-key, each KEY or STORE=KEY
  bool force = false;      // keygen --force
  int verbosity = 0;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "store.key" with both parts lower case (they travel lower case).
std::string normalise_key(const std::string& key) {
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find('.') == std::string::npos)
    throw UsageError("'" + key + "' is not STORE.KEY (or give the store with -s)");
  return lower(key);
}

std::string store_of(const std::string& full_key) { return full_key.substr(0, full_key.find('.')); }
std::string bare_key(const std::string& full_key) { return full_key.substr(full_key.find('.') + 1); }

// Returns nullopt after printing --help.
std::optional<Options> parse_command_line(int argc, char** argv) {
  enum {
    kSerial = 256, kNoWait, kFormatted, kUnformatted, kTerse, kTimestamp, kNoTimestamp, kJson, kRefresh,
    kConnect, kRef, kSnapshot, kSince, kFilter, kRow
  };
  static const option long_options[] = {
      {"store", required_argument, nullptr, 's'},      {"serial", no_argument, nullptr, kSerial},
      {"no-wait", no_argument, nullptr, kNoWait},      {"formatted", no_argument, nullptr, kFormatted},
      {"unformatted", no_argument, nullptr, kUnformatted}, {"terse", no_argument, nullptr, kTerse},
      {"timestamp", no_argument, nullptr, kTimestamp}, {"no-timestamp", no_argument, nullptr, kNoTimestamp},
      {"json", no_argument, nullptr, kJson},           {"refresh", no_argument, nullptr, kRefresh},
      {"output", required_argument, nullptr, 'o'},     {"timeout", required_argument, nullptr, 'w'},
      {"connect", required_argument, nullptr, kConnect}, {"verbose", no_argument, nullptr, 'v'},
      {"file", required_argument, nullptr, 'f'},       {"ref", required_argument, nullptr, kRef},
      {"snapshot", no_argument, nullptr, kSnapshot},   {"since", required_argument, nullptr, kSince},
      {"filter", required_argument, nullptr, kFilter}, {"row", required_argument, nullptr, kRow},
      {"debug", no_argument, nullptr, 'd'},            {"help", no_argument, nullptr, 'h'},
      {"key", required_argument, nullptr, 'K'},       {"server-key", required_argument, nullptr, 'P'},
      {"force", no_argument, nullptr, 'F'},
      {nullptr, 0, nullptr, 0}};

  Options opts;
  bool timestamp = false, no_timestamp = false;
  opterr = 0;  // we word the message ourselves, then exit 2
  int c;
  while ((c = getopt_long(argc, argv, ":s:o:w:f:vdh", long_options, nullptr)) != -1) {
    switch (c) {
      case 's': opts.store = lower(optarg); break;
      case kSerial: opts.serial = true; break;
      case kNoWait: opts.no_wait = true; break;
      case kFormatted: opts.formatted_given = true; break;
      case kUnformatted: opts.unformatted_given = true; break;
      case kTerse: opts.terse = true; break;
      case kTimestamp: timestamp = true; break;
      case kNoTimestamp: no_timestamp = true; break;
      case kJson: opts.json = true; break;
      case kRefresh: opts.refresh = true; break;
      case kConnect: opts.connect.emplace_back(optarg); break;
      case 'K': opts.key = optarg; break;
      case 'P':
        try {  // its form, checked here: a malformed pin is a usage error
          mktl::ClientOptions().pin_server_key(optarg);
        } catch (const mktl::Error& e) {
          throw UsageError(std::string("--server-key: ") + e.what());
        }
        opts.server_keys.push_back(optarg);
        break;
      case 'F': opts.force = true; break;
      case 'o': opts.output = optarg; break;
      case 'f': opts.file = optarg; break;
      case kRef: opts.ref = optarg; break;
      case kSnapshot: opts.snapshot = true; break;
      case kSince: opts.since = optarg; break;
      case kFilter: opts.filter = optarg; break;
      case kRow: opts.row = optarg; break;
      case 'w': {
        std::string_view text(optarg);
        double seconds = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
        if (ec != std::errc() || end != text.data() + text.size() || !(seconds > 0) || !std::isfinite(seconds))
          throw UsageError("--timeout: expected a positive number of seconds, got '" + std::string(text) + "'");
        opts.timeout = seconds;
        break;
      }
      case 'v': ++opts.verbosity; break;
      case 'd': opts.verbosity = std::max(opts.verbosity, 2); break;
      case 'h':
        std::cout << kUsage << kHelp;
        return std::nullopt;
      case ':': throw UsageError(std::string("option ") + argv[optind - 1] + " needs an argument");
      default: throw UsageError(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  std::vector<std::string> positional(argv + optind, argv + argc);
  if (positional.empty()) throw UsageError("no command given");
  opts.command = lower(positional.front());
  opts.requests.assign(positional.begin() + 1, positional.end());
  static const std::set<std::string> commands{"get", "set", "watch", "list", "describe", "discover", "keygen"};
  if (!commands.count(opts.command)) throw UsageError("unknown command '" + positional.front() + "'");

  if (opts.force && opts.command != "keygen") throw UsageError("--force goes with keygen");
  if (timestamp && no_timestamp) throw UsageError("--timestamp and --no-timestamp exclude each other");
  if (opts.serial && opts.no_wait) throw UsageError("--serial and --no-wait exclude each other");
  if (opts.command == "set" && opts.formatted_given && opts.unformatted_given)
    throw UsageError("set takes either --formatted or --unformatted, not both");
  // As the reference: formatted unless only --unformatted is given.
  opts.unformatted = opts.unformatted_given;
  opts.formatted = opts.formatted_given || !opts.unformatted_given;
  if (opts.command == "watch") opts.timestamp = !no_timestamp;
  else opts.timestamp = timestamp;
  if (opts.terse) opts.timestamp = false;
  if (!opts.output.empty() && (opts.command != "get" || opts.requests.size() != 1))
    throw UsageError("--output goes with a get of exactly one key");
  if (!opts.file.empty() && (opts.command != "set" || opts.requests.size() != 1))
    throw UsageError("--file goes with a set of exactly one record item");
  if (!opts.ref.empty() && ((opts.command != "get" && opts.command != "set") || opts.requests.size() > 2))
    throw UsageError("--ref goes with a get or set of one record item");
  if ((opts.snapshot || opts.since) && opts.command != "get")
    throw UsageError("--snapshot and --since go with get (of a collection item)");
  if (opts.snapshot && opts.since) throw UsageError("--snapshot and --since exclude each other");
  if ((opts.snapshot || opts.since) && (!opts.ref.empty() || opts.refresh || !opts.output.empty()))
    throw UsageError("--snapshot and --since do not go with --ref, --refresh or --output");
  if (opts.since && opts.since->empty()) throw UsageError("--since needs a seq (or a transaction ref)");
  if (!opts.filter.empty() && !(opts.command == "watch" || opts.snapshot))
    throw UsageError("--filter goes with get --snapshot or watch (of a collection item)");
  if (!opts.row.empty() && opts.command != "watch") throw UsageError("--row goes with watch (of a collection item)");
  // set STORE.KEY VALUE: two arguments make one request.
  if (opts.command == "set" && opts.file.empty()) {
    std::vector<std::string> joined;
    for (std::size_t i = 0; i < opts.requests.size(); ++i) {
      const std::string& r = opts.requests[i];
      bool bare_key = r.find('=') == std::string::npos || r.find('=') > r.find_first_of("{[\"' ");
      if (bare_key && i + 1 < opts.requests.size()) {
        joined.push_back(r + "=" + opts.requests[i + 1]);
        ++i;
      } else {
        joined.push_back(r);
      }
    }
    opts.requests = std::move(joined);
  }

  // -s STORE: prefix every request (list: STORE is itself a request).
  if (opts.command == "list") {
    if (!opts.store.empty()) opts.requests.insert(opts.requests.begin(), opts.store);
    for (auto& store : opts.requests) store = lower(store);
    if (opts.requests.empty()) throw UsageError("list needs a store");
  } else if (opts.command == "keygen") {
    if (opts.requests.size() != 1) throw UsageError("keygen takes one key NAME (or a path)");
  } else if (opts.command != "discover") {
    if (opts.requests.empty()) throw UsageError("no requests given");
    for (auto& request : opts.requests) {
      if (!opts.store.empty()) request = opts.store + "." + request;
      if (opts.command == "set" && !opts.file.empty()) {
        request = normalise_key(request);
      } else if (opts.command == "set") {
        auto eq = request.find('=');
        if (eq == std::string::npos) throw UsageError("'" + request + "' is not KEY=VALUE");
        request = normalise_key(request.substr(0, eq)) + request.substr(eq);
      } else if (opts.command == "describe" && request.find('.') == std::string::npos) {
        request = lower(request);  // a whole store
      } else {
        request = normalise_key(request);
      }
    }
  }
  return opts;
}

// ---- presentation -------------------------------------------------------------

// Python's repr() of a float: shortest round-trip digits, fixed notation for
// decimal exponents -4..15, else d.ddde+XX.
std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, d, std::chars_format::scientific);
  std::string sci(buffer, result.ptr);
  std::string sign;
  if (sci.front() == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  auto e = sci.find('e');
  int exponent = std::stoi(sci.substr(e + 1));
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  if (exponent >= -4 && exponent < 16) {
    std::string out;
    if (exponent < 0) {
      out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
    } else {
      auto integer_digits = static_cast<std::size_t>(exponent) + 1;
      if (digits.size() <= integer_digits) out = digits + std::string(integer_digits - digits.size(), '0') + ".0";
      else out = digits.substr(0, integer_digits) + "." + digits.substr(integer_digits);
    }
    return sign + out;
  }
  std::string mantissa = digits.substr(0, 1);
  if (digits.size() > 1) mantissa += "." + digits.substr(1);
  char exp_text[16];
  std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return sign + mantissa + exp_text;
}

std::string python_repr_string(const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    if (c == quote || c == '\\') out += '\\';
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out + quote;
}

// str() of the value as Python holds it, so unformatted output reads as the
// reference's: None, True, 1.0, [1, 2], {'a': 1}; strings raw at top level.
std::string python_str(const mktl::Json& v, bool nested = false) {
  if (mktl::json::is_bigint(v)) return mktl::json::bigint_digits(v);
  switch (v.type()) {
    case mktl::Json::value_t::null: return "None";
    case mktl::Json::value_t::boolean: return v.get<bool>() ? "True" : "False";
    case mktl::Json::value_t::number_integer: return std::to_string(v.get<std::int64_t>());
    case mktl::Json::value_t::number_unsigned: return std::to_string(v.get<std::uint64_t>());
    case mktl::Json::value_t::number_float: return python_float(v.get<double>());
    case mktl::Json::value_t::string: return nested ? python_repr_string(v.get<std::string>()) : v.get<std::string>();
    case mktl::Json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + python_str(v[i], true);
      return out + "]";
    }
    case mktl::Json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it, first = false)
        out += (first ? "" : ", ") + python_repr_string(it.key()) + ": " + python_str(it.value(), true);
      return out + "}";
    }
    default: return mktl::json::dump(v);
  }
}

// Wire and display units, as the reference's print_item picks them.
struct Units {
  std::string raw;
  std::string formatted;
};

Units units_of(const mktl::Json& description) {
  auto it = description.find("units");
  if (it == description.end()) return {};
  if (it->is_string()) return {it->get<std::string>(), it->get<std::string>()};
  Units u;
  if (it->is_object()) {
    if (auto raw = it->find(""); raw != it->end() && raw->is_string()) u.raw = raw->get<std::string>();
    auto formatted = it->find("formatted");
    u.formatted = (formatted != it->end() && formatted->is_string()) ? formatted->get<std::string>() : u.raw;
  }
  return u;
}

// HH:MM:SS.mmm in local time, milliseconds truncated (as the reference).
std::string clock_time(double epoch) {
  double whole = std::floor(epoch);
  auto seconds = static_cast<std::time_t>(whole);
  int millis = std::min(999, static_cast<int>((epoch - whole) * 1000.0));
  std::tm tm{};
  localtime_r(&seconds, &tm);
  char text[32];
  std::snprintf(text, sizeof text, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return text;
}

struct BulkStats {
  bool known = false;
  double min = 0, max = 0, mean = 0;
};

template <class T>
BulkStats stats_of(std::span<const std::byte> bytes) {
  BulkStats s;
  std::size_t n = bytes.size() / sizeof(T);
  if (n == 0) return s;
  s.known = true;
  s.min = std::numeric_limits<double>::infinity();
  s.max = -s.min;
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    T element;
    std::memcpy(&element, bytes.data() + i * sizeof(T), sizeof(T));  // the frame need not be aligned
    auto x = static_cast<double>(element);
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    sum += x;
  }
  s.mean = sum / static_cast<double>(n);
  return s;
}

BulkStats bulk_stats(const mktl::Bulk& bulk) {
  const std::string& t = bulk.dtype();
  auto bytes = bulk.bytes();
  if (t == "uint8" || t == "bool") return stats_of<std::uint8_t>(bytes);
  if (t == "int8") return stats_of<std::int8_t>(bytes);
  if (t == "uint16") return stats_of<std::uint16_t>(bytes);
  if (t == "int16") return stats_of<std::int16_t>(bytes);
  if (t == "uint32") return stats_of<std::uint32_t>(bytes);
  if (t == "int32") return stats_of<std::int32_t>(bytes);
  if (t == "uint64") return stats_of<std::uint64_t>(bytes);
  if (t == "int64") return stats_of<std::int64_t>(bytes);
  if (t == "float32") return stats_of<float>(bytes);
  if (t == "float64") return stats_of<double>(bytes);
  return {};
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) out += ",";
  return out + ")";
}

std::string number_text(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", x);
  return text;
}

std::string bulk_summary(const mktl::Bulk& bulk) {
  std::string out = "shape " + shape_text(bulk.shape()) + " dtype " + bulk.dtype();
  BulkStats s = bulk_stats(bulk);
  if (s.known) out += " min " + number_text(s.min) + " max " + number_text(s.max) + " mean " + number_text(s.mean);
  return out;
}

// Everything that decides how a value is shown.
class Presenter {
 public:
  explicit Presenter(const Options& opts) : opts_(opts) {}

  // One human line for a value of `full_key`, as the reference's print_item.
  std::string line(const std::string& full_key, const mktl::Json& description, const mktl::Reading& r,
                   bool timestamp) const {
    std::string out;
    if (timestamp) out = clock_time(r.time) + " " + bare_key(full_key) + ": ";
    else if (!opts_.terse) out = bare_key(full_key) + ": ";
    if (r.bulk) return out + bulk_summary(*r.bulk);
    Units units = opts_.terse ? Units{} : units_of(description);
    std::string raw = python_str(r.value);
    if (opts_.unformatted && opts_.formatted) {
      out += raw + (units.raw.empty() ? "" : " " + units.raw) + " => ";
      return out + with_units(mktl::format_value(description, r.value), units.formatted);
    }
    if (opts_.formatted) return out + with_units(mktl::format_value(description, r.value), units.formatted);
    return out + with_units(raw, units.raw);
  }

  // One JSON line for a value.
  std::string json_line(const std::string& full_key, const mktl::Json& description, const mktl::Reading& r) const {
    mktl::Json out = mktl::Json::object();
    out["key"] = full_key;
    out["time"] = r.time;
    if (r.bulk) {
      out["shape"] = r.bulk->shape();
      out["dtype"] = r.bulk->dtype();
      out["bytes"] = r.bulk->size();
      BulkStats s = bulk_stats(*r.bulk);
      if (s.known) {
        out["min"] = s.min;
        out["max"] = s.max;
        out["mean"] = s.mean;
      }
    } else {
      out["value"] = r.value;
      out["formatted"] = mktl::format_value(description, r.value);
      Units units = units_of(description);
      if (!units.formatted.empty()) out["units"] = units.formatted;
    }
    return mktl::json::dump(out);
  }

  // The value as shown after a successful set.
  std::string set_line(const std::string& full_key, const mktl::Json& description, const mktl::Json& value) const {
    Units units = units_of(description);
    std::string shown = opts_.formatted ? mktl::format_value(description, value) : python_str(value);
    if (opts_.terse) return shown;
    return "Set " + full_key + " to " + with_units(shown, opts_.formatted ? units.formatted : units.raw);
  }

 private:
  static std::string with_units(std::string value, const std::string& units) {
    return units.empty() ? value : value + " " + units;
  }
  const Options& opts_;
};

// stdout and stderr, one whole line at a time (watch callbacks run on a
// client thread), flushed at once so that scripts see lines as they come.
class Output {
 public:
  explicit Output(bool json) : json_(json) {}
  void line(const std::string& text) {
    std::lock_guard lock(mutex_);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  void error(const std::string& what, const Failure& f) {
    std::lock_guard lock(mutex_);
    std::string text = "mk: " + what + ": " + f.type + ": " + f.text + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
    if (json_) {
      std::string j = mktl::json::dump({{"key", what}, {"error", {{"type", f.type}, {"text", f.text}}}}) + "\n";
      std::fwrite(j.data(), 1, j.size(), stdout);
      std::fflush(stdout);
    }
    failed_ = true;
  }
  bool failed() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }
  // A remark on stderr that is not a failure.
  void note(const std::string& text) {
    std::lock_guard lock(mutex_);
    std::string line = "mk: " + text + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }

 private:
  bool json_;
  mutable std::mutex mutex_;
  bool failed_ = false;
};

// ---- reaching stores ----------------------------------------------------------

// Makes each store known to the client once: from --connect addresses when
// given (no discovery then), else through Client::blocks (the catalog cache,
// else discovery). Remembers failures so that a dead store
// costs its timeout once, not once per key.
class Stores {
 public:
  Stores(mktl::Client& client, std::vector<std::string> endpoints)
      : client_(client), endpoints_(std::move(endpoints)) {}

  // {key: description} of a store made known by ensure(), fetched once.
  const mktl::Json& items(const std::string& store) {
    auto it = items_.find(store);
    if (it == items_.end()) it = items_.emplace(store, client_.items(store)).first;
    return it->second;
  }

  std::optional<Failure> ensure(const std::string& store) {
    auto it = known_.find(store);
    if (it != known_.end()) return it->second;
    std::optional<Failure> failure;
    if (endpoints_.empty()) {
      try {
        // blocks() trusts a cached catalog without asking anyone (the GET
        // that follows is the only request) and finds the store otherwise.
        if (client_.blocks(store).empty())
          throw mktl::KeyError("\"no daemon or registry knows the store '" + store + "'\"");
      } catch (const std::exception& e) {
        failure = failure_of(e);
      }
    } else {
      for (const auto& endpoint : endpoints_) {
        try {
          client_.connect(endpoint, store);
          failure.reset();
          break;
        } catch (const std::exception& e) {
          failure = failure_of(e);
          failure->text += " (at " + endpoint + ")";
        }
      }
    }
    known_.emplace(store, failure);
    return failure;
  }

 private:
  mktl::Client& client_;
  std::vector<std::string> endpoints_;
  std::map<std::string, std::optional<Failure>> known_;
  std::map<std::string, mktl::Json> items_;
};

std::string endpoint_of(const std::string& address) {
  std::string endpoint = address.find("://") == std::string::npos ? "tcp://" + address : address;
  auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon < endpoint.find("://") + 3 || colon + 1 == endpoint.size())
    throw UsageError("'" + address + "' is not tcp://HOST:PORT");
  return endpoint;
}

// The stores known at the given registry or daemon addresses, or, without
// addresses, at every registry and daemon that answers a UDP discovery call.
std::vector<std::string> discover_stores(mktl::Client& client, const std::vector<std::string>& endpoints,
                                         Output& out) {
  if (endpoints.empty()) return client.discover();
  std::set<std::string> stores;
  for (const auto& endpoint : endpoints) {
    try {
      for (auto& store : client.connect(endpoint)) stores.insert(store);
    } catch (const std::exception& e) {
      out.error(endpoint, failure_of(e));
    }
  }
  return {stores.begin(), stores.end()};
}

// ---- SET values ---------------------------------------------------------------

// Command-line text as JSON when it parses as JSON (17, 1.5, true, [1, 2]),
// else the text itself; the daemon converts it for the item's type.
mktl::Json raw_value(const std::string& text) {
  try {
    return mktl::json::parse(text);
  } catch (const std::exception&) {
    return mktl::Json(text);
  }
}

mktl::ItemType type_of(const mktl::Json& description) {
  try {
    return mktl::item_type(description);
  } catch (const std::exception&) {
    return mktl::ItemType::typeless;
  }
}

mktl::Json set_value(const Options& opts, const mktl::Json& description, const std::string& text) {
  mktl::ItemType type = type_of(description);
  if (type == mktl::ItemType::bulk) throw mktl::TypeError("mk cannot set bulk items");
  if (type == mktl::ItemType::string) return mktl::Json(text);
  if (opts.formatted_given) return mktl::parse_formatted(description, text);
  if (opts.unformatted_given || type == mktl::ItemType::typeless) return raw_value(text);
  // Default: formatted when the text reads as formatted (as the reference),
  // else as typed, leaving the verdict to the daemon.
  try {
    return mktl::parse_formatted(description, text);
  } catch (const std::exception&) {
    return raw_value(text);
  }
}

// ---- commands -----------------------------------------------------------------

struct Context {
  const Options& opts;
  mktl::Client& client;
  Stores& stores;
  Output& out;
  Presenter presenter;
};

// Where collections.cpp prints (the view's thread for watch).
mk::CollectionOutput collection_output(Context& ctx) {
  mk::CollectionOutput out;
  out.json = ctx.opts.json;
  if (ctx.opts.timestamp) out.stamp = [](double time) { return clock_time(time) + " "; };
  out.line = [&output = ctx.out](const std::string& text) { output.line(text); };
  out.note = [&output = ctx.out](const std::string& text) { output.note(text); };
  return out;
}

// The description of `full_key`, after making its store known; nullopt after
// reporting a failure.
std::optional<mktl::Json> describe_key(Context& ctx, const std::string& full_key) {
  if (auto failure = ctx.stores.ensure(store_of(full_key))) {
    ctx.out.error(full_key, *failure);
    return std::nullopt;
  }
  try {
    const mktl::Json& items = ctx.stores.items(store_of(full_key));
    auto it = items.find(bare_key(full_key));
    if (it != items.end()) return *it;
    // With --connect the addresses given are all there is (no discovery): a
    // key their catalogs lack does not exist, and asking the network would
    // only wait out a discovery call (0.5 s) to say so.
    if (!ctx.opts.connect.empty())
      throw mktl::KeyError::python("store '" + store_of(full_key) + "' has no key '" + bare_key(full_key) + "'");
    // Not in the catalog known so far: the client asks the registries, which
    // know every daemon of the store.
    return ctx.client.description(full_key);
  } catch (const std::exception& e) {
    ctx.out.error(full_key, failure_of(e));
    return std::nullopt;
  }
}

void write_output(const std::string& path, const mktl::Reading& r) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (r.bulk) {
    auto bytes = r.bulk->bytes();
    file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  } else {
    file << mktl::json::dump(r.value) << "\n";
  }
  file.close();
  if (!file) throw mktl::RuntimeError("cannot write " + path + ": " + std::strerror(errno));
}

void command_get(Context& ctx) {
  for (const auto& key : ctx.opts.requests) {
    auto description = describe_key(ctx, key);
    if (!description) continue;
    try {
      if (ctx.opts.snapshot || ctx.opts.since) {
        if (!mk::is_collection(*description))
          throw mktl::TypeError("--snapshot and --since take a collection item; this item is " +
                                description->value("type", std::string("typeless")));
        if (ctx.opts.snapshot) mk::print_snapshot(ctx.client, key, ctx.opts.filter, ctx.opts.timeout, collection_output(ctx));
        else mk::print_since(ctx.client, key, *ctx.opts.since, ctx.opts.timeout, collection_output(ctx));
        continue;
      }
      if (!ctx.opts.ref.empty()) {
        mktl::Json value = ctx.client.call("GET", key, {{"ref", ctx.opts.ref}}, ctx.opts.timeout).value("value", mktl::Json());
        ctx.out.line(ctx.opts.json ? mktl::json::dump({{"key", key}, {"value", value}})
                                   : key + ": " + mk::committed_line(value));
        continue;
      }
      mktl::Reading r = ctx.client.get(key, ctx.opts.refresh, ctx.opts.timeout);
      if (!ctx.opts.output.empty()) write_output(ctx.opts.output, r);
      ctx.out.line(ctx.opts.json ? ctx.presenter.json_line(key, *description, r)
                                 : ctx.presenter.line(key, *description, r, ctx.opts.timestamp));
    } catch (const std::exception& e) {
      ctx.out.error(key, failure_of(e));
    }
  }
}

void print_set(Context& ctx, const std::string& key, const mktl::Json& description, const mktl::Json& value) {
  if (ctx.opts.json)
    ctx.out.line(mktl::json::dump(
        {{"key", key}, {"value", value}, {"formatted", mktl::format_value(description, value)}}));
  else
    ctx.out.line(ctx.presenter.set_line(key, description, value));
}

// One transaction on a record item; prints its result (ROW > 0: the row of a file).
void transact(Context& ctx, const std::string& key, const mktl::Json& data, std::size_t row) {
  std::string what = row ? key + " row " + std::to_string(row) : key;
  try {
    mktl::Json payload = {{"value", data}};
    if (!ctx.opts.ref.empty()) payload["ref"] = ctx.opts.ref;
    mktl::Json value = ctx.client.call("SET", key, payload, ctx.opts.timeout).value("value", mktl::Json());
    if (ctx.opts.json) {
      mktl::Json line = {{"key", key}, {"value", value}};
      if (row) line["row"] = row;
      ctx.out.line(mktl::json::dump(line));
    } else {
      ctx.out.line(what + ": " + mk::committed_line(value));
    }
  } catch (const std::exception& e) {
    ctx.out.error(what, failure_of(e));
  }
}

// set STORE.KEY --file FILE: every row is tried and reported, in order.
void command_set_file(Context& ctx) {
  const std::string& key = ctx.opts.requests.front();
  auto description = describe_key(ctx, key);
  if (!description) return;
  if (type_of(*description) != mktl::ItemType::record) {
    ctx.out.error(key, {"TypeError", "--file takes a record item (a transaction service); this item is " +
                                         std::string(mktl::item_type_name(type_of(*description)))});
    return;
  }
  std::vector<mktl::Json> rows;
  try {
    rows = mk::read_rows(ctx.opts.file, *description);
  } catch (const std::exception& e) {
    ctx.out.error(key, failure_of(e));
    return;
  }
  for (std::size_t i = 0; i < rows.size(); ++i) transact(ctx, key, rows[i], i + 1);
}

void command_set(Context& ctx) {
  if (!ctx.opts.file.empty()) return command_set_file(ctx);
  struct Pending {
    std::string key;
    mktl::Json description;
    mktl::Json value;
    mktl::Future<void> done;
  };
  std::vector<Pending> pending;
  for (const auto& request : ctx.opts.requests) {
    auto eq = request.find('=');
    std::string key = request.substr(0, eq);
    std::string text = request.substr(eq + 1);
    auto description = describe_key(ctx, key);
    if (!description) {
      if (ctx.opts.serial) return;
      continue;
    }
    try {
      mktl::Json value = set_value(ctx.opts, *description, text);
      if (type_of(*description) == mktl::ItemType::record && !ctx.opts.no_wait) {
        transact(ctx, key, value, 0);  // answered with its ref and rows
        continue;
      }
      if (ctx.opts.no_wait) {
        ctx.client.set_nowait(key, mktl::Reading(value));
      } else if (ctx.opts.serial || ctx.opts.requests.size() == 1) {
        // One SET alone gains nothing from going asynchronously, and a
        // blocking one goes straight to a cached address (sent again if
        // that is stale) where an asynchronous one checks the cache first.
        ctx.client.set(key, mktl::Reading(value), ctx.opts.timeout);
        print_set(ctx, key, *description, value);
      } else {
        auto done = ctx.client.set_async(key, mktl::Reading(value));
        pending.push_back({key, *description, std::move(value), std::move(done)});
      }
    } catch (const std::exception& e) {
      ctx.out.error(key, failure_of(e));
      if (ctx.opts.serial) return;  // as the reference: stop at the first failure
    }
  }
  // Replies are reported in the order the requests were given.
  double limit = ctx.opts.timeout.value_or(ctx.client.options().timeout);
  for (auto& p : pending) {
    try {
      // The client times out by itself; this only bounds a lost future.
      if (p.done.wait_for(std::chrono::duration<double>(limit + 5.0)) != std::future_status::ready)
        throw mktl::TimeoutError("no response within " + python_float(limit) + " seconds");
      p.done.get();
      print_set(ctx, p.key, p.description, p.value);
    } catch (const std::exception& e) {
      ctx.out.error(p.key, failure_of(e));
    }
  }
}

int command_watch(Context& ctx, const sigset_t& stop_signals) {
  std::vector<mktl::Subscription> subscriptions;
  std::vector<mktl::CollectionView> views;  // collection items: snapshot, then changes
  std::vector<std::pair<std::string, mktl::Json>> watched;
  for (const auto& key : ctx.opts.requests) {
    auto description = describe_key(ctx, key);
    if (!description) continue;
    try {
      if (mk::is_collection(*description)) {
        views.push_back(mk::watch(ctx.client, key, {ctx.opts.filter, ctx.opts.row}, collection_output(ctx)));
        continue;
      }
      if (!ctx.opts.filter.empty() || !ctx.opts.row.empty())
        throw mktl::TypeError("--filter and --row take a collection item; this item is " +
                              description->value("type", std::string("typeless")));
      // The callback may run until the subscription is destroyed, which
      // happens before ctx goes away.
      auto print = [&ctx, key, description = *description](const std::string&, const mktl::Reading& r) {
        ctx.out.line(ctx.opts.json ? ctx.presenter.json_line(key, description, r)
                                   : ctx.presenter.line(key, description, r, ctx.opts.timestamp));
      };
      subscriptions.push_back(ctx.client.subscribe(key, print));
      watched.emplace_back(key, *description);
    } catch (const std::exception& e) {
      ctx.out.error(key, failure_of(e));
    }
  }
  if (subscriptions.empty() && views.empty()) return kExitFailed;
  // Prime: show the current values first (subscribed before, so nothing is
  // missed between the GET and the first broadcast).
  for (const auto& [key, description] : watched) {
    try {
      mktl::Reading r = ctx.client.get(key, false, ctx.opts.timeout);
      ctx.out.line(ctx.opts.json ? ctx.presenter.json_line(key, description, r)
                                 : ctx.presenter.line(key, description, r, ctx.opts.timestamp));
    } catch (const std::exception& e) {
      ctx.out.error(key, failure_of(e));
    }
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  subscriptions.clear();
  views.clear();
  return ctx.out.failed() ? kExitFailed : kExitOk;
}

void command_list(Context& ctx) {
  for (const auto& store : ctx.opts.requests) {
    if (auto failure = ctx.stores.ensure(store)) {
      ctx.out.error(store, *failure);
      continue;
    }
    mktl::Json items;
    try {
      items = ctx.stores.items(store);
    } catch (const std::exception& e) {
      ctx.out.error(store, failure_of(e));
      continue;
    }
    std::vector<std::string> keys;
    std::size_t width = 0;
    for (auto it = items.begin(); it != items.end(); ++it) {
      keys.push_back(it.key());
      width = std::max(width, it.key().size());
    }
    std::sort(keys.begin(), keys.end());
    width += store.size() + 1 + 2;  // "store." prefix, then two spaces
    for (const auto& key : keys) {
      const mktl::Json& d = items[key];
      bool gettable = d.value("gettable", true);
      bool settable = d.value("settable", true);
      std::string full = store + "." + key;
      if (ctx.opts.json) {
        mktl::Json line{{"key", full}, {"gettable", gettable}, {"settable", settable}};
        if (d.contains("type")) line["type"] = d["type"];
        ctx.out.line(mktl::json::dump(line));
        continue;
      }
      // Columns as the reference: key, type (width of "enumerated"), access.
      std::string line = full + std::string(width - full.size(), ' ');
      if (auto t = d.find("type"); t != d.end() && t->is_string()) {
        std::string type = t->get<std::string>();
        line += " " + type + std::string(type.size() < 11 ? 11 - type.size() : 0, ' ');
      }
      const char* access = gettable && settable ? "rw" : gettable ? "r" : settable ? " w" : nullptr;
      if (access) line += std::string(" ") + access;
      ctx.out.line(line);
    }
  }
}

void command_describe(Context& ctx) {
  mktl::Json all = mktl::Json::object();
  for (const auto& request : ctx.opts.requests) {
    mktl::Json found = mktl::Json::object();
    if (request.find('.') == std::string::npos) {
      if (auto failure = ctx.stores.ensure(request)) {
        ctx.out.error(request, *failure);
        continue;
      }
      try {
        const mktl::Json& items = ctx.stores.items(request);
        for (auto it = items.begin(); it != items.end(); ++it) found[request + "." + it.key()] = it.value();
      } catch (const std::exception& e) {
        ctx.out.error(request, failure_of(e));
        continue;
      }
    } else if (auto description = describe_key(ctx, request)) {
      found[request] = *description;
    }
    for (auto it = found.begin(); it != found.end(); ++it) {
      if (ctx.opts.json) ctx.out.line(mktl::json::dump({{"key", it.key()}, {"description", it.value()}}));
      else all[it.key()] = it.value();
    }
  }
  if (!ctx.opts.json && !all.empty())
    ctx.out.line(all.dump(4, ' ', false, mktl::Json::error_handler_t::replace));
}

void command_discover(Context& ctx) {
  std::vector<std::string> endpoints;
  for (const auto& address : ctx.opts.requests) endpoints.push_back(endpoint_of(address));
  for (const auto& address : ctx.opts.connect) endpoints.push_back(endpoint_of(address));
  std::vector<std::string> stores;
  try {
    stores = discover_stores(ctx.client, endpoints, ctx.out);
  } catch (const std::exception& e) {
    ctx.out.error("discover", failure_of(e));
    return;
  }
  if (ctx.opts.json) {
    ctx.out.line(mktl::json::dump({{"stores", stores}}));
    return;
  }
  std::string names;
  for (const auto& store : stores) names += (names.empty() ? "" : ", ") + store;
  ctx.out.line(std::to_string(stores.size()) + (stores.size() == 1 ? " store" : " stores") +
               " discovered: " + names);
}

// keygen NAME: a fresh CURVE key pair, written where NAME says.
int command_keygen(const Options& opts) {
  const mktl::KeyPair pair = mktl::KeyPair::generate();
  const std::string secret = pair.save(opts.requests.front(), {}, opts.force);
  std::string public_file = secret;
  if (public_file.size() > 4 && public_file.compare(public_file.size() - 4, 4, ".key") == 0)
    public_file.resize(public_file.size() - 4);
  public_file += ".pub";
  if (opts.json) {
    std::cout << mktl::json::dump({{"secret_key_file", secret}, {"public_key_file", public_file},
                                   {"public_key", pair.public_key}})
              << std::endl;
  } else {
    std::cout << "secret key file: " << secret << " (mode 0600: keep it private)\n"
              << "public key file: " << public_file << "\n"
              << "public key: " << pair.public_key << std::endl;
  }
  return kExitOk;
}

int run(const Options& opts) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // watch ends on a signal: block them before the client starts its threads,
  // so that only sigwait() in this thread receives them.
  if (opts.command == "watch") pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (opts.command == "keygen") return command_keygen(opts);
  mktl::ClientOptions client_options = mktl::ClientOptions::from_env();
  if (opts.timeout) client_options.timeout = *opts.timeout;
  if (!opts.key.empty()) client_options.key = opts.key;
  if (!opts.server_keys.empty()) client_options.replace_server_keys(opts.server_keys);
  mktl::Client client(client_options);
  Stores stores(client, opts.connect);
  Output out(opts.json);
  Context ctx{opts, client, stores, out, Presenter(opts)};

  if (opts.command == "get") command_get(ctx);
  else if (opts.command == "set") command_set(ctx);
  else if (opts.command == "watch") return command_watch(ctx, stop_signals);
  else if (opts.command == "list") command_list(ctx);
  else if (opts.command == "describe") command_describe(ctx);
  else if (opts.command == "discover") command_discover(ctx);
  return out.failed() ? kExitFailed : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Options> opts;
  try {
    opts = parse_command_line(argc, argv);
    if (!opts) return kExitOk;
    // discover's addresses are checked before anything is sent.
    if (opts->command == "discover")
      for (const auto& address : opts->requests) endpoint_of(address);
    for (auto& address : opts->connect) address = endpoint_of(address);
  } catch (const UsageError& e) {
    std::cerr << "mk: " << e.what() << "\n" << kUsage << "Try 'mk --help' for more information.\n";
    return kExitUsage;
  }
  mktl::setup_logging(opts->verbosity);
  try {
    return run(*opts);
  } catch (const std::exception& e) {
    Failure f = failure_of(e);
    std::cerr << "mk: " << f.type << ": " << f.text << "\n";
    return kExitFailed;
  }
}
