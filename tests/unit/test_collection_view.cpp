// mktl::CollectionView against a fake daemon: a bare transport::Server that
// speaks the collections' wire contract (GET snapshot/since, broadcasts with
// seq, op, rowid and epoch) from a state the test drives, so the view's seq
// handling, dedupe, gap catch-up, resets and filter are proven on their own.
#include "support.hpp"

#include "transport/server.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_collection_view {

namespace {

using mktl::Json;

// One collection item "fake.live" of the given kind. Changes are made by the
// test (change(), remove(), reset(), restart()) and published as the daemon
// would, or held back (publish = false) to make a gap.
class FakeCollection {
 public:
  explicit FakeCollection(std::string kind) : kind_(std::move(kind)) {
    mktl::transport::ServerOptions options;
    options.rep_endpoint = "tcp://127.0.0.1:0";
    options.pub_endpoint = "tcp://127.0.0.1:0";
    server_ = std::make_unique<mktl::transport::Server>(
        options, [this](mktl::transport::Incoming&& request, mktl::transport::Reply reply) {
          dispatch(std::move(request), std::move(reply));
        });
    server_->start();
    epoch_ = kind_ == "stream" ? "" : "epoch-1";
  }
  ~FakeCollection() { server_->stop(); }

  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(server_->rep_port()); }

  // Insert or update `rowid` (stream: the seq is the rowid).
  void change(const Json& rowid, const Json& row, bool publish = true) {
    std::lock_guard lock(mutex_);
    std::string op = rows_.count(rowid) ? "update" : "insert";
    rows_[rowid] = row;
    record(op, rowid, row, true, publish);
  }
  void remove(const Json& rowid, bool publish = true) {
    std::lock_guard lock(mutex_);
    Json last = rows_.at(rowid);
    rows_.erase(rowid);
    record("delete", rowid, last, false, publish);
  }
  // Send the last change's broadcast again (a duplicate on the wire); with
  // no change yet, a broadcast of the current seq (nothing new either).
  void republish_last() {
    std::lock_guard lock(mutex_);
    if (log_.empty()) broadcast({{"value", nullptr}, {"seq", seq_}, {"time", 1.0}});
    else broadcast(log_.back());
  }
  // A broadcast of VALUE at the current seq (a duplicate for any view).
  void marker(const Json& value) {
    std::lock_guard lock(mutex_);
    broadcast({{"value", value}, {"seq", seq_}, {"time", 1.0}});
  }
  // The daemon lost track: changes are no longer held, a reset goes out.
  void reset(bool publish = true) {
    std::lock_guard lock(mutex_);
    if (kind_ != "stream") ++seq_;  // a stream's reset keeps its seq, the last rowid
    log_.clear();
    log_floor_ = seq_;
    if (publish)
      server_->publish("fake.live.", std::make_shared<const std::string>(
                                         Json{{"value", nullptr}, {"reset", true}, {"seq", seq_},
                                              {"epoch", epoch_}, {"time", 1.0}}.dump()));
  }
  // A new daemon: another epoch, seq from 0, nothing held.
  void restart() {
    std::lock_guard lock(mutex_);
    epoch_ = "epoch-" + std::to_string(++restarts_ + 1);
    seq_ = 0;
    log_.clear();
    log_floor_ = 0;
  }
  // Keep at most `n` changes for `since`.
  void set_log_limit(std::size_t n) {
    std::lock_guard lock(mutex_);
    log_limit_ = n;
  }
  void set_page_size(std::size_t n) {
    std::lock_guard lock(mutex_);
    page_size_ = n;
  }
  // Runs (on the server thread) before each snapshot page after the first.
  void between_pages(std::function<void()> f) {
    std::lock_guard lock(mutex_);
    between_pages_ = std::move(f);
  }

  // The rows a snapshot holds (a stream: its ring, the newest kRing).
  std::vector<mktl::CollectionRow> rows() {
    std::lock_guard lock(mutex_);
    std::vector<mktl::CollectionRow> out;
    for (auto& [rowid, row] : visible()) out.push_back({rowid, row});
    return out;
  }
  static constexpr std::size_t kRing = 4;
  std::int64_t seq() {
    std::lock_guard lock(mutex_);
    return seq_;
  }
  int since_requests() {
    std::lock_guard lock(mutex_);
    return since_requests_;
  }
  int snapshot_requests() {
    std::lock_guard lock(mutex_);
    return snapshot_requests_;
  }

