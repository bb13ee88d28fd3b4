// mkweb_bench: many browsers on one busy item, through mkweb.
//
//   mkweb_bench [--mkweb PATH] [--clients 100] [--rate 1000] [--seconds 10]
//               [--warmup 1] [--markdown FILE]
//
// An in-process daemon (store "wbench", no discovery, loopback) publishes its
// item "stamp" at --rate per second; each value is the steady-clock time of
// its publish call in microseconds. mkweb (started here, --listen
// 127.0.0.1:0 --connect to that daemon) has --clients WebSocket clients
// (Boost.Beast, one I/O thread) subscribed to wbench.stamp. For the values
// published in the measured window (after --warmup seconds) it reports:
//   - delivered rate: value messages the clients received, per client and in
//     all, per second of the window; the values a client did not get
//     (coalesced away while it was behind), and how many of those mkweb's
//     "skipped" counts failed to report (lost without a word: should be 0);
//   - latency: receive time minus the stamp (publish -> markd's PUB ->
//     mkweb's subscription -> fan-out -> WebSocket -> client), p50/p99/max
//     over every delivered message;
//   - mkweb's CPU over the window (utime+stime from /proc/PID/stat, in % of
//     one core) and its RSS (VmRSS at the end, VmHWM peak);
//   - for comparison, an mktl::Client of this process subscribed straight to
//     the daemon (delivered share, latency), the daemon's broadcast drops, and
//     the CPU of the WebSocket clients' own I/O thread.
// Exit 0 when every client got values throughout, in order, each value it
// missed counted in "skipped"; 1 otherwise.
#include "bench_util.hpp"

#include <mktl/mktl.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using bench::Clock;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

// The number after `"name":` in a JSON text, or nullopt. The gateway's value
// messages are flat objects; a full JSON parse of 100,000 messages a second
// would make this client the bottleneck on a 2-core machine.
std::optional<std::int64_t> number_field(std::string_view text, std::string_view name) {
  std::string key = "\"" + std::string(name) + "\":";
  auto pos = text.find(key);
  if (pos == std::string_view::npos) return std::nullopt;
  pos += key.size();
  while (pos < text.size() && text[pos] == ' ') ++pos;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data() + pos, text.data() + text.size(), v);
  if (ec != std::errc()) return std::nullopt;
  // "123.0": a double with a zero fraction is still the stamp.
  (void)end;
  return v;
}

// One value message as a client got it.
struct Received {
  std::int64_t stamp;     // the value: when it was published (us)
  std::int64_t at;        // when this client read it (us)
  std::int64_t skipped;   // values of the item coalesced away before it
};

// What one client saw; the clients' I/O thread writes it, main reads it on
// that thread (all_have) or after the thread has ended.
struct ClientStats {
  std::vector<Received> got;
  std::uint64_t errors = 0;  // error messages or unreadable ones
  std::int64_t last_stamp = -1;
  std::string failure;
};

class WsClient : public std::enable_shared_from_this<WsClient> {
 public:
  WsClient(asio::io_context& io, ClientStats& stats, std::string item)
      : ws_(io), stats_(stats), item_(std::move(item)) {}

  void start(const tcp::endpoint& endpoint, std::string host) {
    host_ = std::move(host);
    beast::get_lowest_layer(ws_).async_connect(endpoint, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->failed("connect", ec);
      beast::get_lowest_layer(self->ws_).expires_never();
      self->ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
      self->ws_.async_handshake(self->host_, "/ws", [self](beast::error_code ec2) {
        if (ec2) return self->failed("handshake", ec2);
        self->ws_.text(true);
        self->request_ = R"({"op":"subscribe","items":[")" + self->item_ + R"("]})";
        self->ws_.async_write(asio::buffer(self->request_), [self](beast::error_code ec3, std::size_t) {
          if (ec3) return self->failed("subscribe", ec3);
          self->read();
        });
      });
    });
  }

  void close() {
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      self->closing_ = true;
      self->ws_.async_close(websocket::close_code::normal, [self](beast::error_code) {});
    });
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        if (!self->closing_) self->failed("read", ec);
        return;
      }
      self->on_message();
      self->buffer_.consume(self->buffer_.size());
      self->read();
    });
  }

  void on_message() {
    std::int64_t received = now_us();
    auto data = buffer_.data();
    std::string_view text(static_cast<const char*>(data.data()), data.size());
    if (text.find(R"("type":"value")") == std::string_view::npos || text.find(item_) == std::string_view::npos) {
      ++stats_.errors;
      if (stats_.failure.empty()) stats_.failure = std::string(text.substr(0, 200));
      return;
    }
    auto stamp = number_field(text, "value");
    if (!stamp) {
      ++stats_.errors;
      return;
    }
    stats_.last_stamp = *stamp;
    stats_.got.push_back({*stamp, received, number_field(text, "skipped").value_or(0)});
  }

  void failed(const char* what, beast::error_code ec) {
    if (stats_.failure.empty()) stats_.failure = std::string(what) + ": " + ec.message();
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  ClientStats& stats_;
  std::string item_;
  std::string host_;
  std::string request_;
  bool closing_ = false;
};

