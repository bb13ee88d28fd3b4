// The fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput once on
// each file named (a directory: on each file in it, sorted), so the normal
// and sanitizer builds check every corpus and regression input.
// Usage: fuzz_TARGET_replay FILE|DIR...   Exit 0 when every input ran.
#include "fuzz.hpp"

#include <algorithm>
#include <iostream>
#include <iterator>

extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int*, char***) { return 0; }

int main(int argc, char** argv) {
  LLVMFuzzerInitialize(&argc, &argv);
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      for (auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(p)) {
      files.push_back(p);
    } else {
      std::cerr << argv[0] << ": no such file or directory: " << p << "\n";
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  }
  std::cout << "replayed " << files.size() << " input(s)\n";
  return files.empty() ? 2 : 0;
}
