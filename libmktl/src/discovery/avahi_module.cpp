// The DNS-SD module, libmktl_avahi.so: everything that touches Avahi. It is
// not part of libmktl, which loads it with dlopen on first use (avahi.cpp)
// so that programs never using DNS-SD do not load libavahi-client and what it
// drags in. Everything here has internal linkage except the entry point.
#include "discovery/avahi_module.hpp"

#include "discovery/logger.hpp"

#include <mktl/error.hpp>

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/thread-watch.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <type_traits>

namespace mktl::discovery {

namespace {

struct PollDeleter {
  void operator()(AvahiThreadedPoll* poll) const noexcept { avahi_threaded_poll_free(poll); }
};
struct ClientDeleter {
  void operator()(AvahiClient* client) const noexcept { avahi_client_free(client); }
};
struct StringListDeleter {
  void operator()(AvahiStringList* list) const noexcept { avahi_string_list_free(list); }
};
using PollPtr = std::unique_ptr<AvahiThreadedPoll, PollDeleter>;
using ClientPtr = std::unique_ptr<AvahiClient, ClientDeleter>;

PollPtr make_poll() {
  PollPtr poll(avahi_threaded_poll_new());
  if (!poll) throw RuntimeError("Avahi: cannot create a threaded poll");
  return poll;
}

std::string no_daemon_text(int error) {
  return std::string("Avahi: cannot reach avahi-daemon (") + avahi_strerror(error) +
         "); is avahi-daemon running on the system D-Bus?";
}

// Avahi wants a malloc'ed name it can replace on collisions.
struct AvahiString {
  char* text = nullptr;
  explicit AvahiString(const std::string& value) : text(avahi_strdup(value.c_str())) {}
  ~AvahiString() { avahi_free(text); }
  AvahiString(const AvahiString&) = delete;
  AvahiString& operator=(const AvahiString&) = delete;
  void replace_with_alternative() {
    char* next = avahi_alternative_service_name(text);
    avahi_free(text);
    text = next;
  }
};

// ---- publisher -----------------------------------------------------------------

class AvahiPublication final : public avahi_module::Publication {
 public:
  AvahiPublication(const std::string& store, const std::string& alias, const std::string& uuid, int rep_port,
                   int pub_port)
      : name_(store + " " + alias), rep_port_(rep_port) {
    AvahiStringList* txt = nullptr;
    txt = avahi_string_list_add_pair(txt, "store", store.c_str());
    txt = avahi_string_list_add_pair(txt, "alias", alias.c_str());
    txt = avahi_string_list_add_pair(txt, "uuid", uuid.c_str());
    txt = avahi_string_list_add_pair(txt, "pub", std::to_string(pub_port).c_str());
    txt_.reset(txt);

    poll_ = make_poll();
    int error = 0;
    client_.reset(avahi_client_new(avahi_threaded_poll_get(poll_.get()), AvahiClientFlags(0), &on_client, this, &error));
    if (!client_) throw RuntimeError(no_daemon_text(error));
    {
      std::lock_guard lock(mutex_);
      if (!failure_.empty()) throw RuntimeError(failure_);
    }
    if (avahi_threaded_poll_start(poll_.get()) < 0) throw RuntimeError("Avahi: cannot start the poll thread");
  }

  ~AvahiPublication() override {
    // Stop the thread first so that no callback runs while we free.
    avahi_threaded_poll_stop(poll_.get());
    client_.reset();
  }

  bool wait_established(double timeout_s) override {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                      [&] { return established_ || !failure_.empty(); });
    if (!failure_.empty()) throw RuntimeError(failure_);
    return established_;
  }

  std::string name() const override {
    avahi_threaded_poll_lock(poll_.get());
    std::string out = name_.text ? name_.text : "";
    avahi_threaded_poll_unlock(poll_.get());
    return out;
  }

 private:
  // Owned by the Avahi thread once the poll runs; touched elsewhere only under
  // avahi_threaded_poll_lock.
  PollPtr poll_;
  ClientPtr client_;
  AvahiEntryGroup* group_ = nullptr;   // freed with the client
  AvahiString name_;
  std::unique_ptr<AvahiStringList, StringListDeleter> txt_;
  int rep_port_ = 0;

