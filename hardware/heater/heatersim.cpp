// heatersim: a simulated temperature controller on TCP, the "hardware" that
// the heater example daemon talks to.
//
// Line protocol (one command per line, one answer line per command):
//   TEMP?                 -> TEMP 23.41
//   SETP? | SETP <degC>   -> SETP 45.0 | OK
//   POWER? | POWER ON|OFF -> POWER ON | OK
//   MODE? | MODE MANUAL|AUTO|STANDBY -> MODE AUTO | OK
//   STATUS?               -> STATUS heating | cooling | idle | at setpoint
//   anything wrong        -> ERR <text>
//
// Physics: a first-order thermal model integrated on wall-clock time whenever
// the state is touched. While regulating (power on and mode not STANDBY) the
// temperature relaxes toward the setpoint, otherwise toward ambient.
#include "sim_server.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

namespace {

constexpr double kSetpointMin = -50.0;
constexpr double kSetpointMax = 150.0;
// Within this distance of the setpoint the controller reports "at setpoint".
constexpr double kSettledBand = 0.5;

struct Config {
  sim::ServerOptions server;
  double time_constant = 8.0;
  double ambient = 20.0;
  double noise = 0.02;
  unsigned seed = 0;
  bool seeded = false;
};

class Heater {
 public:
  explicit Heater(const Config& cfg)
      : tau_(cfg.time_constant), ambient_(cfg.ambient), noise_sigma_(cfg.noise), temperature_(cfg.ambient),
        last_(Clock::now()), rng_(cfg.seeded ? cfg.seed : std::random_device{}()) {}

  std::string handle(const std::string& line) {
    advance();
    auto words = sim::split_words(line);
    std::string cmd = sim::upper(words[0]);
    if (cmd == "TEMP?" && words.size() == 1) return "TEMP " + fixed(measured(), 2) + "\n";
    if (cmd == "SETP?" && words.size() == 1) return "SETP " + sim::format_number(setpoint_) + "\n";
    if (cmd == "SETP") {
      if (words.size() != 2) return "ERR usage: SETP <degC>\n";
      double v;
      if (!sim::parse_number(words[1], v)) return "ERR bad number '" + words[1] + "'\n";
      if (v < kSetpointMin || v > kSetpointMax)
        return "ERR setpoint " + words[1] + " out of range -50..150\n";
      setpoint_ = v;
      return "OK\n";
    }
    if (cmd == "POWER?" && words.size() == 1) return std::string("POWER ") + (power_ ? "ON" : "OFF") + "\n";
    if (cmd == "POWER") {
      std::string arg = words.size() == 2 ? sim::upper(words[1]) : "";
      if (arg == "ON" || arg == "1") power_ = true;
      else if (arg == "OFF" || arg == "0") power_ = false;
      else return "ERR usage: POWER ON|OFF\n";
      return "OK\n";
    }
    if (cmd == "MODE?" && words.size() == 1) return "MODE " + mode_ + "\n";
    if (cmd == "MODE") {
      std::string arg = words.size() == 2 ? sim::upper(words[1]) : "";
      if (arg != "MANUAL" && arg != "AUTO" && arg != "STANDBY") return "ERR usage: MODE MANUAL|AUTO|STANDBY\n";
      mode_ = arg;
      return "OK\n";
    }
    if (cmd == "STATUS?" && words.size() == 1) return "STATUS " + status() + "\n";
    return "ERR unknown command '" + line + "'\n";
  }

 private:
  using Clock = std::chrono::steady_clock;

  bool regulating() const { return power_ && mode_ != "STANDBY"; }

  // Exact solution of dT/dt = (target - T)/tau over the elapsed time, so the
  // result does not depend on how often anyone asks.
  void advance() {
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    double target = regulating() ? setpoint_ : ambient_;
    temperature_ = target + (temperature_ - target) * std::exp(-dt / tau_);
  }

  double measured() { return temperature_ + noise_(rng_) * noise_sigma_; }

  std::string status() const {
    if (!regulating()) return "idle";
    double diff = setpoint_ - temperature_;
    if (std::fabs(diff) < kSettledBand) return "at setpoint";
    return diff > 0 ? "heating" : "cooling";
  }

  static std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }

  double tau_;
  double ambient_;
  double noise_sigma_;
  double temperature_;
  double setpoint_ = 20.0;
  bool power_ = false;
  std::string mode_ = "AUTO";
  Clock::time_point last_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> noise_{0.0, 1.0};
};

void usage(std::ostream& out) {
  out << "Usage: heatersim [options]\n"
         "Simulated temperature controller speaking a line protocol on TCP.\n\n"
         "Options:\n"
         "  --host ADDR            address to listen on (default 127.0.0.1)\n"
         "  --port N               TCP port; 0 picks a free one (default 0)\n"
         "  --time-constant SEC    thermal time constant (default 8)\n"
         "  --ambient DEGC         ambient temperature (default 20)\n"
         "  --noise DEGC           standard deviation of the reading noise (default 0.02)\n"
         "  --seed N               seed of the noise generator (default: random)\n"
         "  -h, --help             show this help\n\n"
         "The first line on stdout is 'PORT <n>', the port listened on.\n"
         "Commands: TEMP?  SETP?  SETP <degC>  POWER?  POWER ON|OFF  MODE?\n"
         "          MODE MANUAL|AUTO|STANDBY  STATUS?\n\n"
         "Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime error, 2 on bad usage.\n";
}

bool parse_args(int argc, char** argv, Config& cfg) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(std::cout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::cerr << "heatersim: unknown option or missing value: " << a << "\n";
      return false;
    }
    std::string v = argv[++i];
    double num = 0;
    bool numeric = sim::parse_number(v, num);
    if (a == "--host") cfg.server.host = v;
    else if (a == "--port" && numeric && num >= 0 && num <= 65535) cfg.server.port = static_cast<int>(num);
    else if (a == "--time-constant" && numeric && num > 0) cfg.time_constant = num;
    else if (a == "--ambient" && numeric) cfg.ambient = num;
    else if (a == "--noise" && numeric && num >= 0) cfg.noise = num;
    else if (a == "--seed" && numeric && num >= 0) {
      cfg.seed = static_cast<unsigned>(num);
      cfg.seeded = true;
    } else {
      std::cerr << "heatersim: bad option or value: " << a << " " << v << "\n";
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (!parse_args(argc, argv, cfg)) {
    usage(std::cerr);
    return 2;
  }
  try {
    Heater heater(cfg);
    sim::SimServer server(cfg.server, [&](const std::string& line) { return heater.handle(line); });
    std::cout << "PORT " << server.port() << std::endl;  // endl: the launcher waits for this line
    return server.run();
  } catch (const std::exception& e) {
    std::cerr << "heatersim: " << e.what() << "\n";
    return 1;
  }
}
