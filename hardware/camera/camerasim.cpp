// camerasim: a simulated camera on TCP, the "hardware" that the camera example
// daemon talks to.
//
// Line protocol (one command per line, one answer per command):
//   EXPTIME? | EXPTIME <s>  -> EXPTIME 0.1 | OK
//   GAIN? | GAIN <n>        -> GAIN 1.0 | OK
//   FRAMENO?                -> FRAMENO 12
//   SIZE?                   -> SIZE 512 512
//   EXPOSE                  -> FRAME <n> <width> <height> <nbytes>\n then
//                              nbytes of little-endian uint16 pixels, row-major
//   anything wrong          -> ERR <text>
//
// A frame is a fixed star field (positions and fluxes drawn once from the
// seed), Gaussian PSFs, a sky level, a bias, and shot plus read noise. EXPOSE
// answers at once: the simulated exposure takes no wall-clock time.
#include "sim_server.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <numbers>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr double kExptimeMax = 3600.0;
constexpr double kGainMin = 0.1;
constexpr double kGainMax = 100.0;
constexpr double kBias = 500.0;          // ADU
constexpr double kReadNoise = 3.0;       // ADU
constexpr double kSkyRate = 20.0;        // electrons / pixel / s
constexpr double kPsfSigma = 1.6;        // pixels

struct Config {
  sim::ServerOptions server;
  int width = 512;
  int height = 512;
  int stars = -1;  // -1: scale with the area
  unsigned seed = 0;
  bool seeded = false;
};

class Camera {
 public:
  explicit Camera(const Config& cfg)
      : width_(cfg.width), height_(cfg.height), rng_(cfg.seeded ? cfg.seed : std::random_device{}()) {
    // The star field is drawn from its own generator so that the same seed
    // always gives the same sky, whatever the noise draws.
    std::mt19937_64 sky_rng(cfg.seeded ? cfg.seed + 1 : std::random_device{}());
    int count = cfg.stars >= 0 ? cfg.stars : std::max(5, width_ * height_ / 2500);
    star_rate_.assign(static_cast<std::size_t>(width_) * height_, 0.0f);
    std::uniform_real_distribution<double> ux(0, width_), uy(0, height_);
    std::exponential_distribution<double> flux(1.0 / 20000.0);  // electrons / s, many faint stars
    const int r = static_cast<int>(std::ceil(4 * kPsfSigma));
    for (int s = 0; s < count; ++s) {
      double x0 = ux(sky_rng), y0 = uy(sky_rng), f = flux(sky_rng);
      double norm = f / (2 * std::numbers::pi * kPsfSigma * kPsfSigma);
      int xi = static_cast<int>(x0), yi = static_cast<int>(y0);
      for (int y = std::max(0, yi - r); y <= std::min(height_ - 1, yi + r); ++y)
        for (int x = std::max(0, xi - r); x <= std::min(width_ - 1, xi + r); ++x) {
          double dx = x + 0.5 - x0, dy = y + 0.5 - y0;
          star_rate_[static_cast<std::size_t>(y) * width_ + x] +=
              static_cast<float>(norm * std::exp(-(dx * dx + dy * dy) / (2 * kPsfSigma * kPsfSigma)));
        }
    }
  }

  std::string handle(const std::string& line) {
    auto words = sim::split_words(line);
    std::string cmd = sim::upper(words[0]);
    if (cmd == "EXPTIME?" && words.size() == 1) return "EXPTIME " + sim::format_number(exptime_, 6) + "\n";
    if (cmd == "EXPTIME") {
      double v;
      if (words.size() != 2) return "ERR usage: EXPTIME <seconds>\n";
      if (!sim::parse_number(words[1], v)) return "ERR bad number '" + words[1] + "'\n";
      if (v < 0 || v > kExptimeMax) return "ERR exposure time " + words[1] + " out of range 0..3600\n";
      exptime_ = v;
      return "OK\n";
    }
    if (cmd == "GAIN?" && words.size() == 1) return "GAIN " + sim::format_number(gain_) + "\n";
    if (cmd == "GAIN") {
      double v;
      if (words.size() != 2) return "ERR usage: GAIN <n>\n";
      if (!sim::parse_number(words[1], v)) return "ERR bad number '" + words[1] + "'\n";
      if (v < kGainMin || v > kGainMax) return "ERR gain " + words[1] + " out of range 0.1..100\n";
      gain_ = v;
      return "OK\n";
    }
    if (cmd == "FRAMENO?" && words.size() == 1) return "FRAMENO " + std::to_string(frameno_) + "\n";
    if (cmd == "SIZE?" && words.size() == 1)
      return "SIZE " + std::to_string(width_) + " " + std::to_string(height_) + "\n";
    if (cmd == "EXPOSE" && words.size() == 1) return expose();
    return "ERR unknown command '" + line + "'\n";
  }

