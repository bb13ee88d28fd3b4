// A Client proper: the request path (blocking requests, futures, completion
// handlers) and subscriptions. Where a key lives, and what happens when its
// daemon moves, is the business of stores.cpp (see stores.hpp).
#include "client/client_impl.hpp"

#include "config/logger.hpp"
#include "security/keys.hpp"

#include <mktl/catalog.hpp>
#include <mktl/format.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>

namespace mktl {

ClientOptions ClientOptions::from_env() {
  ClientOptions o;
  if (const char* t = std::getenv("MKTL_ACK_TIMEOUT")) o.ack_timeout = std::atof(t);
  if (o.ack_timeout <= 0) o.ack_timeout = 0.1;
  if (const char* k = std::getenv("MKTL_KEY")) o.key = k;
  // Pins separated by commas (a character neither Z85 nor a store name has).
  if (const char* k = std::getenv("MKTL_SERVER_KEY")) {
    std::string_view pins(k);
    while (!pins.empty()) {
      const auto comma = pins.find(',');
      const std::string entry(pins.substr(0, comma));
      if (entry.find_first_not_of(" \t") != std::string::npos) o.pin_server_key(entry);
      pins = comma == std::string_view::npos ? std::string_view() : pins.substr(comma + 1);
    }
  }
  if (const char* t = std::getenv("MKTL_DNS_SD_TIMEOUT"); t && *t) o.dns_sd_timeout = std::max(std::atof(t), 0.0);
  return o;
}

void ClientOptions::pin_server_key(const std::string& entry) {
  // A Z85 key may hold '=': a 40-character key is a key, whatever it holds;
  // and so may a file's path: what comes before '=' is a store only if it
  // has none of a path's '/' and '.'.
  const auto equals = entry.find('=');
  if (security::is_z85_key(entry) || equals == std::string::npos ||
      entry.find_first_of("/.") < equals) {
    if (entry.empty()) throw ValueError("empty server key");
    server_key = entry;
    return;
  }
  const std::string store = detail::ascii_lower(entry.substr(0, equals)), key = entry.substr(equals + 1);
  if (store.empty() || key.empty())
    throw ValueError("'" + entry + "': a pinned key is KEY, or STORE=KEY for one store");
  server_keys[store] = key;
}

void ClientOptions::replace_server_keys(const std::vector<std::string>& entries) {
  server_key.clear();
  server_keys.clear();
  for (const auto& entry : entries) pin_server_key(entry);
}

namespace {
using mktl::detail::ascii_lower;

// Throws the error a daemon reported (the `error` member of a REP), if any.
void throw_remote(const Json& error) {
  if (error.is_object())
    throw Error(error.value("type", std::string("RuntimeError")), error.value("text", std::string()));
}

// The Reading a REP carries; throws the daemon's error if it reports one.
Reading reply_reading(std::string_view payload, std::optional<Bulk> bulk) {
  Json error;
  Reading reading = protocol::read_reading(payload, std::move(bulk), 0.0, &error);
  throw_remote(error);
  return reading;
}

std::string get_payload(bool refresh) { return refresh ? "{\"refresh\":true}" : ""; }

using detail::Where;

}  // namespace

struct Subscription::Token {
  std::weak_ptr<Client::Impl> client;
  std::string key;
  std::uint64_t id = 0;
};

struct detail::CallbackEntry {
  std::uint64_t id;
  Callback callback;               // one of these two
  PayloadCallback payload_callback;
  std::mutex running;  // held while the callback runs, so cancel() can wait for it
  std::atomic<bool> active{true};
};

// The callback running on this thread, so that a callback may cancel its own
// subscription without waiting for itself.
thread_local const detail::CallbackEntry* current_callback = nullptr;
struct CurrentCallback {
  explicit CurrentCallback(const detail::CallbackEntry* e) { current_callback = e; }
  ~CurrentCallback() { current_callback = nullptr; }
};

// ---- subscriptions ----------------------------------------------------------

void Client::Impl::on_broadcast(std::string key, std::string payload, std::optional<Bulk> bulk) {
  // Batches stay small, so that callbacks start while the engine still reads.
  constexpr std::size_t kBatch = 64, kKeys = 16;
  auto it = std::find_if(gathered.begin(), gathered.end(), [&](const auto& events) { return events.front().key == key; });
  if (it == gathered.end()) {
    if (gathered.size() >= kKeys) on_broadcasts_read();
    it = gathered.emplace(gathered.end());
    it->reserve(8);
  }
  it->push_back(Event{std::move(key), std::move(payload), std::move(bulk)});
  if (++gathered_count >= kBatch) on_broadcasts_read();
}

void Client::Impl::on_broadcasts_read() {
  for (auto& events : gathered) post_events(std::move(events));
  gathered.clear();
  gathered_count = 0;
}

void Client::Impl::post_event(Event ev) {
  std::vector<Event> events;
  events.push_back(std::move(ev));
  post_events(std::move(events));
}

void Client::Impl::post_events(std::vector<Event> events) {
  if (events.empty()) return;
  // At most max_queued broadcasts wait for their callbacks; the rest are dropped, counted.
  const std::size_t waiting = queued.load(std::memory_order_relaxed);
  const std::size_t room = waiting >= max_queued ? 0 : max_queued - waiting;
  if (events.size() > room) {
    const std::uint64_t n = events.size() - room;
    const std::uint64_t before = dropped.fetch_add(n);
    if ((before + 999) / 1000 * 1000 < before + n)  // the 1st, the 1001st, ... dropped
      logger("mktl.client")->warn("subscription callbacks fall behind: {} broadcasts dropped", before + n);
    events.resize(room);
    if (events.empty()) return;
  }
  std::shared_ptr<detail::Strand> strand;
  {
    std::lock_guard lock(strands_mutex);
    auto& s = strands[events.front().key];
    if (!s) s = std::make_shared<detail::Strand>(*callback_pool);
    strand = s;
  }
  queued += events.size();
  strand->post(detail::share_task([this, events = std::move(events)]() mutable { deliver(events); }));
}

void Client::Impl::deliver(std::vector<Event>& events) {
  std::vector<std::shared_ptr<detail::CallbackEntry>> targets;
  {
    std::lock_guard lock(mutex);
    auto it = callbacks.find(events.front().key);
    if (it != callbacks.end()) targets = it->second;
  }
  bool any_reading = false, any_payload = false;
  for (auto& entry : targets) (entry->payload_callback ? any_payload : any_reading) = true;
  for (auto& ev : events) {
    --queued;
    if (stopping || targets.empty()) continue;
    Reading r;
    Json whole;  // parsed only when a payload callback wants it
    // A GET's answer standing in for missed broadcasts goes to Reading callbacks only.
    const bool payload_too = any_payload && !ev.refreshed;
    try {
      if (payload_too) whole = protocol::parse_payload(ev.payload);
      if (any_reading) r = protocol::read_reading(ev.payload, std::move(ev.bulk), 0.0);
    } catch (const std::exception& e) {
      logger("mktl.client")->warn("{}: dropped a broadcast with a bad payload: {}", ev.key, e.what());
      continue;
    }
    for (auto& entry : targets) {
      if (entry->payload_callback && !payload_too) continue;
      std::lock_guard running(entry->running);
      if (!entry->active) continue;
      try {
        CurrentCallback current(entry.get());
        if (entry->payload_callback) entry->payload_callback(ev.key, whole);
        else entry->callback(ev.key, r);
      } catch (const std::exception& e) {
        logger("mktl.client")->warn("{}: a subscription callback threw: {}", ev.key, e.what());
      }
    }
  }
}

// ---- requests ---------------------------------------------------------------

Json Client::Impl::request(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                           const Json& payload, std::optional<double> timeout, std::optional<Bulk> bulk,
                           std::optional<Bulk>* bulk_out) {
  return request_text(endpoint, type, target, payload.is_null() ? std::string() : json::dump(payload), timeout,
                      std::move(bulk), bulk_out);
}

namespace {

// This thread's (client, daemon) pairs it sent to through the engine since
// its last blocking request there. A client's address is only compared:
// should a new client reuse a gone one's, its first blocking request takes
// the engine's way once, which costs nothing but a hop.
struct EngineMark {
  const void* client;
  std::string endpoint;
};
thread_local std::vector<EngineMark> engine_marks;

}  // namespace

void Client::Impl::sent_through_engine(const std::string& endpoint) const {
  for (const auto& m : engine_marks)
    if (m.client == this && m.endpoint == endpoint) return;
  // A thread that went through many clients without a blocking request
  // forgets its oldest marks rather than grow without bound.
  if (engine_marks.size() >= 256) engine_marks.erase(engine_marks.begin());
  engine_marks.push_back({this, endpoint});
}

bool Client::Impl::take_engine_order(const std::string& endpoint) const {
  for (auto it = engine_marks.begin(); it != engine_marks.end(); ++it)
    if (it->client == this && it->endpoint == endpoint) {
      engine_marks.erase(it);
      return true;
    }
  return false;
}

detail::DirectRequests::Answer Client::Impl::exchange(const std::string& endpoint, protocol::MessageType type,
                                                      const std::string& target, const std::string& payload,
                                                      std::optional<double> timeout, std::optional<Bulk> bulk) {
  keys->check(endpoint);
  double wait = timeout.value_or(options.timeout);
  if (!take_engine_order(endpoint))
    if (auto answer = direct->request(endpoint, type, target, payload, bulk, wait)) return std::move(*answer);
  auto pending = std::make_shared<detail::WaitedPending>(endpoint, type, target, 0, payload, std::move(bulk));
  engine->send_and_wait(pending, wait, target + " @ " + endpoint);
  return {std::move(pending->payload), std::move(pending->bulk)};
}

Json Client::Impl::request_text(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                                const std::string& payload, std::optional<double> timeout, std::optional<Bulk> bulk,
                                std::optional<Bulk>* bulk_out) {
  auto answer = exchange(endpoint, type, target, payload, timeout, std::move(bulk));
  Json reply = protocol::parse_payload(answer.payload);
  if (reply.is_object())
    if (auto err = reply.find("error"); err != reply.end()) throw_remote(*err);
  if (bulk_out) *bulk_out = std::move(answer.bulk);
  return reply;
}

Subscription::Subscription(Subscription&& o) noexcept : token_(std::move(o.token_)) {}
Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    cancel();
    token_ = std::move(o.token_);
  }
  return *this;
}
Subscription::~Subscription() { cancel(); }

