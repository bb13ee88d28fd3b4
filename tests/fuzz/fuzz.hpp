// Shared by the fuzz targets (tests/fuzz/): each target is one
// LLVMFuzzerTestOneInput, linked either with libFuzzer (clang, MKTL_FUZZ) or
// with replay_main.cpp (the normal build replays the corpora and regressions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace mktl::fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A broken promise of the code under test (not a thrown error, which bad
// input may rightly cause): report it and abort, so libFuzzer saves the input.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}
inline void expect(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// Splits on `sep`, at most `max` pieces (the last keeps the rest).
inline std::vector<std::string> split(std::string_view s, char sep, std::size_t max) {
  std::vector<std::string> out;
  while (out.size() + 1 < max) {
    auto at = s.find(sep);
    if (at == std::string_view::npos) break;
    out.emplace_back(s.substr(0, at));
    s.remove_prefix(at + 1);
  }
  out.emplace_back(s);
  return out;
}

// Library logging off unless $MKTL_LOG asks (a log line per input would make
// the fuzzer crawl); call before the first logger is made.
inline void quiet() { ::setenv("MKTL_LOG", "off", 0); }

// A directory of this process's own, removed at exit: on /dev/shm when there
// is one (files written per input cost no disk), else $TMPDIR.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("mktl-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    static struct Cleanup {
      fs::path path;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(path, ec);
      }
    } cleanup{d};
    return d;
  }();
  return dir;
}

// Writes `content` to scratch()/name and returns the path.
inline std::string write_file(const std::string& name, std::string_view content) {
  auto path = (scratch() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) fail("cannot write " + path);
  return path;
}

}  // namespace mktl::fuzz

#include <mktl/error.hpp>

namespace mktl::fuzz {

// Runs `f`; an mktl::Error is what bad input may cause (false), anything
// else escaping is a finding: the functions fuzzed promise mktl errors only.
template <class F>
bool guarded(const char* what, F&& f) {
  try {
    f();
    return true;
  } catch (const mktl::Error&) {
    return false;
  } catch (const std::exception& e) {
    fail(std::string(what) + " threw a non-mktl exception: " + e.what());
  }
}

}  // namespace mktl::fuzz
