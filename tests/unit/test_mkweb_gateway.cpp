// mkweb's gateway and API against an in-process daemon: one upstream
// subscription per item whatever the number of browsers, values fanned out,
// errors for unknown items; the API's routes, statuses and token rules; the
// token file's mode check.
#include "support.hpp"

#include <api.hpp>
#include <gateway.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <future>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_mkweb_gateway {

using mktl::Json;
using namespace std::chrono_literals;

namespace {

const char* kItems = R"({
  "temp": {"type": "numeric", "units": "degC", "format": "%.1f", "initial": 20.5},
  "ro": {"type": "numeric", "settable": false, "initial": 1},
  "limit": {"type": "numeric", "min": 0, "max": 10, "initial": 5},
  "mode": {"type": "enumerated", "enumerators": {"0": "Off", "1": "On"}, "initial": 0}
})";

class WebDaemon : public mktl::Daemon {
 public:
  using Daemon::Daemon;
};

// A browser as the gateway sees it: keeps every message (values completed
// with skipped 0, as an empty OutQueue would send them).
struct TestSink : mkweb::Sink {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Json> messages;
  void deliver(mkweb::OutMessage message) override {
    std::string text = *message.text;
    if (message.kind == mkweb::MessageKind::value) text += ",\"skipped\":0}";
    std::lock_guard lock(mutex);
    messages.push_back(mktl::json::parse(text));
    cv.notify_all();
  }
  bool wait_for(const std::function<bool(const Json&)>& match, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] {
      for (const auto& m : messages)
        if (match(m)) return true;
      return false;
    });
  }
};

struct Fixture {
  test::TempDir home;
  WebDaemon daemon{"web", "web1", Json::parse(kItems), test::isolated(home)};
  std::unique_ptr<mktl::Client> client;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<mkweb::Gateway> gateway;
  std::thread io_thread;

  Fixture() {
    daemon.start();
    client = std::make_unique<mktl::Client>(test::client_options(home));
    gateway = std::make_unique<mkweb::Gateway>(io, *client, mkweb::GatewayOptions{{}, {daemon.rep_endpoint()}});
    io_thread = std::thread([this] { io.run(); });
  }
  ~Fixture() {
    guard.reset();
    io.stop();
    io_thread.join();
    gateway.reset();
    client.reset();
    daemon.stop();
  }
  // Runs `f` on the I/O thread and waits for it.
  template <class F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io, [&task] { task(); });
    return result.get();
  }
  mkweb::ApiResponse call(mkweb::Api& api, mkweb::ApiRequest request) {
    std::promise<mkweb::ApiResponse> answer;
    boost::asio::post(io, [&] { api.handle(request, [&](mkweb::ApiResponse r) { answer.set_value(std::move(r)); }); });
    auto future = answer.get_future();
    REQUIRE(future.wait_for(20s) == std::future_status::ready);
    return future.get();
  }
};

auto is_value(const std::string& item, const Json& v) {
  return [item, v](const Json& m) { return m["type"] == "value" && m["item"] == item && m["value"] == v; };
}

std::string error_type(const mkweb::ApiResponse& r) { return mktl::json::parse(r.body)["error"]["type"]; }

}  // namespace

TEST_CASE("mkweb gateway: browsers watching one item share one upstream subscription", "[mkweb]") {
  Fixture f;
  auto one = std::make_shared<TestSink>();
  auto two = std::make_shared<TestSink>();
  f.on_io([&] { f.gateway->subscribe(one, "web.temp"); });
  f.on_io([&] { f.gateway->subscribe(two, "web.temp"); });
  REQUIRE(one->wait_for(is_value("web.temp", 20.5)));
  REQUIRE(two->wait_for(is_value("web.temp", 20.5)));
  CHECK(f.on_io([&] { return f.gateway->watched(); }) == 1);
  {
    std::lock_guard lock(one->mutex);
    const Json& first = one->messages.front();
    CHECK(first["formatted"] == "20.5");
    CHECK(first["units"] == "degC");
    CHECK(first["skipped"] == 0);
  }

  // A SET's broadcast reaches both (poked until the upstream SUB has joined).
  auto saw_broadcast = [](TestSink& sink) {
    std::lock_guard lock(sink.mutex);
    for (const auto& m : sink.messages)
      if (m["value"].is_number() && m["value"].get<double>() >= 100) return true;
    return false;
  };
  CHECK(test::until_subscribed([&](int i) { f.client->set("web.temp", mktl::Reading(Json(100 + i))); },
                               [&] { return saw_broadcast(*one) && saw_broadcast(*two); }));
  f.client->set("web.temp", mktl::Reading(Json(31.25)));
  CHECK(one->wait_for(is_value("web.temp", 31.25)));
  CHECK(two->wait_for(is_value("web.temp", 31.25)));

  // One leaves: the subscription stays for the other.
  f.on_io([&] { f.gateway->unsubscribe(one.get(), "web.temp"); });
  CHECK(f.on_io([&] { return f.gateway->watched(); }) == 1);
  f.client->set("web.temp", mktl::Reading(Json(40)));
  CHECK(two->wait_for(is_value("web.temp", 40)));
  // The last one goes: so does the subscription.
  f.on_io([&] { f.gateway->drop(two.get()); });
  CHECK(f.on_io([&] { return f.gateway->watched(); }) == 0);
}

