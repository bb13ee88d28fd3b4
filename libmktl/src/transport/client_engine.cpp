#include "transport/client_engine.hpp"

#include "config/logger.hpp"

#include <zmq.hpp>

#include <cstdio>

namespace mktl::detail {

using Clock = std::chrono::steady_clock;

void Pending::wait(double timeout, const std::string& what) {
  std::unique_lock lock(mutex);
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  if (!cv.wait_until(lock, deadline, [&] { return done; }))
    throw TimeoutError(what + ": no response received in " + std::to_string(timeout) + " s");
  if (failure) {
    if (failure->first == "TimeoutError") throw TimeoutError(failure->second);
    throw Error(failure->first, failure->second);
  }
}

struct Engine::Command {
  enum Kind { send, abandon, subscribe, unsubscribe } kind = send;
  std::string endpoint;
  std::string id;
  std::string target;   // topic for (un)subscribe
  std::vector<std::string> frames;
  std::optional<Bulk> bulk;
  std::shared_ptr<Pending> pending;
  bool wants_ack = true;
  bool wants_rep = true;

  // A command that carries no request: abandon, (un)subscribe.
  static std::unique_ptr<Command> control(Kind kind, std::string endpoint, std::string id, std::string target) {
    auto cmd = std::make_unique<Command>();
    cmd->kind = kind;
    cmd->endpoint = std::move(endpoint);
    cmd->id = std::move(id);
    cmd->target = std::move(target);
    return cmd;
  }
};

struct Engine::Dealer {
  zmq::socket_t socket;
  std::string endpoint;
  struct Waiting {
    std::shared_ptr<Pending> pending;
    Clock::time_point ack_deadline;
    bool wants_ack;
    std::string target;
  };
  std::unordered_map<std::string, Waiting> waiting;
};

struct Engine::Sub {
  zmq::socket_t socket;
  std::unordered_map<std::string, int> topics;
};

namespace {

void complete(Pending& p) {
  std::function<void(Pending&)> done;
  {
    std::lock_guard lock(p.mutex);
    p.acked = true;
    p.done = true;
    done = std::move(p.on_done);
  }
  p.cv.notify_all();
  if (done) done(p);
}

void fail(Pending& p, std::string type, std::string text) {
  {
    std::lock_guard lock(p.mutex);
    p.failure.emplace(std::move(type), std::move(text));
  }
  complete(p);
}

}  // namespace

Engine::Engine(double ack_timeout, BroadcastHandler& handler)
    : ack_timeout_(ack_timeout), handler_(handler), thread_([this](std::stop_token st) { run(st); }) {}

Engine::~Engine() {
  thread_.request_stop();
  wakeup_.notify();
  thread_.join();
  // Give what is still queued (a set_nowait just before exit) up to a second
  // to leave, then close the context, which waits for exactly that.
  for (auto& [ep, d] : dealers_) d->socket.set(zmq::sockopt::linger, 1000);
  dealers_.clear();
  subs_.clear();
  context_.close();
}

void Engine::post(std::unique_ptr<Command> cmd) {
  bool was_empty;
  {
    std::lock_guard lock(mutex_);
    was_empty = queue_.empty();
    queue_.push_back(std::move(cmd));
  }
  if (was_empty) wakeup_.notify();
}

std::shared_ptr<Pending> Engine::send(const std::string& endpoint, protocol::MessageType type, const std::string& target,
                                      std::uint64_t flags, std::string payload, std::optional<Bulk> bulk,
                                      std::function<void(Pending&)> on_done) {
  auto cmd = std::make_unique<Command>();
  char id[16];
  {
    std::lock_guard lock(id_mutex_);
    std::snprintf(id, sizeof id, "%08x", next_id_++);
  }
  cmd->endpoint = endpoint;
  cmd->id = id;
  cmd->target = target;
  cmd->frames = protocol::encode(cmd->id, type, target, flags, payload);
  cmd->bulk = std::move(bulk);
  cmd->wants_ack = (flags & protocol::NO_ACK) == 0;
  cmd->wants_rep = (flags & protocol::NO_REP) == 0;
  auto pending = std::make_shared<Pending>();
  pending->endpoint = endpoint;
  pending->id = cmd->id;
  pending->on_done = std::move(on_done);
  cmd->pending = pending;
  post(std::move(cmd));
  return pending;
}

void Engine::wait(Pending& pending, double timeout, const std::string& what) {
  try {
    pending.wait(timeout, what);
  } catch (const TimeoutError&) {
    bool done;
    {
      std::lock_guard lock(pending.mutex);
      done = pending.done;
    }
    if (!done) abandon(pending.endpoint, pending.id);
    throw;
  }
}

void Engine::abandon(const std::string& endpoint, const std::string& id) {
  post(Command::control(Command::abandon, endpoint, id, {}));
}

void Engine::subscribe(const std::string& pub_endpoint, const std::string& topic) {
  post(Command::control(Command::subscribe, pub_endpoint, {}, topic));
}

void Engine::unsubscribe(const std::string& pub_endpoint, const std::string& topic) {
  post(Command::control(Command::unsubscribe, pub_endpoint, {}, topic));
}

void Engine::execute(Command& cmd) {
  auto log = logger("mktl.client");
  switch (cmd.kind) {
    case Command::send: {
      auto& d = dealers_[cmd.endpoint];
      try {
        if (!d) {
          d = std::make_unique<Dealer>();
          d->endpoint = cmd.endpoint;
          d->socket = zmq::socket_t(context_, zmq::socket_type::dealer);
          d->socket.set(zmq::sockopt::linger, 0);
          d->socket.set(zmq::sockopt::sndhwm, 100000);
          d->socket.set(zmq::sockopt::rcvhwm, 100000);
          d->socket.connect(cmd.endpoint);
        }
        std::size_t n = cmd.frames.size();
        bool more_bulk = cmd.bulk.has_value();
        for (std::size_t i = 0; i < n; ++i)
          d->socket.send(zmq::buffer(cmd.frames[i]),
                         (i + 1 < n || more_bulk) ? zmq::send_flags::sndmore : zmq::send_flags::none);
        if (more_bulk) d->socket.send(transport::share_bulk(*cmd.bulk), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        if (d && !d->socket) dealers_.erase(cmd.endpoint);
        fail(*cmd.pending, "RuntimeError", "cannot send to " + cmd.endpoint + ": " + e.what());
        return;
      }
      if (!cmd.wants_rep) {
        complete(*cmd.pending);  // fire and forget
        return;
      }
      auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ack_timeout_));
      d->waiting[cmd.id] = {cmd.pending, deadline, cmd.wants_ack, cmd.target};
      return;
    }
    case Command::abandon: {
      auto it = dealers_.find(cmd.endpoint);
      if (it != dealers_.end()) it->second->waiting.erase(cmd.id);
      return;
    }
    case Command::subscribe: {
      auto& s = subs_[cmd.endpoint];
      if (!s) {
        s = std::make_unique<Sub>();
        s->socket = zmq::socket_t(context_, zmq::socket_type::sub);
        s->socket.set(zmq::sockopt::linger, 0);
        s->socket.set(zmq::sockopt::rcvhwm, 100000);
        try {
          s->socket.connect(cmd.endpoint);
        } catch (const zmq::error_t& e) {
          log->error("cannot connect to {}: {}", cmd.endpoint, e.what());
          subs_.erase(cmd.endpoint);
          return;
        }
      }
      if (s->topics[cmd.target]++ == 0) s->socket.set(zmq::sockopt::subscribe, cmd.target);
      return;
    }
    case Command::unsubscribe: {
      auto it = subs_.find(cmd.endpoint);
      if (it == subs_.end()) return;
      auto t = it->second->topics.find(cmd.target);
      if (t == it->second->topics.end()) return;
      if (--t->second == 0) {
        it->second->socket.set(zmq::sockopt::unsubscribe, cmd.target);
        it->second->topics.erase(t);
      }
      return;
    }
  }
}

