// AvahiPublisher and avahi_browse over the DNS-SD module (avahi_module.hpp),
// which is loaded here on first use: libmktl itself does not link Avahi.
#include "discovery/avahi.hpp"

#include "discovery/avahi_module.hpp"
#include "discovery/logger.hpp"

#include <mktl/error.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

namespace mktl::discovery {

namespace avahi_module {

namespace {

std::string last_dl_error() {
  const char* text = dlerror();
  return text ? text : "unknown dlopen error";
}

// Where libmktl.so itself was loaded from ("" if that cannot be told).
std::string library_directory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&library_directory), &info) == 0 || !info.dli_fname) return {};
  std::string file = info.dli_fname;
  auto slash = file.rfind('/');
  return slash == std::string::npos ? std::string() : file.substr(0, slash + 1);
}

Loaded open_module(const std::string& file) {
  dlerror();
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) return {nullptr, last_dl_error()};
  std::string error;
  if (auto entry = reinterpret_cast<EntryPoint>(dlsym(handle, kEntryPoint)); !entry) {
    error = file + ": no " + kEntryPoint + " (" + last_dl_error() + ")";
  } else if (const Table* table = entry(); !table || table->abi_version != kAbiVersion) {
    error = file + ": module ABI version " + std::to_string(table ? table->abi_version : 0) +
            ", this libmktl needs " + std::to_string(kAbiVersion);
  } else {
    return {table, {}};   // kept loaded for the life of the process
  }
  dlclose(handle);
  return {nullptr, error};
}

}  // namespace

Loaded load(const std::string& path) {
  if (!path.empty()) return open_module(path);
  // Next to libmktl.so first, so that a build tree or an install prefix uses
  // its own module. A module found there but unusable (libavahi-client
  // missing, say) is reported as such rather than searched for elsewhere.
  std::string errors;
  if (std::string dir = library_directory(); !dir.empty()) {
    std::string file = dir + kFileName;
    Loaded loaded = open_module(file);
    if (loaded.table || ::access(file.c_str(), F_OK) == 0) return loaded;
    errors = loaded.error + "; ";
  }
  Loaded loaded = open_module(kFileName);
  if (!loaded.table) loaded.error = errors + loaded.error;
  return loaded;
}

const Loaded& module() {
  static const Loaded loaded = [] {
    const char* path = std::getenv(kPathVariable);
    Loaded result = load(path ? path : "");
    if (result.table) log().debug("DNS-SD module loaded");
    return result;
  }();
  return loaded;
}

}  // namespace avahi_module

namespace {

std::string unavailable_text(const avahi_module::Loaded& loaded) {
  return "DNS-SD unavailable: cannot load the Avahi module: " + loaded.error;
}

}  // namespace

struct AvahiPublisher::Impl {
  std::unique_ptr<avahi_module::Publication> publication;
};

AvahiPublisher::AvahiPublisher(const std::string& store, const std::string& alias, const std::string& uuid,
                               int rep_port, int pub_port)
    : impl_(std::make_unique<Impl>()) {
  const auto& loaded = avahi_module::module();
  if (!loaded.table) throw RuntimeError(unavailable_text(loaded));
  impl_->publication = loaded.table->publish(store, alias, uuid, rep_port, pub_port);
}

AvahiPublisher::~AvahiPublisher() = default;

bool AvahiPublisher::wait_established(double timeout_s) { return impl_->publication->wait_established(timeout_s); }

std::string AvahiPublisher::name() const { return impl_->publication->name(); }

std::vector<AvahiFound> avahi_browse(double timeout_s) {
  const auto& loaded = avahi_module::module();
  if (!loaded.table) {
    log().warn("{}", unavailable_text(loaded));
    return {};
  }
  return loaded.table->browse(timeout_s);
}

}  // namespace mktl::discovery