  // State shared with waiters.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool established_ = false;
  std::string failure_;

  void fail(std::string text) {
    log().error("{}", text);
    std::lock_guard lock(mutex_);
    failure_ = std::move(text);
    changed_.notify_all();
  }

  void set_established(bool value) {
    std::lock_guard lock(mutex_);
    established_ = value;
    changed_.notify_all();
  }

  void create_service(AvahiClient* c) {
    if (!group_) {
      group_ = avahi_entry_group_new(c, &on_group, this);
      if (!group_) return fail(std::string("Avahi: cannot create an entry group: ") + avahi_strerror(avahi_client_errno(c)));
    }
    if (!avahi_entry_group_is_empty(group_)) return;
    for (;;) {
      int error = avahi_entry_group_add_service_strlst(group_, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AvahiPublishFlags(0),
                                                       name_.text, kServiceType, nullptr, nullptr,
                                                       static_cast<std::uint16_t>(rep_port_), txt_.get());
      if (error == AVAHI_ERR_COLLISION) {
        name_.replace_with_alternative();
        continue;
      }
      if (error < 0) return fail(std::string("Avahi: cannot add the service: ") + avahi_strerror(error));
      break;
    }
    if (int error = avahi_entry_group_commit(group_); error < 0)
      return fail(std::string("Avahi: cannot commit the service: ") + avahi_strerror(error));
  }

