// The report of mktl_bench: the table of every row (median, min-max), the
// targets evaluated against the rows, and its Markdown copy
// (scripts/bench.sh writes it into docs/performance.md).
#include "report.hpp"

#include "bench_util.hpp"
#include "reference_group.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <sstream>

namespace bench {

namespace {

// Columns `text` takes on a terminal: UTF-8 characters, not bytes.
std::size_t columns(const std::string& text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// `text` padded to `width` columns, with at least two spaces after it.
std::string pad(const std::string& text, std::size_t width) {
  std::size_t n = columns(text);
  return text + std::string(n + 2 > width ? 2 : width - n, ' ');
}

// Ratios to the Python reference, for information only. The two sides are
// not interleaved (the reference runs after every mktl benchmark), so these
// are ratios of medians, not medians of pairwise ratios. Absent without
// MKTL_REFERENCE.
void add_reference_targets(const Results& r, std::vector<Target>& targets) {
  bool any = std::any_of(std::begin(reference::kReferenceSeries), std::end(reference::kReferenceSeries),
                         [&](const reference::ReferenceSeries& s) { return r.find(s.name) != nullptr; });
  if (!any && !r.find("ref_mk_get") && !r.find("ref_ready10k")) return;
  auto ratio = [&](const std::string& what, const std::string& a, const std::string& b) {
    Target t;
    t.what = what;
    t.goal = "—";
    t.info = true;
    auto* sa = r.find(a);
    auto* sb = r.find(b);
    if (!sa || !sb) {
      t.shown = "n/a";
    } else {
      double ma = bench::median(sa->values), mb = bench::median(sb->values);
      double m = mb > 0 ? ma / mb : 0;
      t.shown = fixed(m, m < 10 ? 2 : 1) + "× (" + show(ma, sa->unit) + " vs " + show(mb, sb->unit) + ")";
    }
    targets.push_back(t);
  };
  ratio("(info) mktl GET / reference GET, sequential", "mktl_get", "ref_get");
  ratio("(info) mktl SET / reference SET, sequential", "mktl_set", "ref_set");
  ratio("(info) mktl / reference broadcasts received", "mktl_bcast", "ref_bcast");
  ratio("(info) reference / mktl `mk get` time", "ref_mk_get", "mk_get");
  ratio("(info) reference / mktl 10,000-item start to ready", "ref_ready10k", "ready10k");
  ratio("(info) reference / mktl 10,000-item RSS", "ref_rss10k", "rss10k");
  ratio("(info) reference daemon, mktl / reference client: GET", "mktl_on_ref_get", "ref_get");
  ratio("(info) reference daemon, mktl / reference client: SET", "mktl_on_ref_set", "ref_set");
}

}  // namespace

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string show(double v, Unit unit) {
  switch (unit) {
    case Unit::rate:
      if (v >= 1e6) return fixed(v / 1e6, 2) + " M/s";
      if (v >= 1e3) return fixed(v / 1e3, 1) + " k/s";
      return fixed(v, 0) + " /s";
    case Unit::bytes_rate: return fixed(v / 1e9, 2) + " GB/s";
    case Unit::ms: return fixed(v, v < 10 ? 2 : 1) + " ms";
    case Unit::us: return fixed(v, v < 10 ? 2 : 1) + " µs";
    case Unit::mb: return fixed(v, 1) + " MB";
    case Unit::count: return fixed(v, 0);
    case Unit::number: return fixed(v, 1);
  }
  return fixed(v, 2);
}

void report(const Results& results, const std::vector<Target>& targets, const std::string& markdown, int reps,
            double duration) {
  std::ostringstream md;
  std::size_t name_width = 0, target_width = 0;
  for (auto& name : results.order()) name_width = std::max(name_width, columns(results.at(name).what) + 2);
  for (auto& t : targets) target_width = std::max(target_width, columns(t.what) + 2);
  std::cout << "\n" << pad("benchmark", name_width) << pad("median", 14) << "min - max\n";
  md << "| benchmark | median | min – max | runs |\n|---|---:|---:|---:|\n";
  for (auto& name : results.order()) {
    auto& s = results.at(name);
    if (s.values.empty()) {
      std::cout << pad(s.what, name_width) << "skipped: " << s.note << "\n";
      md << "| " << s.what << " | skipped | " << s.note << " | 0 |\n";
      continue;
    }
    std::string med = show(bench::median(s.values), s.unit);
    std::string range = show(bench::min_of(s.values), s.unit) + " - " + show(bench::max_of(s.values), s.unit);
    std::cout << pad(s.what, name_width) << pad(med, 14) << range << "\n";
    md << "| " << s.what << " | " << med << " | " << show(bench::min_of(s.values), s.unit) << " – "
       << show(bench::max_of(s.values), s.unit) << " | " << s.values.size() << " |\n";
  }
  std::cout << "\n" << pad("target", target_width) << pad("measured", 28) << pad("goal", 12) << "\n";
  md << "\n| target | measured (median, min – max) | goal | result |\n|---|---:|---:|---|\n";
  int missed = 0;
  for (auto& t : targets) {
    std::string verdict = t.info ? "info" : t.skipped ? "SKIP" : t.pass ? "PASS" : "MISS";
    if (!t.info && !t.skipped && !t.pass) ++missed;
    std::cout << pad(t.what, target_width) << pad(t.shown, 28) << pad(t.goal, 12) << verdict << "\n";
    md << "| " << t.what << " | " << t.shown << " | " << t.goal << " | " << verdict << " |\n";
  }
  std::cout << "\n" << missed << " target(s) missed\n";
  if (!markdown.empty()) {
    std::ofstream out(markdown);
    out << "Repetitions per benchmark: " << reps << " (" << duration
        << " s per timed run, baseline and mktl interleaved).\n\n"
        << md.str();
  }
}

std::vector<Target> evaluate(const Results& r) {
  std::vector<Target> targets;
  auto ratio_target = [&](const std::string& what, const std::string& a, const std::string& b, double goal) {
    Target t;
    t.what = what;
    t.goal = goal > 0 ? "≥ " + fixed(goal, 2) + "×" : "—";
    auto v = r.ratios(a, b);
    if (v.empty()) {
      t.skipped = true;
      t.shown = "n/a";
    } else {
      double m = bench::median(v);
      // A median that rounds to the goal is shown with a third digit, so that
      // "0.60x MISS" cannot appear.
      int digits = goal > 0 && std::abs(m - goal) < 0.005 ? 3 : 2;
      t.shown = fixed(m, digits) + "× (" + fixed(bench::min_of(v), 2) + " – " + fixed(bench::max_of(v), 2) + ")";
      t.pass = m >= goal;
    }
    targets.push_back(t);
  };
  auto abs_target = [&](const std::string& what, const std::string& name, double goal, bool at_least,
                        const std::string& goal_text) {
    Target t;
    t.what = what;
    t.goal = goal_text;
    auto* s = r.find(name);
    if (!s) {
      t.skipped = true;
      t.shown = "n/a";
    } else {
      double m = bench::median(s->values);
      t.shown = show(m, s->unit);
      if (s->values.size() > 1) t.shown += " (" + show(bench::min_of(s->values), s->unit) + " – " + show(bench::max_of(s->values), s->unit) + ")";
      t.pass = at_least ? m >= goal : m < goal;
    }
    targets.push_back(t);
  };
  ratio_target("GET sequential / raw round trip with JSON", "mktl_get", "raw_rt_json", 0.9);
  ratio_target("SET sequential / raw round trip with JSON", "mktl_set", "raw_rt_json", 0.85);
  ratio_target("GET 64 in flight / raw 64 in flight", "mktl_get64", "raw_inflight", 0.6);
  ratio_target("broadcasts received / raw PUB->SUB", "mktl_bcast", "raw_pubsub", 0.5);
  ratio_target("transactions, 64 in flight / raw SQLite loop, same batches", "mktl_txn64", "raw_txn64", 0.5);
  // A ratio shown for diagnosis, with no goal.
  auto info_ratio = [&](const std::string& what, const std::string& a, const std::string& b) {
    ratio_target(what, a, b, 0);
    targets.back().info = true;
  };
  // Diagnosis: where the sequential GET gap lies (daemon side or client side).
  info_ratio("(info) mktl daemon, raw client / raw server, JSON + ACK", "raw_to_daemon_get", "raw_rt_json_ack");
  info_ratio("(info) mktl GET / raw client on the same mktl daemon", "mktl_get", "raw_to_daemon_get");
  info_ratio("(info) mktl daemon SET, raw client / raw server, JSON + ACK", "raw_to_daemon_set", "raw_rt_json_ack");
  info_ratio("(info) mktl SET / raw client on the same mktl daemon", "mktl_set", "raw_to_daemon_set");
  // The protocol's ACK makes three messages of each request where the raw
  // baseline has two: this row shows what that alone costs.
  info_ratio("(info) raw 64 in flight with ACK / without", "raw_inflight_ack", "raw_inflight");
  info_ratio("(info) mktl GET 64 in flight / raw 64 in flight with ACK", "mktl_get64", "raw_inflight_ack");
  info_ratio("(info) mktl daemon, raw client / raw server with ACK, 64 in flight", "raw_to_daemon_inflight",
             "raw_inflight_ack");
  info_ratio("(info) mktl GET / raw client on the same mktl daemon, 64 in flight", "mktl_get64",
             "raw_to_daemon_inflight");
  info_ratio("(info) transactions, 1 in flight / raw SQLite loop, 1 per COMMIT", "mktl_txn1", "raw_txn1");
  // Live collections (bench/live_group.cpp): SETs at 64 in flight on one markd.
  ratio_target("live: stream changes received / plain item broadcasts", "live_stream", "live_plain", 0.5);
  info_ratio("(info) live: stream through CollectionView / plain item broadcasts", "live_view", "live_plain");
  info_ratio("(info) live: keyed through CollectionView / plain item broadcasts", "live_keyed", "live_plain");
  info_ratio("(info) live: stream, 16 rows per transaction / plain item broadcasts", "live_stream16", "live_plain");
  info_ratio("(info) live: stream changes received / transactions answered", "live_stream", "live_stream_set");
  info_ratio("(info) live: transactions / plain SETs answered", "live_stream_set", "live_plain_set");
  if (r.find("live_stream") && r.find("mktl_bcast")) {
    // Not interleaved (group bcast runs first): a ratio of medians.
    double a = bench::median(r.find("live_stream")->values), b = bench::median(r.find("mktl_bcast")->values);
    targets.push_back(Target{"(info) live: stream changes / Item::publish broadcasts (group bcast)",
                             fixed(b > 0 ? a / b : 0, 2) + "× (" + show(a, Unit::rate) + " vs " + show(b, Unit::rate) + ")",
                             "—", false, false, true});
  }
  abs_target("bulk GET of 8 MiB", "mktl_bulk_get", 1e9, true, "≥ 1 GB/s");
  abs_target("bulk PUB of 8 MiB", "mktl_bulk_pub", 1e9, true, "≥ 1 GB/s");
  abs_target("`mk get` of one key, whole process", "mk_get", 10, false, "< 10 ms");
  abs_target("10,000-item daemon: construction to ready", "ready10k_inproc", 500, false, "< 500 ms");
  abs_target("10,000-item daemon: process start to ready", "ready10k", 500, false, "< 500 ms");
  abs_target("10,000-item daemon: RSS", "rss10k", 50, false, "< 50 MB");
  {
    Target t;
    t.what = "10,000-item daemon: threads (same as 7 items, ≤ 16)";
    t.goal = "constant";
    auto* big = r.find("threads10k");
    auto* small = r.find("threads_small");
    if (!big || !small) {
      t.skipped = true;
      t.shown = "n/a";
    } else {
      double b = bench::max_of(big->values), s = bench::max_of(small->values);
      t.shown = fixed(b, 0) + " (vs " + fixed(s, 0) + ")";
      t.pass = b == s && b <= 16;
    }
    targets.push_back(t);
  }
  add_reference_targets(r, targets);
  return targets;
}

}  // namespace bench