void Engine::on_dealer(Dealer& d) {
  for (int burst = 0; burst < 1024; ++burst) {
    std::vector<zmq::message_t> frames;
    try {
      if (!transport::recv_multipart(d.socket, frames)) return;
    } catch (const zmq::error_t& e) {
      logger("mktl.client")->warn("receive from {} failed: {}", d.endpoint, e.what());
      return;
    }
    auto parts = transport::views(frames);
    auto decoded = protocol::decode(parts);
    if (!decoded.message) {
      logger("mktl.client")->warn("dropped a malformed response from {}: {}", d.endpoint,
                                  decoded.error ? decoded.error->text : "?");
      continue;
    }
    auto& msg = *decoded.message;
    auto it = d.waiting.find(msg.id);
    if (it == d.waiting.end()) continue;  // late answer to an abandoned request
    if (msg.type == protocol::MessageType::ACK) {
      std::lock_guard lock(it->second.pending->mutex);
      it->second.pending->acked = true;
      it->second.wants_ack = false;
      continue;
    }
    if (msg.type != protocol::MessageType::REP) continue;
    // A REP before its ACK counts as both.
    auto pending = std::move(it->second.pending);
    d.waiting.erase(it);
    {
      std::lock_guard lock(pending->mutex);
      pending->payload = std::move(msg.payload);
      if (msg.has_bulk) pending->bulk = transport::adopt_bulk(std::move(frames.back()));
    }
    complete(*pending);
  }
}