void Subscription::cancel() {
  auto token = std::move(token_);
  if (!token) return;
  auto impl = token->client.lock();
  if (!impl) return;
  std::shared_ptr<detail::CallbackEntry> entry;
  {
    std::lock_guard lock(impl->mutex);
    auto it = impl->callbacks.find(token->key);
    if (it == impl->callbacks.end()) return;
    auto& list = it->second;
    for (auto e = list.begin(); e != list.end(); ++e)
      if ((*e)->id == token->id) {
        entry = *e;
        list.erase(e);
        break;
      }
    if (list.empty()) {
      impl->callbacks.erase(it);
      std::string pub = impl->sub_endpoint[token->key];
      impl->sub_endpoint.erase(token->key);
      // Under the lock: the relocator may move the key's subscription.
      if (!pub.empty()) impl->engine->unsubscribe(pub, protocol::topic(token->key));
    }
  }
  if (entry) {
    entry->active = false;
    // Wait for a callback in progress, unless we are that callback.
    if (current_callback != entry.get()) std::lock_guard wait(entry->running);
  }
}

Client::Client(ClientOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->home = impl_->options.home.empty() ? mktl_home() : impl_->options.home;
  impl_->max_queued = std::max<std::size_t>(impl_->options.callback_queue, 1);
  impl_->keys->configure(impl_->options, impl_->home);  // the key pair's file is checked here
  impl_->engine = std::make_unique<detail::Engine>(impl_->options.ack_timeout, *impl_, impl_->keys);
  impl_->direct =
      std::make_unique<detail::DirectRequests>(impl_->engine->context(), impl_->options.ack_timeout, impl_->keys);
}

