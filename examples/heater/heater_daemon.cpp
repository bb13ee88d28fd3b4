// HeaterDaemon: an mKTL daemon for a simple temperature controller (heatersim
// in hardware/heater, or a device speaking its line protocol).
//
// Items (metadata in configs/heater.json, behaviour here):
//   temperature  read-only, polled every 0.5 s          TEMP?
//   setpoint     settable within -50..150 degC           SETP? / SETP x
//   power        boolean Off/On                          POWER? / POWER ON|OFF
//   mode         enumerated Manual/Auto/Standby          MODE? / MODE x
//   status       read-only string, polled                STATUS?
//
// The controller address comes from the appconfig ({"host": ..., "port": N},
// markd -a FILE) or from HEATER_ADDRESS=host:port.
//
// Run it with: markd -c configs/heater.json -m lib/libheater_daemon.so
//                    -s HeaterDaemon -a appconfig.json heater heater1
#include "line_link.hpp"

#include <mktl/daemon.hpp>
#include <mktl/error.hpp>
#include <mktl/item.hpp>

#include <array>
#include <cctype>
#include <cmath>
#include <memory>
#include <string>

namespace {

using mktl::Json;
using mktl::Reading;
using mktl::examples::LineLink;

constexpr double kSetpointMin = -50.0;  // the controller's own limits
constexpr double kSetpointMax = 150.0;
constexpr std::array<const char*, 3> kModes = {"MANUAL", "AUTO", "STANDBY"};  // index = enumerator

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The part of an answer after its expected keyword: "TEMP 23.4" -> "23.4".
std::string answer_value(const LineLink& link, const std::string& answer, const std::string& keyword) {
  if (answer.size() <= keyword.size() + 1 || answer.compare(0, keyword.size() + 1, keyword + " ") != 0)
    throw mktl::RuntimeError(link.name() + ": unexpected answer '" + answer + "' to " + keyword + "?");
  return answer.substr(keyword.size() + 1);
}

double query_number(LineLink& link, const std::string& keyword) {
  std::string answer = link.command(keyword + "?");
  return mktl::examples::parse_answer_number(link.name(), answer, answer_value(link, answer, keyword));
}

// Index of a SET value among an item's enumerators: the number itself, or the
// enumerator's name (case-insensitive) should the runtime hand us the string.
long enumerator_index(const mktl::Item& item, const Json& value) {
  if (value.is_boolean()) return value.get<bool>() ? 1 : 0;
  if (value.is_number()) return std::lround(value.get<double>());
  if (value.is_string()) {
    const std::string want = lower(value.get<std::string>());
    const Json& enums = item.description().value("enumerators", Json::object());
    for (auto it = enums.begin(); it != enums.end(); ++it)
      if (it.value().is_string() && lower(it.value().get<std::string>()) == want) return std::stol(it.key());
    if (!want.empty() && want.find_first_not_of("0123456789") == std::string::npos) return std::stol(want);
  }
  throw mktl::KeyError("invalid enumerator: '" + (value.is_string() ? value.get<std::string>() : value.dump()) + "'");
}

class Temperature : public mktl::Item {
 public:
  Temperature(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link) : Item(d, std::move(key)), link_(std::move(link)) { poll(0.5); }
  // Worker thread; never concurrent with other hooks of this item.
  std::optional<Reading> req_refresh() override { return Reading(query_number(*link_, "TEMP")); }

 private:
  std::shared_ptr<LineLink> link_;
};

class Setpoint : public mktl::Item {
 public:
  Setpoint(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link) : Item(d, std::move(key)), link_(std::move(link)) {
    // Someone else (a front panel, another client) may change it.
    poll(1.0);
  }
  std::optional<Reading> req_refresh() override {
    if (!restored_) {
      // The setpoint persists: a value the runtime restored from before a
      // restart goes to the controller once, before we start mirroring it.
      Reading saved = current();
      if (saved.time != 0.0 && saved.value.is_number()) req_set(saved);
      restored_ = true;
    }
    return Reading(query_number(*link_, "SETP"));
  }

