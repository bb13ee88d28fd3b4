#include "security/zap.hpp"
#include "common/thread_name.hpp"

#include "config/logger.hpp"
#include "security/keys.hpp"

#include <mktl/error.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace mktl::security {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";

// The ZAP handler of one context (RFC 27): a REP socket answering ZeroMQ's
// requests, each [version, request id, domain, address, routing id,
// mechanism, credentials...], with [version, request id, status code,
// status text, user id, metadata].
class Handler {
 public:
  explicit Handler(zmq::context_t& context) : context_(&context), socket_(context, zmq::socket_type::rep) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(kZapEndpoint);
    thread_ = std::thread([this] { run(); });
    thread_.detach();  // lives as long as the process (the context is never closed either)
  }

  zmq::context_t* context() const { return context_; }

  std::string add(std::shared_ptr<const Policy> policy, SocketRole role) {
    std::lock_guard lock(mutex_);
    std::string name = "mktl-" + std::to_string(++counter_) + (role == SocketRole::requests ? "-rep" : "-pub");
    domains_[name] = Domain{std::move(policy), role};
    return name;
  }

  void remove(const std::string& name) {
    std::lock_guard lock(mutex_);
    domains_.erase(name);
  }

 private:
  struct Domain {
    std::shared_ptr<const Policy> policy;
    SocketRole role;
  };

  void run() {
    mktl::detail::name_this_thread("mktl-zap");
    auto log = logger("mktl.security");
    std::vector<zmq::message_t> frames;
    while (true) {
      frames.clear();
      try {
        do {
          frames.emplace_back();
          if (!socket_.recv(frames.back(), zmq::recv_flags::none)) break;
        } while (frames.back().more());
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        log->error("ZAP handler: receive failed, no further client is admitted: {}", e.what());
        return;
      }
      auto text = [&](std::size_t i) {
        return i < frames.size() ? std::string(static_cast<const char*>(frames[i].data()), frames[i].size())
                                 : std::string();
      };
      std::string request_id = text(1), domain = text(2), address = text(3), mechanism = text(5);
      std::string status = "400", status_text = "unknown client key", user;
      std::string key = frames.size() > 6 ? text(6) : std::string();
      if (text(0) != "1.0") {
        status = "500";
        status_text = "unsupported ZAP version";
      } else if (mechanism != "CURVE" || key.size() != 32) {
        status_text = "CURVE required";
      } else {
        std::lock_guard lock(mutex_);
        auto it = domains_.find(domain);
        if (it == domains_.end()) {
          status_text = "no such domain";
        } else if (const std::string* name = it->second.policy->client_name(key)) {
          if (it->second.role == SocketRole::broadcasts && !it->second.policy->may_subscribe_anything(*name)) {
            status_text = "client may not subscribe";
            refused(log, address, z85_key(key), "client '" + *name + "' has no subscribe rights");
          } else {
            status = "200";
            status_text = "OK";
            user = *name;
          }
        } else {
          refused(log, address, z85_key(key), "its key is not among the daemon's security clients");
        }
      }
      if (status == "200") log->debug("ZAP: admitted '{}' from {} ({})", user, address, domain);
      try {
        socket_.send(zmq::buffer(std::string("1.0")), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(status), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(status_text), zmq::send_flags::sndmore);
        socket_.send(zmq::buffer(user), zmq::send_flags::sndmore);
        socket_.send(zmq::message_t(), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        log->warn("ZAP handler: reply failed: {}", e.what());
      }
    }
  }

  // A refused client retries its connection every few hundred milliseconds:
  // say so once a minute per key and address, not at every attempt.
  void refused(const std::shared_ptr<spdlog::logger>& log, const std::string& address, const std::string& key,
               const std::string& why) {
    auto now = std::chrono::steady_clock::now();
    auto& last = last_refusal_[address + " " + key];
    if (last.time_since_epoch().count() != 0 && now - last < std::chrono::minutes(1)) return;
    last = now;
    if (last_refusal_.size() > 4096) last_refusal_.clear();
    log->warn("refused a CURVE connection from {} with public key {}: {}", address, key, why);
  }

  zmq::context_t* context_;
  zmq::socket_t socket_;
  std::thread thread_;
  std::mutex mutex_;  // domains_, counter_, last_refusal_
  std::map<std::string, Domain> domains_;
  std::uint64_t counter_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> last_refusal_;
};

std::mutex handlers_mutex;

// The handler of a context, started on first use; never destroyed.
Handler& handler_for(zmq::context_t& context) {
  static std::vector<Handler*>* handlers = new std::vector<Handler*>;
  std::lock_guard lock(handlers_mutex);
  for (auto* h : *handlers)
    if (h->context() == &context) return *h;
  try {
    handlers->push_back(new Handler(context));
  } catch (const zmq::error_t& e) {
    throw RuntimeError(std::string("cannot start the ZAP handler at ") + kZapEndpoint + ": " + e.what() +
                       " (does other code in this process run one on the same ZeroMQ context?)");
  }
  return *handlers->back();
}

void set_key(zmq::socket_t& socket, int option, const std::string& z85) {
  std::string binary = binary_key(z85);
  if (zmq_setsockopt(socket.handle(), option, binary.data(), binary.size()) != 0)
    throw RuntimeError(std::string("cannot set a CURVE key on a socket: ") + zmq_strerror(zmq_errno()));
}

}  // namespace

ZapDomain::ZapDomain(zmq::context_t& context, std::shared_ptr<const Policy> policy, SocketRole role)
    : policy_(std::move(policy)) {
  name_ = handler_for(context).add(policy_, role);
  context_ = &context;
}

ZapDomain::~ZapDomain() { handler_for(*context_).remove(name_); }

void ZapDomain::secure(zmq::socket_t& socket) const {
  socket.set(zmq::sockopt::curve_server, 1);
  set_key(socket, ZMQ_CURVE_SECRETKEY, policy_->server().secret_key);
  socket.set(zmq::sockopt::zap_domain, name_);
}

void secure_client(zmq::socket_t& socket, const KeyPair& client, const std::string& server_key) {
  set_key(socket, ZMQ_CURVE_SERVERKEY, server_key);
  set_key(socket, ZMQ_CURVE_PUBLICKEY, client.public_key);
  set_key(socket, ZMQ_CURVE_SECRETKEY, client.secret_key);
}

std::string user_of(zmq::message_t& message) {
  const char* user = zmq_msg_gets(message.handle(), "User-Id");
  return user ? std::string(user) : std::string();
}

}  // namespace mktl::security