Client::~Client() {
  impl_->stopping = true;
  std::jthread relocator;
  {
    std::lock_guard lock(impl_->relocate_mutex);
    relocator = std::move(impl_->relocator);
  }
  relocator = {};  // stops and joins it: it uses the engine
  impl_->direct.reset();
  impl_->engine.reset();           // no more broadcasts come in; queued sends go out
  impl_->callback_pool->shutdown();  // callbacks in progress finish
}

const ClientOptions& Client::options() const noexcept { return impl_->options; }
std::uint64_t Client::dropped_broadcasts() const { return impl_->dropped.load(); }

ItemHandle Client::item(const std::string& full_key) { return ItemHandle(*this, full_key); }

namespace {

std::string lower_target(const std::string& full_key) {
  auto dot = full_key.find('.');
  if (dot == std::string::npos) return full_key;
  return ascii_lower(full_key);
}

std::string set_payload(const Reading& value) {
  std::string payload;
  if (value.bulk) {
    payload = protocol::bulk_payload(*value.bulk, value.time == 0 ? now() : value.time);
  } else {
    payload = "{\"value\":";
    json::dump_to(payload, value.value);
    payload += "}";
  }
  return payload;
}

}  // namespace

Reading Client::get(const std::string& full_key, bool refresh, std::optional<double> timeout) {
  std::string target = lower_target(full_key);
  std::string payload = get_payload(refresh);
  return impl_->with_stale_retry(target, *this, true, [&](const Where& where) {
    auto answer = impl_->exchange(where.rep, protocol::MessageType::GET, target, payload, timeout);
    return reply_reading(answer.payload, std::move(answer.bulk));
  });
}