TEST_CASE("mkweb gateway: an item that cannot be watched gets an error message, and nothing stays watched",
          "[mkweb]") {
  Fixture f;
  auto sink = std::make_shared<TestSink>();
  f.on_io([&] {
    f.gateway->subscribe(sink, "web.nosuch");
    f.gateway->subscribe(sink, "nostore.x");
  });
  auto error_for = [](const std::string& item) {
    return [item](const Json& m) { return m["type"] == "error" && m["item"] == item && m["error"]["type"] == "KeyError"; };
  };
  CHECK(sink->wait_for(error_for("web.nosuch")));
  CHECK(sink->wait_for(error_for("nostore.x")));
  CHECK(test::wait_until([&] { return f.on_io([&] { return f.gateway->watched(); }) == 0; }));
}

TEST_CASE("mkweb api: routes, statuses and token rules", "[mkweb]") {
  Fixture f;
  mkweb::Api open_api(*f.gateway, {true, "s3cret"});
  mkweb::Api closed_api(*f.gateway, {false, ""});

  auto r = f.call(open_api, {"GET", "/api/stores", "", ""});
  CHECK(r.status == 200);
  CHECK(r.body == R"({"stores":["web"]})");
  r = f.call(open_api, {"GET", "/api/stores/web", "", ""});
  CHECK(r.status == 200);
  CHECK(mktl::json::parse(r.body)["items"]["limit"]["max"] == 10);
  r = f.call(open_api, {"GET", "/api/items/web.temp", "", ""});
  CHECK(r.status == 200);
  CHECK(mktl::json::parse(r.body)["formatted"] == "20.5");

  CHECK(f.call(open_api, {"GET", "/api/stores/none", "", ""}).status == 404);
  CHECK(f.call(open_api, {"GET", "/api/items/web.none", "", ""}).status == 404);
  CHECK(f.call(open_api, {"GET", "/nowhere", "", ""}).status == 404);
  CHECK(f.call(open_api, {"PUT", "/api/items/web.temp", "", ""}).status == 405);
  r = f.call(open_api, {"GET", "/", "", ""});
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/html", 0) == 0);

  // SET: 403 when off, 401 without or with a wrong token, 400 for a bad body.
  r = f.call(closed_api, {"POST", "/api/items/web.limit", "Bearer s3cret", R"({"value": 3})"});
  CHECK(r.status == 403);
  CHECK(error_type(r) == "PermissionError");
  CHECK(f.call(open_api, {"POST", "/api/items/web.limit", "", R"({"value": 3})"}).status == 401);
  CHECK(f.call(open_api, {"POST", "/api/items/web.limit", "Bearer s3cre", R"({"value": 3})"}).status == 401);
  CHECK(f.call(open_api, {"POST", "/api/items/web.limit", "Bearer s3cret", R"({"value": )"}).status == 400);
  CHECK(f.call(open_api, {"POST", "/api/items/web.limit", "Bearer s3cret", R"({"v": 3})"}).status == 400);

  r = f.call(open_api, {"POST", "/api/items/web.limit", "Bearer s3cret", R"({"value": 3})"});
  CHECK(r.status == 200);
  CHECK(f.client->get("web.limit").value == 3);
  // Text is read as mk set reads it: "7" becomes 7, "On" the enumerator 1.
  CHECK(f.call(open_api, {"POST", "/api/items/web.limit", "Bearer s3cret", R"({"value": "7"})"}).status == 200);
  CHECK(f.client->get("web.limit").value == 7);
  CHECK(f.call(open_api, {"POST", "/api/items/web.mode", "Bearer s3cret", R"({"value": "On"})"}).status == 200);
  CHECK(f.client->get("web.mode").value == 1);

  // The daemon's refusal: 422 with its text verbatim.
  r = f.call(open_api, {"POST", "/api/items/web.limit", "Bearer s3cret", R"({"value": 11})"});
  CHECK(r.status == 422);
  CHECK(error_type(r) == "ValueError");
  auto daemon_error = test::remote_error([&] { f.client->set("web.limit", mktl::Reading(Json(11))); });
  CHECK(mktl::json::parse(r.body)["error"]["text"] == daemon_error.text());
  r = f.call(open_api, {"POST", "/api/items/web.ro", "Bearer s3cret", R"({"value": 2})"});
  CHECK(r.status == 422);
  CHECK(f.client->get("web.limit").value == 7);
}

TEST_CASE("mkweb api: error types map to HTTP statuses", "[mkweb]") {
  CHECK(mkweb::error_status("KeyError") == 404);
  CHECK(mkweb::error_status("ValueError") == 422);
  CHECK(mkweb::error_status("TypeError") == 422);
  CHECK(mkweb::error_status("PermissionError") == 403);
  CHECK(mkweb::error_status("TimeoutError") == 504);
  CHECK(mkweb::error_status("RuntimeError") == 502);
}

TEST_CASE("mkweb token file: mode 0600 only, first line trimmed", "[mkweb]") {
  test::TempDir dir;
  const std::string path = dir.str() + "/token";
  {
    std::ofstream out(path);
    out << "  abc123 \nsecond line\n";
  }
  ::chmod(path.c_str(), 0644);
  auto error = test::remote_error([&] { mkweb::read_token_file(path); });
  CHECK(error.type() == "PermissionError");
  CHECK(error.text().find("chmod 600") != std::string::npos);
  ::chmod(path.c_str(), 0600);
  CHECK(mkweb::read_token_file(path) == "abc123");
  CHECK(test::remote_error([&] { mkweb::read_token_file(dir.str() + "/none"); }).type() == "FileNotFoundError");
  { std::ofstream out(path, std::ios::trunc); }
  CHECK(test::remote_error([&] { mkweb::read_token_file(path); }).type() == "ValueError");
}

}  // namespace test_mkweb_gateway