 private:
  std::map<Json, Json> visible() const {
    if (kind_ != "stream" || rows_.size() <= kRing) return rows_;
    return {std::prev(rows_.end(), kRing), rows_.end()};
  }

  void record(const std::string& op, const Json& rowid, const Json& row, bool exists, bool publish) {
    seq_ = kind_ == "stream" ? rowid.get<std::int64_t>() : seq_ + 1;
    Json change = {{"op", op},      {"seq", seq_},      {"ref", "ref-" + std::to_string(seq_)},
                   {"rowid", rowid}, {"exists", exists}, {"value", row}, {"time", 1.0}};
    log_.push_back(change);
    while (log_.size() > log_limit_) {
      log_floor_ = log_.front()["seq"].get<std::int64_t>();
      log_.erase(log_.begin());
    }
    if (publish) broadcast(change);
  }
  void broadcast(const Json& change) {
    Json payload = change;
    payload["epoch"] = epoch_;
    server_->publish("fake.live.", std::make_shared<const std::string>(payload.dump()));
  }

  Json catalog() const {
    Json block = {{"store", "fake"},
                  {"alias", "fake1"},
                  {"uuid", "00000000-0000-0000-0000-000000000001"},
                  {"hash", "1"},
                  {"provenance", Json::array({{{"stratum", 0},
                                               {"hostname", "127.0.0.1"},
                                               {"rep", server_->rep_port()},
                                               {"pub", server_->pub_port()}}})},
                  {"items",
                   {{"live", {{"type", "collection"}, {"settable", false}, {"collection", description()}}},
                    {"plain", {{"type", "numeric"}}}}}};
    return {{"value", {{block["uuid"].get<std::string>(), block}}}, {"time", 1.0}};
  }

  Json description() const {
    Json d = {{"kind", kind_}};
    if (kind_ == "stream") d["buffer_size"] = kRing;
    return d;
  }

  Json answer(const Json& request) {
    const std::map<Json, Json> rows = visible();
    if (request.contains("snapshot")) {
      Json cursor = request.value("cursor", Json());
      if (!cursor.is_null() && between_pages_) {
        auto f = between_pages_;
        mutex_.unlock();
        f();
        mutex_.lock();
      }
      ++snapshot_requests_;
      std::size_t max = request.value("maxcount", page_size_);
      Json value = Json::array(), rowids = Json::array();
      auto it = cursor.is_null() ? rows.begin() : rows.upper_bound(cursor);
      for (; it != rows.end() && value.size() < max; ++it) {
        rowids.push_back(it->first);
        value.push_back(it->second);
      }
      Json out = {{"value", value},    {"rowids", rowids}, {"seq", seq_},
                  {"count", rows.size()}, {"epoch", epoch_}, {"hasmore", it != rows.end()}};
      if (it != rows.end()) out["cursor"] = rowids.back();
      return out;
    }
    if (request.contains("since")) {
      ++since_requests_;
      auto since = request["since"].get<std::int64_t>();
      bool other_epoch = request.contains("epoch") && request["epoch"] != epoch_;
      if (other_epoch || since < log_floor_) {
        Json value = Json::array(), rowids = Json::array();
        for (auto& [rowid, row] : rows) {
          rowids.push_back(rowid);
          value.push_back(row);
        }
        return {{"reset", true}, {"value", value}, {"rowids", rowids}, {"seq", seq_}, {"epoch", epoch_}};
      }
      Json changes = Json::array();
      for (auto& c : log_)
        if (c["seq"].get<std::int64_t>() > since) changes.push_back(c);
      return {{"value", changes}, {"seq", seq_}};
    }
    return {{"value", nullptr}, {"seq", seq_}, {"epoch", epoch_}};
  }

  void dispatch(mktl::transport::Incoming&& request, mktl::transport::Reply reply) {
    std::lock_guard lock(mutex_);
    if (request.target == "fake._catalog") return reply.send(catalog().dump());
    if (request.target != "fake.live") return reply.error("KeyError", "no such key " + request.target);
    Json payload = request.payload.empty() ? Json::object() : Json::parse(request.payload);
    reply.send(answer(payload).dump());
  }