void Client::set(const std::string& full_key, Reading value, std::optional<double> timeout) {
  std::string target = lower_target(full_key);
  std::string payload = set_payload(value);
  impl_->with_stale_retry(target, *this, false, [&](const Where& where) {
    auto answer = impl_->exchange(where.rep, protocol::MessageType::SET, target, payload, timeout, value.bulk);
    throw_remote(protocol::read_error(answer.payload));  // the value is not returned: not built
    return 0;
  });
}

Json Client::call(const std::string& type, const std::string& full_key, const Json& payload,
                  std::optional<double> timeout) {
  protocol::MessageType t;
  if (type == "GET") t = protocol::MessageType::GET;
  else if (type == "SET") t = protocol::MessageType::SET;
  else throw ValueError("request type must be GET or SET, not '" + type + "'");
  if (!payload.is_object()) throw TypeError("a request payload is a JSON object");
  std::string target = lower_target(full_key);
  std::string text = json::dump(payload);
  return impl_->with_stale_retry(target, *this, t == protocol::MessageType::GET, [&](const Where& where) {
    return impl_->request_text(where.rep, t, target, text, timeout);
  });
}

namespace {

// A request whose REP is read into a Reading as it arrives, on the I/O thread
// (no copy of the payload is kept for later).
class ReadPending : public detail::Pending {
 public:
  using Pending::Pending;