void Engine::on_sub(Sub& s) {
  for (int burst = 0; burst < 4096; ++burst) {
    std::vector<zmq::message_t> frames;
    try {
      if (!transport::recv_multipart(s.socket, frames, 8)) return;
    } catch (const zmq::error_t&) {
      return;
    }
    auto parts = transport::views(frames);
    std::string error;
    auto b = protocol::decode_broadcast(parts, &error);
    if (!b) {
      logger("mktl.client")->debug("dropped a malformed broadcast: {}", error);
      continue;
    }
    std::optional<Bulk> bulk;
    if (b->has_bulk) bulk = transport::adopt_bulk(std::move(frames.back()));
    handler_.on_broadcast(std::move(b->key), std::move(b->payload), std::move(bulk));
  }
}

void Engine::expire_acks() {
  auto now = Clock::now();
  for (auto& [endpoint, d] : dealers_) {
    for (auto it = d->waiting.begin(); it != d->waiting.end();) {
      if (it->second.wants_ack && now >= it->second.ack_deadline) {
        char text[64];
        std::snprintf(text, sizeof text, "%.3f", ack_timeout_);
        fail(*it->second.pending, "TimeoutError",
             it->second.target + " @ " + endpoint + ": no acknowledgement received in " + text + " s");
        it = d->waiting.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void Engine::run(std::stop_token stop) {
  std::vector<zmq::pollitem_t> items;
  std::vector<Dealer*> dealer_of;
  std::vector<Sub*> sub_of;
  std::vector<std::unique_ptr<Command>> batch;
  while (!stop.stop_requested()) {
    items.clear();
    dealer_of.clear();
    sub_of.clear();
    items.push_back({nullptr, wakeup_.fd(), ZMQ_POLLIN, 0});
    dealer_of.push_back(nullptr);
    sub_of.push_back(nullptr);
    Clock::time_point next_deadline = Clock::time_point::max();
    for (auto& [ep, d] : dealers_) {
      items.push_back({d->socket.handle(), 0, ZMQ_POLLIN, 0});
      dealer_of.push_back(d.get());
      sub_of.push_back(nullptr);
      for (auto& [id, w] : d->waiting)
        if (w.wants_ack && w.ack_deadline < next_deadline) next_deadline = w.ack_deadline;
    }
    for (auto& [ep, s] : subs_) {
      items.push_back({s->socket.handle(), 0, ZMQ_POLLIN, 0});
      dealer_of.push_back(nullptr);
      sub_of.push_back(s.get());
    }
    long timeout_ms = -1;
    if (next_deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_deadline - Clock::now()).count() + 1;
      timeout_ms = left < 0 ? 0 : left;
    }
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      logger("mktl.client")->error("poll failed: {}", e.what());
      return;
    }
    if (items[0].revents & ZMQ_POLLIN) wakeup_.drain();
    {
      std::lock_guard lock(mutex_);
      batch.swap(queue_);
    }
    for (auto& cmd : batch) execute(*cmd);
    batch.clear();
    for (std::size_t i = 1; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      if (dealer_of[i]) on_dealer(*dealer_of[i]);
      if (sub_of[i]) on_sub(*sub_of[i]);
    }
    expire_acks();
  }
  // Send what was queued before the stop; fail whatever is still waiting, so
  // no caller blocks on a dead engine.
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  for (auto& cmd : batch)
    if (cmd->kind == Command::send) execute(*cmd);
  for (auto& [ep, d] : dealers_)
    for (auto& [id, w] : d->waiting) fail(*w.pending, "RuntimeError", "client closed");
}

struct DirectRequests::Socket {
  zmq::socket_t socket;
};

DirectRequests::DirectRequests(zmq::context_t& context, double ack_timeout) : context_(context), ack_timeout_(ack_timeout) {}
DirectRequests::~DirectRequests() = default;

DirectRequests::Socket* DirectRequests::socket_for(const std::string& endpoint) {
  auto key = std::make_pair(std::this_thread::get_id(), endpoint);
  std::lock_guard lock(mutex_);
  auto& s = sockets_[key];
  if (!s) {
    if (sockets_.size() > 256) {
      sockets_.erase(key);
      return nullptr;
    }
    s = std::make_unique<Socket>();
    s->socket = zmq::socket_t(context_, zmq::socket_type::dealer);
    s->socket.set(zmq::sockopt::linger, 0);
    s->socket.connect(endpoint);
  }
  return s.get();
}

std::optional<DirectRequests::Answer> DirectRequests::request(const std::string& endpoint, protocol::MessageType type,
                                                             const std::string& target, std::string_view payload,
                                                             const std::optional<Bulk>& bulk, double timeout) {
  Socket* s = socket_for(endpoint);
  if (!s) return std::nullopt;
  char id[16];
  std::snprintf(id, sizeof id, "%08x", next_id_.fetch_add(1));
  auto frames = protocol::encode(id, type, target, 0, payload);
  for (std::size_t i = 0; i < frames.size(); ++i)
    s->socket.send(zmq::buffer(frames[i]),
                   (i + 1 < frames.size() || bulk) ? zmq::send_flags::sndmore : zmq::send_flags::none);
  if (bulk) s->socket.send(transport::share_bulk(*bulk), zmq::send_flags::none);

  auto start = Clock::now();
  auto ack_deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ack_timeout_));
  auto rep_deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  bool acked = false;
  std::vector<zmq::message_t> parts;
  while (true) {
    auto deadline = acked ? rep_deadline : std::min(ack_deadline, rep_deadline);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    zmq::pollitem_t item{s->socket.handle(), 0, ZMQ_POLLIN, 0};
    if (left > 0) zmq::poll(&item, 1, std::chrono::milliseconds(left + 1));
    if (!(item.revents & ZMQ_POLLIN)) {
      if (Clock::now() < deadline) continue;
      char text[32];
      if (!acked) {
        std::snprintf(text, sizeof text, "%.3f", ack_timeout_);
        throw TimeoutError(target + " @ " + endpoint + ": no acknowledgement received in " + text + " s");
      }
      std::snprintf(text, sizeof text, "%.3f", timeout);
      throw TimeoutError(target + " @ " + endpoint + ": no response received in " + text + " s");
    }
    // Drain what is there: answers to our request, or late ones to an earlier
    // request of this thread that timed out (ignored).
    while (transport::recv_multipart(s->socket, parts)) {
      auto decoded = protocol::decode(transport::views(parts));
      if (!decoded.message || decoded.message->id != id) continue;
      if (decoded.message->type == protocol::MessageType::ACK) {
        acked = true;
        continue;
      }
      if (decoded.message->type != protocol::MessageType::REP) continue;
      Answer answer;
      answer.payload = std::move(decoded.message->payload);
      if (decoded.message->has_bulk) answer.bulk = transport::adopt_bulk(std::move(parts.back()));
      return answer;
    }
  }
}

}  // namespace mktl::detail
