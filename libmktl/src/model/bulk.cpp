// Bulk value helpers that need no template: dtype sizes and the mismatch error.
#include <mktl/bulk.hpp>
#include <mktl/error.hpp>

namespace mktl {

std::size_t dtype_size(std::string_view dtype) noexcept {
  struct Entry {
    std::string_view name;
    std::size_t size;
  };
  // The plain numpy dtype names a peer may send (native byte order).
  static constexpr Entry kTable[] = {
      {"uint8", 1},   {"int8", 1},    {"bool", 1},       {"uint16", 2},      {"int16", 2},
      {"float16", 2}, {"uint32", 4},  {"int32", 4},      {"float32", 4},     {"uint64", 8},
      {"int64", 8},   {"float64", 8}, {"complex64", 8},  {"complex128", 16},
  };
  for (const auto& e : kTable)
    if (e.name == dtype) return e.size;
  return 0;
}

void throw_dtype_mismatch(const std::string& have, const char* want) {
  throw TypeError("bulk data is " + have + ", not " + want);
}

}  // namespace mktl