  static void on_group(AvahiEntryGroup* g, AvahiEntryGroupState state, void* userdata) {
    auto* self = static_cast<AvahiPublication*>(userdata);
    switch (state) {
      case AVAHI_ENTRY_GROUP_ESTABLISHED:
        log().info("Avahi: published '{}' ({}) on port {}", self->name_.text, kServiceType, self->rep_port_);
        self->set_established(true);
        break;
      case AVAHI_ENTRY_GROUP_COLLISION: {
        // Someone else has our name: take the next alternative and retry.
        self->name_.replace_with_alternative();
        log().warn("Avahi: service name collision, renaming to '{}'", self->name_.text);
        self->set_established(false);
        avahi_entry_group_reset(g);
        self->create_service(avahi_entry_group_get_client(g));
        break;
      }
      case AVAHI_ENTRY_GROUP_FAILURE:
        self->fail(std::string("Avahi: entry group failure: ") +
                   avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
        break;
      case AVAHI_ENTRY_GROUP_UNCOMMITED:
      case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
  }

  static void on_client(AvahiClient* c, AvahiClientState state, void* userdata) {
    auto* self = static_cast<AvahiPublication*>(userdata);
    switch (state) {
      case AVAHI_CLIENT_S_RUNNING:
        self->create_service(c);
        break;
      case AVAHI_CLIENT_S_COLLISION:
      case AVAHI_CLIENT_S_REGISTERING:
        // The host name changed: withdraw and re-register once running again.
        if (self->group_) avahi_entry_group_reset(self->group_);
        self->set_established(false);
        break;
      case AVAHI_CLIENT_FAILURE:
        self->fail(no_daemon_text(avahi_client_errno(c)));
        break;
      case AVAHI_CLIENT_CONNECTING:
        break;
    }
  }
};

std::unique_ptr<avahi_module::Publication> publish(const std::string& store, const std::string& alias,
                                                   const std::string& uuid, int rep_port, int pub_port) {
  return std::make_unique<AvahiPublication>(store, alias, uuid, rep_port, pub_port);
}

// ---- browsing --------------------------------------------------------------------

struct Browse {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<AvahiFound> found;
  int pending = 0;          // resolvers not yet answered
  bool all_for_now = false;
  bool failed = false;

  bool done() const { return failed || (all_for_now && pending == 0); }

  void finish_one() {
    std::lock_guard lock(mutex);
    --pending;
    changed.notify_all();
  }

  static void on_resolved(AvahiServiceResolver* r, AvahiIfIndex, AvahiProtocol, AvahiResolverEvent event,
                          const char* name, const char*, const char*, const char* host_name, const AvahiAddress* a,
                          uint16_t port, AvahiStringList* txt, AvahiLookupResultFlags, void* userdata) {
    auto* self = static_cast<Browse*>(userdata);
    if (event == AVAHI_RESOLVER_FOUND) {
      AvahiFound entry;
      entry.name = name ? name : "";
      entry.host = host_name ? host_name : "";
      char address[AVAHI_ADDRESS_STR_MAX] = {};
      if (a) avahi_address_snprint(address, sizeof address, a);
      entry.address = address;
      entry.port = port;
      for (AvahiStringList* item = txt; item; item = avahi_string_list_get_next(item)) {
        char* key = nullptr;
        char* value = nullptr;
        if (avahi_string_list_get_pair(item, &key, &value, nullptr) == 0) {
          entry.txt[key] = value ? value : "";
          avahi_free(key);
          avahi_free(value);
        }
      }
      std::lock_guard lock(self->mutex);
      auto same = [&](const AvahiFound& f) {
        return f.name == entry.name && f.address == entry.address && f.port == entry.port;
      };
      if (std::none_of(self->found.begin(), self->found.end(), same)) self->found.push_back(std::move(entry));
    } else {
      log().debug("Avahi: cannot resolve '{}': {}", name ? name : "",
                  avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
    }
    avahi_service_resolver_free(r);
    self->finish_one();
  }

  static void on_browse(AvahiServiceBrowser* b, AvahiIfIndex interface, AvahiProtocol protocol,
                        AvahiBrowserEvent event, const char* name, const char* type, const char* domain,
                        AvahiLookupResultFlags, void* userdata) {
    auto* self = static_cast<Browse*>(userdata);
    switch (event) {
      case AVAHI_BROWSER_NEW: {
        AvahiClient* client = avahi_service_browser_get_client(b);
        {
          std::lock_guard lock(self->mutex);
          ++self->pending;
        }
        if (!avahi_service_resolver_new(client, interface, protocol, name, type, domain, AVAHI_PROTO_UNSPEC,
                                        AvahiLookupFlags(0), &Browse::on_resolved, self)) {
          log().debug("Avahi: cannot start resolving '{}': {}", name, avahi_strerror(avahi_client_errno(client)));
          self->finish_one();
        }
        break;
      }
      case AVAHI_BROWSER_ALL_FOR_NOW: {
        std::lock_guard lock(self->mutex);
        self->all_for_now = true;
        self->changed.notify_all();
        break;
      }
      case AVAHI_BROWSER_FAILURE: {
        log().warn("Avahi: browsing failed: {}", avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
        std::lock_guard lock(self->mutex);
        self->failed = true;
        self->changed.notify_all();
        break;
      }
      case AVAHI_BROWSER_REMOVE:
      case AVAHI_BROWSER_CACHE_EXHAUSTED:
        break;
    }
  }
};

void ignore_client_state(AvahiClient*, AvahiClientState, void*) {}

std::vector<AvahiFound> browse_services(double timeout_s) {
  Browse browse;
  PollPtr poll = make_poll();
  int error = 0;
  ClientPtr client(avahi_client_new(avahi_threaded_poll_get(poll.get()), AvahiClientFlags(0), &ignore_client_state,
                                    nullptr, &error));
  if (!client) {
    log().warn("{}", no_daemon_text(error));
    return {};
  }
  // The browser is freed with the client.
  if (!avahi_service_browser_new(client.get(), AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, kServiceType, nullptr,
                                 AvahiLookupFlags(0), &Browse::on_browse, &browse)) {
    log().warn("Avahi: cannot browse {}: {}", kServiceType, avahi_strerror(avahi_client_errno(client.get())));
    return {};
  }
  if (avahi_threaded_poll_start(poll.get()) < 0) {
    log().warn("Avahi: cannot start the poll thread");
    return {};
  }
  {
    std::unique_lock lock(browse.mutex);
    browse.changed.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return browse.done(); });
  }
  avahi_threaded_poll_stop(poll.get());
  client.reset();
  std::lock_guard lock(browse.mutex);
  return std::move(browse.found);
}

const avahi_module::Table kTable{avahi_module::kAbiVersion, &publish, &browse_services};

}  // namespace
}  // namespace mktl::discovery

extern "C" __attribute__((visibility("default"))) const mktl::discovery::avahi_module::Table* mktl_avahi_module() {
  return &mktl::discovery::kTable;
}
static_assert(std::is_same_v<decltype(&mktl_avahi_module), mktl::discovery::avahi_module::EntryPoint>);
