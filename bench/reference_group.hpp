// Group `reference` of mktl_bench: with $MKTL_REFERENCE naming a checkout of
// the Python reference, its daemon and client on the same workloads as
// mktl's. See bench/reference_group.cpp and docs/performance.md, "Against
// the Python reference".
#pragma once

#include "series.hpp"

#include <vector>

namespace bench::reference {

struct Settings {
  int reps = 7;
  double duration = 0.4;  // seconds of each workload per repetition
  bool quick = false;     // a few iterations, and no 10,000-item start-up
};

struct ReferenceSeries {
  const char* name;
  const char* what;
  Unit unit;
};

// What bench/reference_client.py reports ("result series=NAME value=X").
inline constexpr ReferenceSeries kReferenceSeries[] = {
    {"ref_get", "reference GET sequential (protocol.request.send)", Unit::rate},
    {"ref_get_refresh", "reference Item.get(refresh=True) sequential", Unit::rate},
    {"ref_set", "reference SET sequential (Item.set, REP awaited)", Unit::rate},
    {"ref_bcast", "reference broadcasts received (register callback)", Unit::rate},
    {"ref_publish", "… reference daemon side: Item.publish() calls", Unit::rate},
    {"ref_bcast_share", "… share of reference broadcasts received (%)", Unit::count},
};

// Runs the group and returns its series in table order: none without
// $MKTL_REFERENCE. Does not throw when the reference fails: the rows measured
// until then are kept, and a row `reference` says what went wrong.
std::vector<Series> run(const Settings& settings);

}  // namespace bench::reference