  // Reject here what the controller would reject, with a clearer message.
  Reading validate(Reading value) override {
    double v = mktl::examples::json_to_double(value.value);
    if (!std::isfinite(v) || v < kSetpointMin || v > kSetpointMax)
      throw mktl::ValueError("setpoint " + value.value.dump() + " is outside the controller's limits " +
                             std::to_string(static_cast<int>(kSetpointMin)) + ".." +
                             std::to_string(static_cast<int>(kSetpointMax)) + " degC");
    value.value = v;
    return value;
  }

  // Worker thread, in SET arrival order.
  void req_set(const Reading& value) override {
    char text[64];
    std::snprintf(text, sizeof text, "SETP %.6g", mktl::examples::json_to_double(value.value));
    link_->expect_ok(text);
  }

 private:
  std::shared_ptr<LineLink> link_;
  bool restored_ = false;  // hooks of one item never overlap: no lock needed
};

class Power : public mktl::Item {
 public:
  Power(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link) : Item(d, std::move(key)), link_(std::move(link)) { poll(1.0); }
  std::optional<Reading> req_refresh() override {
    std::string answer = link_->command("POWER?");
    std::string v = answer_value(*link_, answer, "POWER");
    if (v != "ON" && v != "OFF") throw mktl::RuntimeError(link_->name() + ": unexpected answer '" + answer + "'");
    return Reading(v == "ON" ? 1 : 0);
  }
  void req_set(const Reading& value) override {
    long on = enumerator_index(*this, value.value);
    if (on != 0 && on != 1) throw mktl::KeyError("invalid enumerator: '" + value.value.dump() + "'");
    link_->expect_ok(on ? "POWER ON" : "POWER OFF");
  }

 private:
  std::shared_ptr<LineLink> link_;
};

class Mode : public mktl::Item {
 public:
  Mode(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link) : Item(d, std::move(key)), link_(std::move(link)) { poll(1.0); }
  std::optional<Reading> req_refresh() override {
    std::string answer = link_->command("MODE?");
    std::string v = answer_value(*link_, answer, "MODE");
    for (std::size_t i = 0; i < kModes.size(); ++i)
      if (v == kModes[i]) return Reading(static_cast<int>(i));
    throw mktl::RuntimeError(link_->name() + ": unexpected answer '" + answer + "'");
  }
  void req_set(const Reading& value) override {
    long i = enumerator_index(*this, value.value);
    if (i < 0 || i >= static_cast<long>(kModes.size()))
      throw mktl::KeyError("invalid enumerator: '" + value.value.dump() + "'");
    link_->expect_ok(std::string("MODE ") + kModes[static_cast<std::size_t>(i)]);
  }

 private:
  std::shared_ptr<LineLink> link_;
};

class Status : public mktl::Item {
 public:
  Status(mktl::Daemon& d, std::string key, std::shared_ptr<LineLink> link) : Item(d, std::move(key)), link_(std::move(link)) { poll(0.5); }
  std::optional<Reading> req_refresh() override {
    std::string answer = link_->command("STATUS?");
    return Reading(answer_value(*link_, answer, "STATUS"));
  }

 private:
  std::shared_ptr<LineLink> link_;
};

}  // namespace

class HeaterDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;

  void setup() override {
    // Shared by the items rather than held here: the items (owned by the base
    // Daemon) outlive this subclass's members, and a poll may still be running.
    auto link = std::make_shared<LineLink>("heater controller",
                                           mktl::examples::controller_address(options().appconfig, "HEATER_ADDRESS"));
    add_item<Temperature>("temperature", link);
    add_item<Setpoint>("setpoint", link);
    add_item<Power>("power", link);
    add_item<Mode>("mode", link);
    add_item<Status>("status", link);
  }

 private:
};

MKTL_REGISTER_DAEMON(HeaterDaemon)