 protected:
  void receive(std::string_view rep_payload, std::optional<Bulk> rep_bulk) override {
    try {
      // A SET's completion tells only whether it failed: its value (a
      // transaction's rows, say) is checked, not built.
      if (type == protocol::MessageType::SET) {
        throw_remote(protocol::read_error(rep_payload));
        return;
      }
      reading_ = reply_reading(rep_payload, std::move(rep_bulk));
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  // Once finished: the local failure or the daemon's error, null on success.
  std::exception_ptr error() {
    if (failure && !error_) {
      try {
        throw_failure();
      } catch (...) {
        error_ = std::current_exception();
      }
    }
    return error_;
  }
  Reading reading_;
  std::exception_ptr error_;
};

// A request whose completion calls a handler, on the client's I/O thread.
template <class Done>
class HandledPending final : public ReadPending {
 public:
  HandledPending(std::string endpoint, protocol::MessageType type, std::string target, std::uint64_t flags,
                 std::string payload, std::optional<Bulk> bulk, Done done)
      : ReadPending(std::move(endpoint), type, std::move(target), flags, std::move(payload), std::move(bulk)),
        done_(std::move(done)) {}

 private:
  void finish() override {
    try {
      if constexpr (std::is_same_v<Done, GetDone>) done_(std::move(reading_), error());
      else done_(error());
    } catch (const std::exception& e) {
      logger("mktl.client")->warn("{}: a completion handler threw: {}", target, e.what());
    } catch (...) {
      logger("mktl.client")->warn("{}: a completion handler threw", target);
    }
  }
  Done done_;
};

// A request nobody waits for (NO_ACK | NO_REP).
class DiscardedPending final : public detail::Pending {
 public:
  using Pending::Pending;

 private:
  void finish() override {}
};

// An asynchronous request of kind P (a Pending subclass) for `full_key`,
// addressed to the daemon that serves it; `extra` goes to P's constructor.
template <class P, class ClientImpl, class... Extra>
std::shared_ptr<P> make_request(ClientImpl& impl, Client& client, const std::string& full_key,
                                protocol::MessageType type, std::uint64_t flags, std::string payload,
                                std::optional<Bulk> bulk, Extra&&... extra) {
  std::string target = lower_target(full_key);
  if (auto t = protocol::split_target(target)) impl.check_cached(t->store, client);
  auto rep = impl.locate(target, client, [](const auto& where) { return where.rep; });
  impl.keys->check(rep);
  impl.sent_through_engine(rep);
  return std::make_shared<P>(std::move(rep), type, std::move(target), flags, std::move(payload), std::move(bulk),
                             std::forward<Extra>(extra)...);
}

}  // namespace

// The shared state of a Future: the request itself (one allocation per
// request). finish() runs on the I/O thread; it wakes the caller only if one
// is waiting, so a completion nobody waits for yet costs no system call.
class detail::FutureState final : public ReadPending {
 public:
  using ReadPending::ReadPending;

  bool ready() {
    std::lock_guard lock(mutex_);
    return done_;
  }
  // False when `seconds` passed first.
  bool wait(double seconds) {
    std::unique_lock lock(mutex_);
    if (done_) return true;
    ++waiters_;
    if (seconds >= 1e9) cv_.wait(lock, [&] { return done_; });
    else cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return done_; });
    --waiters_;
    return done_;
  }
  // After a wait that returned true.
  Reading take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(reading_);
  }

 private:
  void finish() override {
    (void)error();  // a local failure becomes the exception get() throws
    bool wake;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
      wake = waiters_ > 0;
    }
    if (wake) cv_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;  // guarded by mutex_; reading_ and error_ are final before it turns true
  int waiters_ = 0;    // guarded by mutex_
};

template <class T>
bool Future<T>::ready() const {
  return state_ && state_->ready();
}

template <class T>
void Future<T>::wait() const {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  state_->wait(1e9);
}

template <class T>
std::future_status Future<T>::wait_seconds(double seconds) const {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  return state_->wait(std::max(seconds, 0.0)) ? std::future_status::ready : std::future_status::timeout;
}

template <class T>
T Future<T>::get() {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  auto state = std::move(state_);
  state->wait(1e9);
  if constexpr (std::is_void_v<T>) state->take();
  else return state->take();
}

