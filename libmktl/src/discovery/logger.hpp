// The "mktl.discovery" logger, fetched once (the lookup takes a lock).
#pragma once

#include "config/logger.hpp"

namespace mktl::discovery {

inline spdlog::logger& log() {
  static const std::shared_ptr<spdlog::logger> logger = mktl::logger("mktl.discovery");
  return *logger;
}

}  // namespace mktl::discovery
