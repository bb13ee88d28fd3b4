#include "runtime/runtime.hpp"

#include <mktl/error.hpp>
#include <mktl/item.hpp>

#include <atomic>
#include <cctype>

namespace mktl {

namespace {

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpmf-conversions"
using GetFn = Reading (*)(Item*, const Request&);
// The function a virtual call of req_get on `item` would reach (GCC's bound
// member-function extension). Used to tell whether a subclass overrides
// req_get: only items that do not can be answered from the cached encoding.
GetFn resolve_req_get(Item& item) { return reinterpret_cast<GetFn>(item.*(&Item::req_get)); }
using ValidateFn = Reading (*)(Item*, Reading);
using SetFn = void (*)(Item*, const Reading&);
ValidateFn resolve_validate(Item& item) { return reinterpret_cast<ValidateFn>(item.*(&Item::validate)); }
SetFn resolve_req_set(Item& item) { return reinterpret_cast<SetFn>(item.*(&Item::req_set)); }
std::atomic<ValidateFn> base_validate{nullptr};
std::atomic<SetFn> base_req_set{nullptr};
#pragma GCC diagnostic pop
std::atomic<GetFn> base_req_get{nullptr};
#define MKTL_CAN_RESOLVE_REQ_GET 1
#endif

}  // namespace

Item::Item(Daemon& daemon, std::string key) : daemon_(daemon), key_(std::move(key)) {
  for (auto& c : key_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const Json& items = daemon_.items();
  auto it = items.find(key_);
  if (it == items.end()) throw KeyError::python("this daemon does not contain '" + key_ + "'");
  description_ = &*it;
  core_ = std::make_shared<detail::ItemCore>();
  core_->item = this;
  core_->full_key = daemon_.store() + "." + key_;
  core_->topic = core_->full_key + ".";
  core_->type = item_type(*description_);
  core_->settable = description_->value("settable", true);
  core_->gettable = description_->value("gettable", true);
  core_->persist = description_->value("persist", false);
#ifdef MKTL_CAN_RESOLVE_REQ_GET
  // While this constructor runs, the dynamic type is Item: this resolves to the base.
  if (!base_req_get.load()) base_req_get.store(resolve_req_get(*this));
  if (!base_validate.load()) base_validate.store(resolve_validate(*this));
  if (!base_req_set.load()) base_req_set.store(resolve_req_set(*this));
#endif
}

Item::~Item() {
  if (core_) {
    std::lock_guard lock(core_->mutex);
    core_->item = nullptr;
  }
}


std::optional<Reading> Item::req_refresh() { return std::nullopt; }

void Item::req_set(const Reading&) {}

Reading Item::validate(Reading value) { return value; }

void Item::req_poll() {
  if (auto reading = req_refresh()) publish(std::move(*reading));
}

Reading Item::req_get(const Request& request) {
  if (request.refresh()) req_poll();
  return current();
}

void Item::publish(Json value, std::optional<double> time, bool repeat) {
  publish(Reading(std::move(value), time ? *time : now()), repeat);
}

void Item::publish(Reading reading, bool repeat) {
  if (core_->runtime && core_->runtime->running()) {
    core_->runtime->publish(*core_, std::move(reading), repeat, false);
    return;
  }
  // Before start: just remember it; start() broadcasts what items hold.
  std::lock_guard lock(core_->mutex);
  core_->encoded = std::make_shared<const std::string>(detail::encode_reading(reading));
  core_->current = std::move(reading);
  core_->has_value = true;
}

Reading Item::current() const {
  std::lock_guard lock(core_->mutex);
  if (!core_->has_value) return Reading(Json(nullptr), 0.0);
  return core_->current;
}

void Item::poll(double period_seconds) {
  {
    std::lock_guard lock(core_->mutex);
    core_->poll_period = period_seconds > 0 ? period_seconds : 0;
  }
  if (core_->runtime) core_->runtime->set_poll(*core_, period_seconds);
}

double Item::poll_period() const {
  std::lock_guard lock(core_->mutex);
  return core_->poll_period;
}

void Item::watch(Item& other) {
  std::lock_guard lock(other.core_->mutex);
  other.core_->watchers.push_back(core_);
}

std::string Item::full_key() const { return core_->full_key; }

namespace detail {

bool overrides_req_get(Item& item) {
#ifdef MKTL_CAN_RESOLVE_REQ_GET
  return resolve_req_get(item) != base_req_get.load();
#else
  (void)item;
  return true;
#endif
}

bool overrides_set_hooks(Item& item) {
#ifdef MKTL_CAN_RESOLVE_REQ_GET
  return resolve_validate(item) != base_validate.load() || resolve_req_set(item) != base_req_set.load();
#else
  (void)item;
  return true;
#endif
}

}  // namespace detail
}  // namespace mktl