  std::string kind_;
  std::unique_ptr<mktl::transport::Server> server_;
  std::mutex mutex_;
  std::map<Json, Json> rows_;
  std::int64_t seq_ = 0;
  std::string epoch_;
  int restarts_ = 0;
  std::vector<Json> log_;
  std::int64_t log_floor_ = 0;  // `since` below this gets a reset
  std::size_t log_limit_ = 100000;
  std::size_t page_size_ = 1000;
  std::function<void()> between_pages_;
  int since_requests_ = 0, snapshot_requests_ = 0;
};

// What a view reported, in order.
struct Recorder {
  std::mutex mutex;
  std::vector<mktl::CollectionRow> snapshot;
  std::int64_t snapshot_seq = -1;
  std::vector<std::int64_t> reset_seqs;
  std::vector<mktl::CollectionChange> changes;
  std::vector<std::vector<mktl::CollectionRow>> resets;
  std::vector<std::string> errors;

  mktl::CollectionCallbacks callbacks() {
    mktl::CollectionCallbacks cb;
    cb.on_snapshot = [this](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) {
      std::lock_guard lock(mutex);
      snapshot = rows;
      snapshot_seq = seq;
    };
    cb.on_change = [this](const mktl::CollectionChange& c) {
      std::lock_guard lock(mutex);
      changes.push_back(c);
    };
    cb.on_reset = [this](const std::vector<mktl::CollectionRow>& rows, std::int64_t seq) {
      std::lock_guard lock(mutex);
      resets.push_back(rows);
      reset_seqs.push_back(seq);
    };
    cb.on_error = [this](const std::string& text) {
      std::lock_guard lock(mutex);
      errors.push_back(text);
    };
    return cb;
  }
  std::vector<std::int64_t> seqs() {
    std::lock_guard lock(mutex);
    std::vector<std::int64_t> out;
    for (auto& c : changes) out.push_back(c.seq);
    return out;
  }
  std::vector<std::string> ops() {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (auto& c : changes) out.push_back(c.op);
    return out;
  }
};

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (auto i = from; i <= to; ++i) out.push_back(i);
  return out;
}

struct Fixture {
  test::TempDir home;
  FakeCollection fake;
  mktl::Client client;
  test::Collector probe;
  mktl::Subscription probe_subscription;

  explicit Fixture(const std::string& kind, mktl::ClientOptions options = {})
      : fake(kind), client(with_home(options, home)) {
    client.connect(fake.endpoint(), "fake");
  }
  static mktl::ClientOptions with_home(mktl::ClientOptions options, const test::TempDir& home) {
    auto base = test::client_options(home);
    options.home = base.home;
    options.ack_timeout = base.ack_timeout;
    options.timeout = 5.0;
    return options;
  }
  // Makes sure the client's subscription to fake.live is in place at the
  // daemon (ZeroMQ subscriptions travel asynchronously), so that what the
  // test publishes next is received, and that the probes are all delivered
  // (a view made next sees none of them). Leaves the probe subscribed.
  void wait_subscribed() {
    probe_subscription = client.subscribe("fake.live", probe.callback());
    REQUIRE(test::wait_until([&] {
      fake.republish_last();
      return probe.size() > 0;
    }));
    fake.marker("subscribed");
    REQUIRE(probe.wait_for_value("subscribed"));
  }
};

bool same_rows(const mktl::CollectionView& view, FakeCollection& fake) { return view.rows() == fake.rows(); }

}  // namespace

