// A long-running client for the multi-host tests: subscribes to one item and
// GETs another every interval, printing one line per event, until SIGTERM or
// SIGINT. The test scripts read its output to see whether subscriptions
// resume and requests fail cleanly across faults, without a restart.
//
//   mh_client SUB_KEY GET_KEY [INTERVAL_MS]
//
// Lines (TIME is wall-clock seconds with milliseconds):
//   ready
//   SUB TIME KEY VALUE                   a broadcast of SUB_KEY
//   GET TIME ok SECONDS VALUE            a GET that succeeded, and how long it took
//   GET TIME ERRORTYPE SECONDS TEXT      a GET that failed (TimeoutError, ...)
// Exit status: 0 after SIGTERM/SIGINT, 1 when the subscription cannot be made, 2 usage.
#include <mktl/mktl.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

namespace {

std::atomic<bool> stopping{false};
std::mutex output;

double wall_clock() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void say(const std::string& text) {
  std::lock_guard lock(output);
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

std::string stamp(double t) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", t);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: mh_client SUB_KEY GET_KEY [INTERVAL_MS]\n";
    return 2;
  }
  const std::string sub_key = argv[1], get_key = argv[2];
  const int interval_ms = argc == 4 ? std::atoi(argv[3]) : 200;
  if (interval_ms <= 0) {
    std::cerr << "mh_client: INTERVAL_MS must be a positive number\n";
    return 2;
  }
  struct sigaction action {};
  action.sa_handler = [](int) { stopping = true; };
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  mktl::Client client;
  mktl::Subscription subscription;
  try {
    subscription = client.subscribe(sub_key, [](const std::string& key, const mktl::Reading& r) {
      say("SUB " + stamp(wall_clock()) + " " + key + " " + mktl::json::dump(r.value));
    });
  } catch (const std::exception& e) {
    std::cerr << "mh_client: cannot subscribe to " << sub_key << ": " << e.what() << "\n";
    return 1;
  }
  say("ready");
  while (!stopping) {
    double start = wall_clock();
    try {
      // Bounded: a GET whose daemon is gone must fail, not hang.
      mktl::Reading r = client.get(get_key, false, 1.0);
      say("GET " + stamp(start) + " ok " + stamp(wall_clock() - start) + " " + mktl::json::dump(r.value));
    } catch (const mktl::Error& e) {
      say("GET " + stamp(start) + " " + e.type() + " " + stamp(wall_clock() - start) + " " + e.text());
    } catch (const std::exception& e) {
      say("GET " + stamp(start) + " exception " + stamp(wall_clock() - start) + " " + e.what());
    }
    // Pacing between requests (not a wait for a condition).
    for (int slept = 0; slept < interval_ms && !stopping; slept += 10)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}