template class Future<Reading>;
template class Future<void>;

Future<void> Client::set_async(const std::string& full_key, Reading value) {
  auto state = make_request<detail::FutureState>(*impl_, *this, full_key, protocol::MessageType::SET, 0,
                                                 set_payload(value), value.bulk);
  impl_->engine->send(state);
  return Future<void>(std::move(state));
}

Future<Reading> Client::get_async(const std::string& full_key, bool refresh) {
  auto state = make_request<detail::FutureState>(*impl_, *this, full_key, protocol::MessageType::GET, 0,
                                                 get_payload(refresh), std::nullopt);
  impl_->engine->send(state);
  return Future<Reading>(std::move(state));
}

void Client::get_then(const std::string& full_key, GetDone done, bool refresh) {
  if (!done) throw ValueError("get_then needs a completion handler");
  impl_->engine->send(make_request<HandledPending<GetDone>>(*impl_, *this, full_key, protocol::MessageType::GET, 0,
                                                            get_payload(refresh), std::nullopt, std::move(done)));
}

void Client::set_then(const std::string& full_key, Reading value, SetDone done) {
  if (!done) throw ValueError("set_then needs a completion handler");
  impl_->engine->send(make_request<HandledPending<SetDone>>(*impl_, *this, full_key, protocol::MessageType::SET, 0,
                                                            set_payload(value), value.bulk, std::move(done)));
}

void Client::set_nowait(const std::string& full_key, Reading value) {
  impl_->engine->send(make_request<DiscardedPending>(*impl_, *this, full_key, protocol::MessageType::SET,
                                                     protocol::NO_ACK | protocol::NO_REP, set_payload(value),
                                                     value.bulk));
}

Json Client::request(const std::string& rep_endpoint, const std::string& type, const std::string& target,
                     const Json& payload, std::optional<double> timeout) {
  protocol::MessageType t;
  if (type == "GET") t = protocol::MessageType::GET;
  else if (type == "SET") t = protocol::MessageType::SET;
  else throw ValueError("request type must be GET or SET, not '" + type + "'");
  return impl_->request(rep_endpoint, t, target, payload, timeout);
}

Subscription Client::subscribe(const std::string& full_key, Callback callback) {
  if (!callback) throw ValueError("subscribe needs a callback");
  auto entry = std::make_shared<detail::CallbackEntry>();
  entry->callback = std::move(callback);
  return add_subscription(full_key, std::move(entry));
}

Subscription Client::subscribe_payload(const std::string& full_key, PayloadCallback callback) {
  if (!callback) throw ValueError("subscribe_payload needs a callback");
  auto entry = std::make_shared<detail::CallbackEntry>();
  entry->payload_callback = std::move(callback);
  return add_subscription(full_key, std::move(entry));
}

Subscription Client::add_subscription(const std::string& full_key, std::shared_ptr<detail::CallbackEntry> entry) {
  std::string key = lower_target(full_key);
  auto where = impl_->locate(key, *this);
  impl_->keys->check(where.pub);
  {
    std::lock_guard lock(impl_->mutex);
    entry->id = impl_->next_sub++;
    auto& list = impl_->callbacks[key];
    if (list.empty()) {
      impl_->sub_endpoint[key] = where.pub;
      impl_->engine->subscribe(where.pub, protocol::topic(key));
    }
    list.push_back(entry);
  }
  auto token = std::make_shared<Subscription::Token>();
  token->client = impl_;
  token->key = key;
  token->id = entry->id;
  return Subscription(std::move(token));
}

std::string ItemHandle::get_formatted(bool refresh) const {
  Reading r = get(refresh);
  return format_value(description(), r.value);
}

void ItemHandle::set_formatted(const std::string& text, std::optional<double> timeout) const {
  set(Reading(parse_formatted(description(), text)), timeout);
}

}  // namespace mktl