TEST_CASE("collection view: a snapshot, then each change in seq order", "[collection-view]") {
  for (std::string kind : {"keyed", "table"}) {
    DYNAMIC_SECTION(kind) {
      Fixture f(kind);
      f.fake.change("a", {{"qty", 1}});
      f.fake.change("b", {{"qty", 2}});
      f.wait_subscribed();
      Recorder rec;
      auto view = f.client.watch_collection("fake.LIVE", rec.callbacks());
      CHECK(view.kind() == kind);
      CHECK(view.seq() == 2);
      REQUIRE(view.wait_for_seq(2, 5));
      f.fake.change("c", {{"qty", 3}});
      f.fake.change("a", {{"qty", 10}});
      f.fake.remove("b");
      REQUIRE(view.wait_for_seq(5, 5));
      CHECK(same_rows(view, f.fake));
      CHECK(rec.snapshot == std::vector<mktl::CollectionRow>{{"a", {{"qty", 1}}}, {"b", {{"qty", 2}}}});
      CHECK(rec.snapshot_seq == 2);
      CHECK(rec.seqs() == range(3, 5));
      CHECK(rec.ops() == std::vector<std::string>{"insert", "update", "delete"});
      CHECK(rec.changes[2].exists == false);
      CHECK(rec.changes[2].row == Json{{"qty", 2}});
      CHECK(rec.changes[0].ref == "ref-3");
      CHECK(view.row("a") == Json{{"qty", 10}});
      CHECK_FALSE(view.row("b"));
      CHECK(view.gaps() == 0);
      CHECK(view.resets() == 0);
      CHECK(view.epoch() == "epoch-1");
    }
  }
}

TEST_CASE("collection view: broadcasts already in the snapshot are dropped", "[collection-view]") {
  Fixture f("keyed");
  f.fake.change(1, {{"v", 0}});
  f.fake.change(2, {{"v", 0}});
  f.wait_subscribed();
  // Three changes published while the view takes its snapshot, which holds them.
  bool once = true;
  f.fake.set_page_size(1);
  f.fake.between_pages([&] {
    if (!once) return;
    once = false;
    for (int i = 1; i <= 3; ++i) f.fake.change(1, {{"v", i}});
  });
  Recorder rec;
  auto view = f.client.watch_collection("fake.live", rec.callbacks());
  // Pages at seq 2 and 5: the view replays `since` 2 and is consistent at 5.
  CHECK(view.seq() == 5);
  CHECK(rec.seqs().empty());
  f.fake.change(3, {{"v", 0}});
  REQUIRE(view.wait_for_seq(6, 5));
  REQUIRE(test::wait_until([&] { return view.duplicates() == 3; }));
  CHECK(rec.seqs() == std::vector<std::int64_t>{6});
  CHECK(same_rows(view, f.fake));
  CHECK(view.gaps() == 0);
}

TEST_CASE("collection view: a gap in seq is caught up with since", "[collection-view]") {
  for (std::string kind : {"keyed", "table"}) {
    DYNAMIC_SECTION(kind) {
      Fixture f(kind);
      f.wait_subscribed();
      Recorder rec;
      auto view = f.client.watch_collection("fake.live", rec.callbacks());
      f.fake.change("x", {{"n", 1}});
      f.fake.change("y", {{"n", 2}}, false);  // never broadcast
      f.fake.change("x", {{"n", 3}}, false);
      f.fake.change("z", {{"n", 4}});
      REQUIRE(view.wait_for_seq(4, 5));
      CHECK(rec.seqs() == range(1, 4));
      CHECK(same_rows(view, f.fake));
      CHECK(view.gaps() == 1);
      CHECK(f.fake.since_requests() == 1);
      std::lock_guard lock(rec.mutex);
      // 4 revealed the gap; the answer to `since` 1 held it too.
      CHECK_FALSE(rec.changes[0].caught_up);
      CHECK(rec.changes[1].caught_up);
      CHECK(rec.changes[2].caught_up);
      CHECK(rec.changes[3].caught_up);
    }
  }
}

TEST_CASE("collection view: a stream skips duplicates, asks since when its seq jumps, keeps its ring's size",
          "[collection-view]") {
  Fixture f("stream");
  f.fake.change(1, {{"msg", "one"}});
  f.wait_subscribed();
  Recorder rec;
  auto view = f.client.watch_collection("fake.live", rec.callbacks());
  CHECK(view.seq() == 1);
  CHECK(view.epoch().empty());
  f.fake.change(2, {{"msg", "two"}});
  f.fake.republish_last();  // a duplicate
  REQUIRE(view.wait_for_seq(2, 5));
  CHECK(f.fake.since_requests() == 0);
  // Rows 3 and 4 were deleted before anyone saw them: seq jumps to 5, and
  // `since` says nothing is missing.
  f.fake.change(5, {{"msg", "five"}});
  REQUIRE(view.wait_for_seq(5, 5));
  // Row 6 is lost on the wire, 7 reveals the jump; `since` brings 6.
  f.fake.change(6, {{"msg", "six"}}, false);
  f.fake.change(7, {{"msg", "seven"}});
  REQUIRE(view.wait_for_seq(7, 5));
  REQUIRE(test::wait_until([&] { return view.duplicates() >= 1; }));
  CHECK(rec.seqs() == std::vector<std::int64_t>{2, 5, 6, 7});
  CHECK(f.fake.since_requests() == 2);
  CHECK(same_rows(view, f.fake));  // 2, 5, 6, 7: row 1 left the ring of 4
  CHECK(view.size() == 4);
  // A stream's reset keeps the seq the view has: it takes a new snapshot all the same.
  f.fake.reset();
  REQUIRE(test::wait_until([&] { return view.resets() == 1; }));
  CHECK(view.seq() == 7);
  CHECK(same_rows(view, f.fake));
}

