// CameraDaemon: an mKTL daemon for a simple camera (camerasim in
// hardware/camera, or a device speaking its line protocol).
//
// Items (metadata in configs/camera.json, behaviour here):
//   exptime  exposure time in s, settable 0..3600      EXPTIME? / EXPTIME x
//   gain     settable 0.1..100                          GAIN? / GAIN x
//   frameno  read-only, number of the last frame        FRAMENO?
//   rate     frames per second, settable 0..50 (0 stops the frames)
//   frame    read-only bulk uint16 [height, width], one EXPOSE per 1/rate s
//
// Frames come from the runtime's poll scheduler (the frame item polls at
// `rate`), so the daemon needs no thread of its own and stops with the runtime.
//
// The camera address comes from the appconfig ({"host": ..., "port": N},
// markd -a FILE) or from CAMERA_ADDRESS=host:port.
#include "line_link.hpp"

#include <mktl/bulk.hpp>
#include <mktl/daemon.hpp>
#include <mktl/error.hpp>
#include <mktl/item.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>

namespace {

using mktl::Json;
using mktl::Reading;
using mktl::examples::LineLink;

constexpr double kRateMax = 50.0;
// Refuse absurd frame headers rather than allocate whatever they announce.
constexpr std::size_t kMaxFrameBytes = std::size_t(1) << 28;

double query_number(LineLink& link, const std::string& keyword) {
  std::string answer = link.command(keyword + "?");
  if (answer.rfind(keyword + " ", 0) != 0)
    throw mktl::RuntimeError(link.name() + ": unexpected answer '" + answer + "' to " + keyword + "?");
  return mktl::examples::parse_answer_number(link.name(), answer, answer.substr(keyword.size() + 1));
}

// A numeric item mirrored from one controller setting, with its limits.
class Setting : public mktl::Item {
 public:
  Setting(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link, std::string keyword, double min,
          double max)
      : Item(d, std::move(key)), link_(std::move(link)), keyword_(std::move(keyword)), min_(min), max_(max) {
    poll(2.0);  // pick up changes made behind our back, and the value at start
  }
  // Worker thread; never concurrent with other hooks of this item.
  std::optional<Reading> req_refresh() override { return Reading(query_number(*link_, keyword_)); }

  Reading validate(Reading value) override {
    double v = mktl::examples::json_to_double(value.value);
    if (!std::isfinite(v) || v < min_ || v > max_) {
      std::ostringstream msg;
      msg << key() << " " << value.value.dump() << " is outside the camera's limits " << min_ << ".." << max_;
      throw mktl::ValueError(msg.str());
    }
    value.value = v;
    return value;
  }

  // Worker thread, in SET arrival order.
  void req_set(const Reading& value) override {
    char text[64];
    std::snprintf(text, sizeof text, "%s %.9g", keyword_.c_str(), mktl::examples::json_to_double(value.value));
    link_->expect_ok(text);
  }

 private:
  std::shared_ptr<LineLink> link_;
  std::string keyword_;
  double min_;
  double max_;
};

class FrameNumber : public mktl::Item {
 public:
  FrameNumber(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link)
      : Item(d, std::move(key)), link_(std::move(link)) {}
  // Only on a refresh GET: every frame publishes its number (see Frame).
  std::optional<Reading> req_refresh() override {
    return Reading(static_cast<long long>(query_number(*link_, "FRAMENO")));
  }

 private:
  std::shared_ptr<LineLink> link_;
};

class Frame : public mktl::Item {
 public:
  Frame(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link, mktl::Item& frameno)
      : Item(d, std::move(key)), link_(std::move(link)), frameno_(frameno) {
    poll(1.0);  // the catalog's default rate; Rate::req_set changes it
  }

  // One exposure. Worker thread; polls of this item never overlap.
  std::optional<Reading> req_refresh() override {
    long long number = 0;
    std::int64_t width = 0, height = 0;
    auto answer = link_->command_with_payload("EXPOSE", [&](const std::string& line) -> std::size_t {
      std::istringstream in(line);
      std::string word;
      unsigned long long nbytes = 0;
      if (!(in >> word >> number >> width >> height >> nbytes) || word != "FRAME" || width <= 0 || height <= 0 ||
          nbytes != static_cast<unsigned long long>(width) * static_cast<unsigned long long>(height) * 2 ||
          nbytes > kMaxFrameBytes)
        throw mktl::RuntimeError(link_->name() + ": bad frame header '" + line + "'");
      return static_cast<std::size_t>(nbytes);
    });
    std::string pixels = std::move(answer.payload);
    if constexpr (std::endian::native == std::endian::big) {
      // The camera sends little-endian; a bulk value is in native order.
      for (std::size_t i = 0; i + 1 < pixels.size(); i += 2) std::swap(pixels[i], pixels[i + 1]);
    }
    const double t = mktl::now();
    frameno_.publish(Reading(Json(number), t));  // (Json, double) would be ambiguous
    return Reading(mktl::Bulk::from_bytes(std::move(pixels), {height, width}, "uint16"), t);
  }

 private:
  std::shared_ptr<LineLink> link_;
  mktl::Item& frameno_;
};

class Rate : public mktl::Item {
 public:
  Rate(mktl::Daemon& d, std::string key, mktl::Item& frame) : Item(d, std::move(key)), frame_(frame) {}

  Reading validate(Reading value) override {
    double v = mktl::examples::json_to_double(value.value);
    if (!std::isfinite(v) || v < 0 || v > kRateMax)
      throw mktl::ValueError("rate " + value.value.dump() + " is outside 0.." + std::to_string(int(kRateMax)) +
                             " frames per second");
    value.value = v;
    return value;
  }
  void req_set(const Reading& value) override {
    double v = mktl::examples::json_to_double(value.value);
    frame_.poll(v > 0 ? 1.0 / v : 0.0);
  }

 private:
  mktl::Item& frame_;
};

}  // namespace

class CameraDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;

  void setup() override {
    // Shared by the items rather than held here: the items (owned by the base
    // Daemon) outlive this subclass's members, and a poll may still be running.
    auto link = std::make_shared<LineLink>(
        "camera", mktl::examples::controller_address(options().appconfig, "CAMERA_ADDRESS"),
        std::chrono::milliseconds(5000));
    add_item<Setting>("exptime", link, "EXPTIME", 0.0, 3600.0);
    add_item<Setting>("gain", link, "GAIN", 0.1, 100.0);
    auto& frameno = add_item<FrameNumber>("frameno", link);
    auto& frame = add_item<Frame>("frame", link, frameno);
    add_item<Rate>("rate", frame);
  }
};

MKTL_REGISTER_DAEMON(CameraDaemon)
