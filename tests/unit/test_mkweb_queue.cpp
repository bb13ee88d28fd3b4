// mkweb::OutQueue: a browser's bounded queue, coalescing values per item
// (latest wins, skips counted) and replacing a collection's changes by a
// resync when full.
#include <out_queue.hpp>

#include <mktl/json.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <string>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_mkweb_queue {

using mkweb::MessageKind;
using mkweb::OutMessage;
using mkweb::OutQueue;

namespace {

// A value message as the gateway makes it: an object without its closing brace.
OutMessage value(const std::string& item, int v) {
  return {item, MessageKind::value,
          std::make_shared<const std::string>("{\"item\":\"" + item + "\",\"value\":" + std::to_string(v))};
}
OutMessage change(const std::string& item, int seq) {
  return {item, MessageKind::change, std::make_shared<const std::string>("{\"seq\":" + std::to_string(seq) + "}")};
}
OutMessage snapshot(const std::string& item, int seq) {
  return {item, MessageKind::snapshot, std::make_shared<const std::string>("{\"snap\":" + std::to_string(seq) + "}")};
}

mktl::Json pop_json(OutQueue& q) {
  auto out = q.pop();
  REQUIRE(out);
  return mktl::json::parse(out->text);
}

}  // namespace

TEST_CASE("mkweb queue: below its limit, messages go out in order with skipped 0", "[mkweb]") {
  OutQueue q(4);
  q.push(value("a", 1));
  q.push(value("a", 2));
  q.push(value("b", 3));
  CHECK(q.size() == 3);
  CHECK(pop_json(q) == mktl::Json{{"item", "a"}, {"value", 1}, {"skipped", 0}});
  CHECK(pop_json(q) == mktl::Json{{"item", "a"}, {"value", 2}, {"skipped", 0}});
  CHECK(pop_json(q) == mktl::Json{{"item", "b"}, {"value", 3}, {"skipped", 0}});
  CHECK_FALSE(q.pop());
  CHECK(q.overflows() == 0);
}

TEST_CASE("mkweb queue: when full, each item keeps its latest value and counts the skipped ones", "[mkweb]") {
  OutQueue q(3);
  q.push(value("a", 1));
  q.push(value("b", 1));
  q.push(value("a", 2));
  q.push(value("a", 3));  // full: a's 1 and 2 give way to 3
  CHECK(q.overflows() == 1);
  REQUIRE(q.size() == 2);
  CHECK(pop_json(q) == mktl::Json{{"item", "b"}, {"value", 1}, {"skipped", 0}});
  CHECK(pop_json(q) == mktl::Json{{"item", "a"}, {"value", 3}, {"skipped", 2}});
  // Drained, it queues in order again.
  q.push(value("a", 4));
  CHECK(pop_json(q) == mktl::Json{{"item", "a"}, {"value", 4}, {"skipped", 0}});
}

TEST_CASE("mkweb queue: a browser that never reads costs bounded memory, and no value is lost uncounted",
          "[mkweb]") {
  const std::size_t limit = 8;
  OutQueue q(limit);
  const std::vector<std::string> items{"s.a", "s.b", "s.c"};
  const int per_item = 10000;
  for (int i = 0; i < per_item; ++i)
    for (const auto& item : items) {
      q.push(value(item, i));
      REQUIRE(q.size() <= limit + items.size());
    }
  std::map<std::string, long> received, skipped, last;
  while (auto out = q.pop()) {
    auto j = mktl::json::parse(out->text);
    std::string item = j["item"];
    ++received[item];
    skipped[item] += j["skipped"].get<long>();
    last[item] = j["value"].get<long>();
  }
  for (const auto& item : items) {
    CHECK(received[item] + skipped[item] == per_item);
    CHECK(last[item] == per_item - 1);  // the latest value always gets through
  }
}

TEST_CASE("mkweb queue: a collection's changes become one resync when full, and a snapshot replaces queued changes",
          "[mkweb]") {
  OutQueue q(2);
  q.push(change("c", 1));
  q.push(change("c", 2));
  q.push(change("c", 3));  // full: 1 and 2 are dropped, a resync stands for them all
  q.push(change("c", 4));  // covered by the pending resync
  REQUIRE(q.size() == 1);
  auto out = q.pop();
  REQUIRE(out);
  CHECK(out->kind == MessageKind::resync);
  CHECK(out->item == "c");
  CHECK(out->text.empty());

  OutQueue r(10);
  r.push(change("c", 1));
  r.push(value("v", 1));
  r.push(change("c", 2));
  r.push(snapshot("c", 5));
  REQUIRE(r.size() == 2);
  CHECK(r.pop()->item == "v");
  auto snap = r.pop();
  CHECK(snap->kind == MessageKind::snapshot);
  CHECK(snap->text == "{\"snap\":5}");
}

TEST_CASE("mkweb queue: forget() drops an item's queued messages", "[mkweb]") {
  OutQueue q(10);
  q.push(value("a", 1));
  q.push(value("b", 1));
  q.push(change("a", 1));
  q.forget("a");
  REQUIRE(q.size() == 1);
  CHECK(q.pop()->item == "b");
  CHECK(q.empty());
}

}  // namespace test_mkweb_queue