TEST_CASE("collection view: a reset (broadcast, since answer or new epoch) replaces the view", "[collection-view]") {
  Fixture f("keyed");
  f.fake.change("a", {{"n", 1}});
  f.wait_subscribed();
  Recorder rec;
  auto view = f.client.watch_collection("fake.live", rec.callbacks());

  SECTION("a reset broadcast") {
    f.fake.change("b", {{"n", 2}}, false);
    f.fake.reset();
    REQUIRE(test::wait_until([&] { return view.resets() == 1; }));
    REQUIRE(view.wait_for_seq(3, 5));
    CHECK(same_rows(view, f.fake));
    std::lock_guard lock(rec.mutex);
    REQUIRE(rec.resets.size() == 1);
    CHECK(rec.resets[0] == f.fake.rows());
    CHECK(rec.reset_seqs == std::vector<std::int64_t>{3});
  }
  SECTION("since answers a reset when the changes are no longer held") {
    f.fake.set_log_limit(2);
    for (int i = 0; i < 5; ++i) f.fake.change("c", {{"n", i}}, false);
    f.fake.change("d", {{"n", 9}});
    REQUIRE(view.wait_for_seq(7, 5));
    CHECK(view.resets() == 1);
    CHECK(view.gaps() == 1);
    CHECK(same_rows(view, f.fake));
    CHECK(rec.seqs().empty());  // everything came in the reset
  }
  SECTION("a restarted daemon (another epoch)") {
    f.fake.restart();
    f.fake.change("z", {{"n", 1}});
    REQUIRE(test::wait_until([&] { return view.epoch() == "epoch-2"; }));
    REQUIRE(view.wait_for_seq(1, 5));
    CHECK(view.resets() == 1);
    CHECK(same_rows(view, f.fake));
    // and goes on in the new epoch.
    f.fake.change("z", {{"n", 2}});
    REQUIRE(view.wait_for_seq(2, 5));
    CHECK(view.row("z") == Json{{"n", 2}});
  }
}

TEST_CASE("collection view: the filter keeps matching rows, and rows that stop matching leave", "[collection-view]") {
  Fixture f("table");
  f.fake.change(1, {{"qty", 5}});
  f.fake.change(2, {{"qty", 50}});
  f.fake.change(3, {{"name", "no qty"}});
  f.wait_subscribed();
  Recorder rec;
  auto view = f.client.watch_collection("fake.live", rec.callbacks(), "qty > 10");
  CHECK(view.rows() == std::vector<mktl::CollectionRow>{{2, {{"qty", 50}}}});
  CHECK(view.filter_errors() == 1);  // row 3 has no qty
  f.fake.change(1, {{"qty", 20}});   // enters
  f.fake.change(2, {{"qty", 1}});    // leaves
  f.fake.change(4, {{"qty", 2}});    // never in
  f.fake.change(1, {{"qty", 30}});   // changes
  f.fake.remove(1);                  // deleted
  REQUIRE(view.wait_for_seq(8, 5));
  CHECK(rec.seqs() == std::vector<std::int64_t>{4, 5, 7, 8});
  CHECK(rec.ops() == std::vector<std::string>{"insert", "delete", "update", "delete"});
  {
    std::lock_guard lock(rec.mutex);
    CHECK(rec.changes[1].exists);  // still in the table, no longer in the view
    CHECK(rec.changes[1].published_op == "update");
  }
  CHECK(view.size() == 0);
  CHECK_THROWS_AS(f.client.watch_collection("fake.live", {}, "qty >"), mktl::ValueError);
  CHECK_THROWS_AS(f.client.watch_collection("fake.plain", {}), mktl::TypeError);
  CHECK_THROWS_AS(f.client.watch_collection("fake.nothing", {}), mktl::KeyError);
}

