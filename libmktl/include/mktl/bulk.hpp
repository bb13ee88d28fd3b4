// Bulk values: an n-dimensional array of a plain numpy dtype, carried as raw
// bytes in the extra frame of a message, with shape and dtype in the payload.
//
// A Bulk shares its bytes (it never copies them on its own): copies of a Bulk
// refer to the same buffer, kept alive by a shared owner. Immutable after
// construction, so it may be read from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace mktl {

// Bytes per element of a numpy dtype name ("uint8", "int16", "float64", ...).
// Returns 0 for a name mktl does not know.
std::size_t dtype_size(std::string_view dtype) noexcept;

template <class T>
constexpr const char* dtype_of() {
  if constexpr (std::is_same_v<T, std::uint8_t>) return "uint8";
  else if constexpr (std::is_same_v<T, std::int8_t>) return "int8";
  else if constexpr (std::is_same_v<T, std::uint16_t>) return "uint16";
  else if constexpr (std::is_same_v<T, std::int16_t>) return "int16";
  else if constexpr (std::is_same_v<T, std::uint32_t>) return "uint32";
  else if constexpr (std::is_same_v<T, std::int32_t>) return "int32";
  else if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
  else if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else static_assert(sizeof(T) == 0, "no numpy dtype for this type");
}

class Bulk {
 public:
  Bulk() = default;
  // Shares `owner`'s lifetime for the bytes [data, data+size).
  Bulk(std::vector<std::int64_t> shape, std::string dtype, std::shared_ptr<const void> owner,
       const std::byte* data, std::size_t size)
      : shape_(std::move(shape)), dtype_(std::move(dtype)), owner_(std::move(owner)), data_(data), size_(size) {}

  // Takes ownership of a vector of elements (moved, not copied).
  template <class T>
  static Bulk from_vector(std::vector<T> elements, std::vector<std::int64_t> shape = {}) {
    if (shape.empty()) shape.push_back(static_cast<std::int64_t>(elements.size()));
    auto holder = std::make_shared<std::vector<T>>(std::move(elements));
    auto* bytes = reinterpret_cast<const std::byte*>(holder->data());
    std::size_t size = holder->size() * sizeof(T);
    return Bulk(std::move(shape), dtype_of<T>(), std::move(holder), bytes, size);
  }
  // Takes ownership of raw bytes held in a string.
  static Bulk from_bytes(std::string bytes, std::vector<std::int64_t> shape, std::string dtype) {
    auto holder = std::make_shared<std::string>(std::move(bytes));
    auto* data = reinterpret_cast<const std::byte*>(holder->data());
    std::size_t size = holder->size();
    return Bulk(std::move(shape), std::move(dtype), std::move(holder), data, size);
  }

  const std::vector<std::int64_t>& shape() const noexcept { return shape_; }
  const std::string& dtype() const noexcept { return dtype_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  const std::shared_ptr<const void>& owner() const noexcept { return owner_; }
  // Number of elements the shape describes; -1 when a dimension is negative
  // or the product does not fit in 64 bits (a shape from a peer is its text:
  // nothing guarantees it describes the bytes).
  std::int64_t element_count() const noexcept {
    std::int64_t n = 1;
    for (auto d : shape_)
      if (d < 0) return -1;
    for (auto d : shape_)
      if (d == 0) return 0;
    for (auto d : shape_)
      if (__builtin_mul_overflow(n, d, &n)) return -1;
    return n;
  }
  // Typed view; throws mktl::TypeError when T does not match dtype().
  template <class T>
  std::span<const T> as() const;

  friend bool operator==(const Bulk& a, const Bulk& b) noexcept {
    if (a.shape_ != b.shape_ || a.dtype_ != b.dtype_ || a.size_ != b.size_) return false;
    if (a.data_ == b.data_) return true;
    for (std::size_t i = 0; i < a.size_; ++i)
      if (a.data_[i] != b.data_[i]) return false;
    return true;
  }

 private:
  std::vector<std::int64_t> shape_;
  std::string dtype_;
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

void throw_dtype_mismatch(const std::string& have, const char* want);

template <class T>
std::span<const T> Bulk::as() const {
  if (dtype_ != dtype_of<T>()) throw_dtype_mismatch(dtype_, dtype_of<T>());
  return {reinterpret_cast<const T*>(data_), size_ / sizeof(T)};
}

}  // namespace mktl
