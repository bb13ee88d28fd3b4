// Names the calling thread as top -H, ps -L, perf and gdb show it ("mktl-io",
// "mktl-writer", ...; Linux keeps 15 bytes). Best effort: a failure changes
// nothing else.
#pragma once

#include <pthread.h>

namespace mktl::detail {

inline void name_this_thread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace mktl::detail