TEST_CASE("collection view: a stalled callback overflows its queue and catches up", "[collection-view]") {
  Fixture f("keyed");
  f.wait_subscribed();
  std::mutex latch;
  std::unique_lock hold(latch);
  Recorder rec;
  auto callbacks = rec.callbacks();
  auto record = callbacks.on_change;
  callbacks.on_change = [&, record](const mktl::CollectionChange& c) {
    record(c);
    std::lock_guard wait(latch);  // the first change blocks until released
  };
  mktl::CollectionOptions options;
  options.queue_limit = 5;
  mktl::CollectionView stalled(f.client, "fake.live", callbacks, options);
  Recorder other_rec;
  auto other = f.client.watch_collection("fake.live", other_rec.callbacks());
  for (int i = 1; i <= 60; ++i) f.fake.change(i % 7, {{"i", i}});
  // The other view is not held up by the stalled one.
  REQUIRE(other.wait_for_seq(60, 10));
  CHECK(other_rec.seqs() == range(1, 60));
  CHECK(stalled.seq() < 60);
  hold.unlock();
  REQUIRE(stalled.wait_for_seq(60, 10));
  CHECK(rec.seqs() == range(1, 60));
  CHECK(stalled.gaps() >= 1);
  CHECK(same_rows(stalled, f.fake));
}

TEST_CASE("collection view: broadcasts the client dropped are caught up", "[collection-view]") {
  for (std::string kind : {"keyed", "stream"}) {
    DYNAMIC_SECTION(kind) {
      mktl::ClientOptions options;
      options.callback_queue = 2;
      Fixture f(kind, options);
      f.fake.change(1, {{"i", 0}});
      f.wait_subscribed();
      Recorder rec;
      auto view = f.client.watch_collection("fake.live", rec.callbacks());
      // A plain subscriber that blocks holds the key's strand: the client's
      // queue fills and the last broadcasts are dropped, with no later one
      // to show the gap.
      std::mutex latch;
      std::unique_lock hold(latch);
      std::atomic<bool> blocked{false};
      auto blocker = f.client.subscribe("fake.live", [&](const std::string&, const mktl::Reading&) {
        blocked = true;
        std::lock_guard wait(latch);
      });
      REQUIRE(test::wait_until([&] {
        f.fake.republish_last();
        return blocked.load();
      }));
      auto dropped = f.client.dropped_broadcasts();
      for (int i = 2; i <= 30; ++i) f.fake.change(i, {{"i", i}});
      REQUIRE(test::wait_until([&] { return f.client.dropped_broadcasts() > dropped; }));
      hold.unlock();
      REQUIRE(view.wait_for_seq(30, 10));
      CHECK(rec.seqs() == range(2, 30));
      CHECK(view.gaps() >= 1);
      CHECK(same_rows(view, f.fake));
    }
  }
}

TEST_CASE("collection view: a callback may destroy its own view", "[collection-view]") {
  Fixture f("keyed");
  f.wait_subscribed();
  Recorder rec;
  std::optional<mktl::CollectionView> view;
  std::atomic<bool> destroyed{false};
  auto callbacks = rec.callbacks();
  auto record = callbacks.on_change;
  callbacks.on_change = [&, record](const mktl::CollectionChange& c) {
    record(c);
    if (c.seq == 3) {
      view.reset();  // a callback may destroy its own view
      destroyed = true;
    }
  };
  view.emplace(f.client, "fake.live", callbacks);
  f.fake.change("a", {{"n", 1}});
  f.fake.change("a", {{"n", 2}});
  f.fake.change("a", {{"n", 3}});
  REQUIRE(test::wait_until([&] { return destroyed.load(); }));
  f.fake.change("a", {{"n", 4}});
  f.fake.change("a", {{"n", 5}});
  // The probe sees 5: the destroyed view had its chance and stayed silent.
  REQUIRE(f.probe.wait_for_value(Json{{"n", 5}}));
  CHECK(rec.seqs() == range(1, 3));
}

}  // namespace test_collection_view
