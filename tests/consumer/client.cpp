// myclient: a small program using mktl::Client, built against an installed
// mktl by tests/cli/test_install.sh. It reaches one daemon by its request
// address (no discovery, no registry):
//   myclient ENDPOINT get KEY             prints "KEY = VALUE"
//   myclient ENDPOINT set KEY NUMBER      sets it, waiting for the daemon
//   myclient ENDPOINT wait KEY ABOVE S    exits 0 once a broadcast of KEY is
//                                         above ABOVE, 1 after S seconds
// Errors go to stderr with exit 1; bad usage exits 2.
#include <mktl/mktl.hpp>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>

namespace {

int usage() {
  std::cerr << "usage: myclient ENDPOINT get KEY | set KEY NUMBER | wait KEY ABOVE SECONDS\n";
  return 2;
}

// True once a broadcast of `key` exceeds `above`, false after `seconds`.
bool wait_above(mktl::Client& client, const std::string& key, double above, double seconds) {
  std::mutex mutex;
  std::condition_variable changed;
  double last = 0;
  bool seen = false;
  auto subscription = client.subscribe(key, [&](const std::string&, const mktl::Reading& reading) {
    if (!reading.value.is_number()) return;
    std::lock_guard lock(mutex);
    last = reading.value.get<double>();
    seen = true;
    changed.notify_all();
  });
  std::unique_lock lock(mutex);
  bool above_seen = changed.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return seen && last > above; });
  std::cout << key << (above_seen ? " rose to " : " stayed at ") << last << "\n";
  return above_seen;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return usage();
  const std::string endpoint = argv[1], command = argv[2], key = argv[3];
  try {
    mktl::Client client;
    client.connect(endpoint);
    if (command == "get" && argc == 4) {
      std::cout << key << " = " << client.get(key).value << "\n";
      return 0;
    }
    if (command == "set" && argc == 5) {
      client.set(key, mktl::Json(std::stod(argv[4])));
      return 0;
    }
    if (command == "wait" && argc == 6) return wait_above(client, key, std::stod(argv[4]), std::stod(argv[5])) ? 0 : 1;
    return usage();
  } catch (const std::exception& e) {
    std::cerr << "myclient: " << e.what() << "\n";
    return 1;
  }
}