// utime + stime of a process (or, with `tid`, of one of its threads), in seconds.
double cpu_seconds(pid_t pid, pid_t tid = 0) {
  std::ifstream in("/proc/" + std::to_string(pid) + (tid ? "/task/" + std::to_string(tid) : std::string()) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close_paren = all.rfind(')');  // the command name may hold spaces
  if (close_paren == std::string::npos) return -1;
  std::istringstream fields(all.substr(close_paren + 2));
  std::string f;
  double ticks = 0;
  // After ")": state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && fields >> f; ++i)
    if (i == 14 || i == 15) ticks += std::stod(f);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string self_dir() {
  std::string exe(4096, '\0');
  ssize_t n = readlink("/proc/self/exe", exe.data(), exe.size());
  if (n <= 0) return ".";
  exe.resize(static_cast<std::size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

int usage(const char* message) {
  std::cerr << "mkweb_bench: " << message << "\n"
            << "usage: mkweb_bench [--mkweb PATH] [--clients N] [--rate HZ] [--seconds S] [--warmup S]"
               " [--markdown FILE]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mkweb = self_dir() + "/mkweb";
  std::string markdown;
  int clients = 100;
  double rate = 1000, seconds = 10, warmup = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--mkweb") mkweb = value();
      else if (a == "--clients") clients = std::stoi(value());
      else if (a == "--rate") rate = std::stod(value());
      else if (a == "--seconds") seconds = std::stod(value());
      else if (a == "--warmup") warmup = std::stod(value());
      else if (a == "--markdown") markdown = value();
      else return usage(("unknown option " + a).c_str());
    } catch (const std::exception& e) {
      return usage(e.what());
    }
  }
  if (clients < 1 || clients > 10000 || rate <= 0 || rate > 100000 || seconds <= 0 || warmup < 0)
    return usage("out of range: 1 <= clients <= 10000, 0 < rate <= 100000, seconds > 0, warmup >= 0");

  // The daemon: one numeric item whose values are publish times.
  mktl::DaemonOptions options;
  options.rep_endpoint = "tcp://127.0.0.1:0";
  options.pub_endpoint = "tcp://127.0.0.1:0";
  options.hostname = "127.0.0.1";
  options.persistence = false;
  options.discovery = false;
  mktl::Json items = {{"stamp", {{"type", "numeric"}, {"description", "publish time, steady clock, microseconds"},
                                 {"settable", false}}}};
  mktl::Daemon daemon("wbench", "wbench1", items, options);
  daemon.start();
  mktl::Item& stamp = daemon.item("stamp");
  stamp.publish(mktl::Json(now_us()));

  // mkweb, pointed straight at the daemon.
  bench::Child gateway = bench::Child::spawn({mkweb, "--listen", "127.0.0.1:0", "--connect",
                                              "tcp://127.0.0.1:" + std::to_string(daemon.rep_port())},
                                             false);
  auto ready = gateway.wait_for("mkweb: listening on http://", 20);
  if (!ready) {
    std::cerr << "mkweb_bench: " << mkweb << " did not say it was listening within 20 s\n";
    return 1;
  }
  // "mkweb: listening on http://127.0.0.1:PORT/"
  std::string hostport = ready->substr(std::string("mkweb: listening on http://").size());
  hostport = hostport.substr(0, hostport.find('/'));
  auto colon = hostport.rfind(':');
  tcp::endpoint endpoint(asio::ip::make_address(hostport.substr(0, colon)),
                         static_cast<unsigned short>(std::stoi(hostport.substr(colon + 1))));

  // The control: an mktl::Client of this process subscribed straight to the
  // daemon, to tell what mkweb adds from what the daemon and the machine do.
  mktl::ClientOptions direct_options = mktl::ClientOptions::from_env();
  direct_options.use_cache = false;
  mktl::Client direct(direct_options);
  direct.connect("tcp://127.0.0.1:" + std::to_string(daemon.rep_port()));
  std::vector<Received> direct_got;  // the subscription's callbacks only (never concurrent for one key)
  direct_got.reserve(static_cast<std::size_t>(rate * (warmup + seconds + 1) * 1.1));
  mktl::Subscription direct_sub = direct.subscribe("wbench.stamp", [&](const std::string&, const mktl::Reading& r) {
    if (r.value.is_number_integer()) direct_got.push_back({r.value.get<std::int64_t>(), now_us(), 0});
  });

  // The clients: one I/O thread for all.
  asio::io_context io;
  std::vector<ClientStats> stats(static_cast<std::size_t>(clients));
  for (auto& s : stats) s.got.reserve(static_cast<std::size_t>(rate * (warmup + seconds + 1) * 1.1));
  std::vector<std::shared_ptr<WsClient>> sessions;
  for (auto& s : stats) {
    sessions.push_back(std::make_shared<WsClient>(io, s, "wbench.stamp"));
    sessions.back()->start(endpoint, hostport);
  }
  auto work = asio::make_work_guard(io);
  std::atomic<pid_t> io_tid{0};
  std::thread io_thread([&] {
    io_tid = static_cast<pid_t>(::gettid());
    io.run();
  });

  // Wait (bounded) until every client has its first value: all subscribed.
  // The counters are the I/O thread's; reading them here is a benign race
  // on plain integers, so read them on that thread.
  auto all_have = [&](auto predicate) {
    std::promise<bool> p;
    auto f = p.get_future();
    asio::post(io, [&] {
      bool all = true;
      for (auto& s : stats) all = all && predicate(s);
      p.set_value(all);
    });
    return f.get();
  };
  auto wait_until = [&](double timeout, auto predicate) {
    auto start = Clock::now();
    while (bench::seconds_since(start) < timeout) {
      if (all_have(predicate)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  if (!wait_until(20, [](const ClientStats& s) { return !s.got.empty() || !s.failure.empty(); }) ||
      !all_have([](const ClientStats& s) { return s.failure.empty(); })) {
    std::string why;
    for (auto& s : stats) if (!s.failure.empty()) { why = s.failure; break; }
    std::cerr << "mkweb_bench: not every client got its first value within 20 s" << (why.empty() ? "" : ": ") << why
              << "\n";
    work.reset();
    io.stop();
    io_thread.join();
    return 1;
  }

  // The publisher: at `rate`, on the clock (late ticks are not made up in a
  // burst: it goes on from now).
  std::atomic<bool> stop{false};
  std::vector<std::int64_t> sent;  // the publisher's stamps, read by main once it has ended
  sent.reserve(static_cast<std::size_t>(rate * (warmup + seconds + 1) * 1.1));
  auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
  std::thread publisher([&] {
    auto next = Clock::now();
    std::int64_t previous = 0;
    while (!stop.load()) {
      // Distinct stamps: a daemon does not broadcast a value equal to the
      // item's current one, and catching up after a late tick can put two
      // publishes in the same microsecond.
      std::int64_t t = std::max(now_us(), previous + 1);
      previous = t;
      stamp.publish(mktl::Json(t));
      sent.push_back(t);
      next += period;
      auto now = Clock::now();
      if (next < now - 100 * period) next = now;
      std::this_thread::sleep_until(next);
    }
  });

  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  double cpu0 = cpu_seconds(gateway.pid());
  double client_cpu0 = cpu_seconds(::getpid(), io_tid.load());
  auto t0 = Clock::now();
  const std::int64_t window_begin = now_us();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const std::int64_t window_end = now_us();
  double wall = bench::seconds_since(t0);
  double cpu1 = cpu_seconds(gateway.pid());
  double client_cpu1 = cpu_seconds(::getpid(), io_tid.load());
  long rss_kb = bench::proc_status(gateway.pid(), "VmRSS");
  long hwm_kb = bench::proc_status(gateway.pid(), "VmHWM");
  // A little past the window so that its last values count; then stop.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop.store(true);
  publisher.join();
  std::int64_t last = now_us();
  stamp.publish(mktl::Json(last));
  // Every client gets the final value (bounded): nobody is left behind.
  bool drained = wait_until(10, [last](const ClientStats& s) { return s.last_stamp >= last; });
  direct_sub.cancel();
  mktl::Json daemon_drops = daemon.item("_wbench1drops").current().value;

  for (auto& s : sessions) s->close();
  work.reset();
  io_thread.join();
  gateway.terminate();
  daemon.stop();

  // ---- figures: the values published in the window, and what each client got of them ----
  auto in_window = [&](std::int64_t stamp) { return stamp >= window_begin && stamp <= window_end; };
  std::uint64_t published = static_cast<std::uint64_t>(std::count_if(sent.begin(), sent.end(), in_window));
  std::vector<double> latency, per_client;
  std::uint64_t delivered = 0, missing = 0, unreported = 0, disorder = 0, errors = 0;
  std::string failure;
  // The stamps are strictly increasing: the values published strictly between
  // two messages a client got are the ones it missed there, and mkweb's
  // "skipped" in the second message should count them all.
  auto sent_between = [&](std::int64_t after, std::int64_t before, bool window_only) {
    auto lo = std::upper_bound(sent.begin(), sent.end(), after);
    auto hi = std::lower_bound(sent.begin(), sent.end(), before);
    if (window_only) {
      lo = std::max(lo, std::lower_bound(sent.begin(), sent.end(), window_begin));
      hi = std::min(hi, std::upper_bound(sent.begin(), sent.end(), window_end));
    }
    return hi > lo ? static_cast<std::uint64_t>(hi - lo) : 0;
  };
  for (auto& s : stats) {
    std::uint64_t mine = 0;
    std::int64_t previous = INT64_MIN;
    for (const auto& r : s.got) {
      if (r.stamp <= previous) {
        ++disorder;  // a value older than one already shown
        continue;
      }
      if (previous != INT64_MIN && r.stamp > window_begin && previous < window_end) {
        std::uint64_t gap = sent_between(previous, r.stamp, false);
        missing += sent_between(previous, r.stamp, true);
        unreported += gap - std::min(gap, static_cast<std::uint64_t>(r.skipped));
      }
      previous = r.stamp;
      if (!in_window(r.stamp)) continue;
      ++mine;
      latency.push_back(static_cast<double>(r.at - r.stamp));
    }
    per_client.push_back(static_cast<double>(mine) / wall);
    delivered += mine;
    errors += s.errors;
    if (failure.empty() && !s.failure.empty()) failure = s.failure;
  }
  double published_rate = static_cast<double>(published) / wall;
  std::vector<double> direct_latency;
  for (const auto& r : direct_got)
    if (in_window(r.stamp)) direct_latency.push_back(static_cast<double>(r.at - r.stamp));
  double cpu_pct = 100 * (cpu1 - cpu0) / wall;
  auto ms = [](double us) { return us / 1000; };
  std::ostringstream table;
  table.setf(std::ios::fixed);
  table.precision(2);
  table << "| measure | value |\n|---|---|\n"
        << "| clients x item rate | " << clients << " x " << rate << " Hz for " << wall << " s |\n"
        << "| published (daemon) | " << published_rate << " /s |\n"
        << "| delivered, all clients | " << static_cast<double>(delivered) / wall << " /s ("
        << 100.0 * static_cast<double>(delivered) /
               std::max(1.0, static_cast<double>(published) * clients)
        << " % of published x clients) |\n"
        << "| delivered per client, min / median / max | " << bench::min_of(per_client) << " / "
        << bench::median(per_client) << " / " << bench::max_of(per_client) << " /s |\n"
        << "| not delivered (coalesced away), all clients | " << missing << " ("
        << 100.0 * static_cast<double>(missing) / std::max(1.0, static_cast<double>(published) * clients)
        << " %); of them not counted in \"skipped\": " << unreported << " |\n"
        << "| latency p50 / p99 / max | " << ms(bench::percentile(latency, 0.5)) << " / "
        << ms(bench::percentile(latency, 0.99)) << " / " << ms(bench::max_of(latency)) << " ms |\n"
        << "| control: mktl::Client subscribed to the daemon, delivered | "
        << 100.0 * static_cast<double>(direct_latency.size()) / std::max<double>(1, static_cast<double>(published))
        << " %, latency p50 / p99 / max " << ms(bench::percentile(direct_latency, 0.5)) << " / "
        << ms(bench::percentile(direct_latency, 0.99)) << " / " << ms(bench::max_of(direct_latency)) << " ms |\n"
        << "| daemon's broadcasts dropped (_wbench1drops) | " << daemon_drops.dump() << " |\n"
        << "| mkweb CPU | " << cpu_pct << " % of one core |\n"
        << "| this benchmark's WebSocket clients (their one I/O thread) CPU | "
        << 100 * (client_cpu1 - client_cpu0) / wall << " % of one core |\n"
        << "| mkweb RSS, end / peak | " << rss_kb / 1024.0 << " / " << hwm_kb / 1024.0 << " MiB |\n";
  std::cout << table.str();
  if (disorder) std::cout << "values received out of order: " << disorder << "\n";
  if (errors) std::cout << "unexpected messages: " << errors << (failure.empty() ? "" : " (first: " + failure + ")") << "\n";
  if (!drained) std::cout << "not every client received the last value within 10 s\n";
  if (!markdown.empty()) std::ofstream(markdown) << table.str();
  bool ok = drained && errors == 0 && disorder == 0 && unreported == 0 && failure.empty() &&
            bench::min_of(per_client) > 0;
  return ok ? 0 : 1;
}
