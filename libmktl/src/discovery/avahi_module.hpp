// The boundary between libmktl and its DNS-SD module, libmktl_avahi.so.
//
// libavahi-client pulls in D-Bus, systemd, gcrypt and a dozen more libraries,
// which every program linked with libmktl would load at start-up although
// only a daemon publishing by DNS-SD or a client browsing with it needs them.
// So the Avahi code is built as a separate module that avahi.cpp loads with
// dlopen on first use, and only this header is shared by both sides.
//
// The module links libmktl and is built with it, by the same compiler: C++
// types and exceptions (mktl::RuntimeError) cross the boundary. kAbiVersion
// still guards against a module left over from another build; bump it on any
// change to this header.
#pragma once

#include "discovery/avahi.hpp"

#include <memory>
#include <string>
#include <vector>

namespace mktl::discovery::avahi_module {

inline constexpr int kAbiVersion = 1;
// The file name of the module, installed next to libmktl.so.
inline constexpr const char* kFileName = "libmktl_avahi.so";
// The one symbol the module exports: `const Table* mktl_avahi_module()`.
inline constexpr const char* kEntryPoint = "mktl_avahi_module";
// Names another module file to load instead of searching for it.
inline constexpr const char* kPathVariable = "MKTL_AVAHI_MODULE";

// One registration with avahi-daemon; AvahiPublisher's implementation.
// Threading promise: as AvahiPublisher's.
class Publication {
 public:
  virtual ~Publication() = default;
  virtual bool wait_established(double timeout_s) = 0;
  virtual std::string name() const = 0;
};

struct Table {
  int abi_version;
  // AvahiPublisher's constructor: throws mktl::RuntimeError when
  // avahi-daemon cannot be reached.
  std::unique_ptr<Publication> (*publish)(const std::string& store, const std::string& alias, const std::string& uuid,
                                          int rep_port, int pub_port);
  // avahi_browse().
  std::vector<AvahiFound> (*browse)(double timeout_s);
};

using EntryPoint = const Table* (*)();

// What loading the module gave: its table, or why there is none.
struct Loaded {
  const Table* table = nullptr;
  std::string error;
};

// Loads the module from `path`, or when `path` is empty from the directory of
// libmktl.so and then by plain file name through the library search path
// (LD_LIBRARY_PATH, rpath). Never unloads it. Each call loads again (dlopen
// counts references); use module() for the process's copy.
Loaded load(const std::string& path);

// The process's module, loaded on first call from $MKTL_AVAHI_MODULE or by
// load("") and kept for the life of the process, failure included. Thread-safe.
const Loaded& module();

}  // namespace mktl::discovery::avahi_module

extern "C" const mktl::discovery::avahi_module::Table* mktl_avahi_module();