 private:
  std::string expose() {
    ++frameno_;
    const std::size_t n = star_rate_.size();
    std::string header = "FRAME " + std::to_string(frameno_) + " " + std::to_string(width_) + " " +
                         std::to_string(height_) + " " + std::to_string(n * 2) + "\n";
    std::string out;
    out.reserve(header.size() + n * 2);
    out += header;
    for (std::size_t i = 0; i < n; ++i) {
      double electrons = (star_rate_[i] + kSkyRate) * exptime_;
      // Shot noise as a Gaussian of variance equal to the mean: close enough
      // to Poisson at these levels and much cheaper.
      double adu = kBias + gain_ * (electrons + std::sqrt(electrons) * normal_(rng_)) + kReadNoise * normal_(rng_);
      auto v = static_cast<std::uint16_t>(std::clamp(std::lround(adu), 0L, 65535L));
      out += static_cast<char>(v & 0xff);  // little-endian on the wire, whatever the host
      out += static_cast<char>(v >> 8);
    }
    return out;
  }

  int width_;
  int height_;
  std::vector<float> star_rate_;  // electrons / s per pixel from stars
  double exptime_ = 0.1;
  double gain_ = 1.0;
  long frameno_ = 0;
  std::mt19937_64 rng_;
  std::normal_distribution<double> normal_{0.0, 1.0};
};

void usage(std::ostream& out) {
  out << "Usage: camerasim [options]\n"
         "Simulated camera speaking a line protocol on TCP.\n\n"
         "Options:\n"
         "  --host ADDR     address to listen on (default 127.0.0.1)\n"
         "  --port N        TCP port; 0 picks a free one (default 0)\n"
         "  --width N       frame width in pixels (default 512)\n"
         "  --height N      frame height in pixels (default 512)\n"
         "  --stars N       number of stars (default: one per 2500 pixels)\n"
         "  --seed N        seed of the star field and the noise (default: random)\n"
         "  -h, --help      show this help\n\n"
         "The first line on stdout is 'PORT <n>', the port listened on.\n"
         "Commands: EXPTIME?  EXPTIME <s>  GAIN?  GAIN <n>  FRAMENO?  SIZE?  EXPOSE\n"
         "EXPOSE answers 'FRAME <n> <width> <height> <nbytes>' and nbytes of\n"
         "little-endian uint16 pixels.\n\n"
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
      std::cerr << "camerasim: unknown option or missing value: " << a << "\n";
      return false;
    }
    std::string v = argv[++i];
    double num = 0;
    bool numeric = sim::parse_number(v, num) && num == std::floor(num);
    if (a == "--host") cfg.server.host = v;
    else if (a == "--port" && numeric && num >= 0 && num <= 65535) cfg.server.port = static_cast<int>(num);
    else if (a == "--width" && numeric && num >= 1 && num <= 8192) cfg.width = static_cast<int>(num);
    else if (a == "--height" && numeric && num >= 1 && num <= 8192) cfg.height = static_cast<int>(num);
    else if (a == "--stars" && numeric && num >= 0 && num <= 1e6) cfg.stars = static_cast<int>(num);
    else if (a == "--seed" && numeric && num >= 0) {
      cfg.seed = static_cast<unsigned>(num);
      cfg.seeded = true;
    } else {
      std::cerr << "camerasim: bad option or value: " << a << " " << v << "\n";
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
    Camera camera(cfg);
    sim::SimServer server(cfg.server, [&](const std::string& line) { return camera.handle(line); });
    std::cout << "PORT " << server.port() << std::endl;  // endl: the launcher waits for this line
    return server.run();
  } catch (const std::exception& e) {
    std::cerr << "camerasim: " << e.what() << "\n";
    return 1;
  }
}
