// mkweb's logger: "mkweb", made from the default one on first use.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace mkweb {

inline std::shared_ptr<spdlog::logger> log() {
  static auto logger = [] {
    auto l = spdlog::get("mkweb");
    return l ? l : spdlog::default_logger()->clone("mkweb");
  }();
  return logger;
}

}  // namespace mkweb
