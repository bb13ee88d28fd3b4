// CurveZMQ and access rules (issue 14): key files, the security section, and
// a daemon with CURVE on real sockets against authorised, restricted,
// unknown and plain-text clients.
#include "support.hpp"
#include "skip.hpp"

#include "security/policy.hpp"
#include "transport/handshake_probe.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>

// This file's own namespace: a unity build compiles several test files as one.
namespace test_security {

using mktl::Json;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string error_type(const std::function<void()>& f) {
  try {
    f();
  } catch (const mktl::Error& e) {
    return e.type() + ": " + e.what();
  }
  return "no error";
}

const char* kItems = R"({
  "temp": {"type": "numeric", "initial": 20.5},
  "setpoint": {"type": "numeric", "initial": 10}
})";

}  // namespace

TEST_CASE("keys: keygen writes a 0600 secret and a public key that load back", "[security]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  test::TempDir home;
  auto pair = mktl::KeyPair::generate();
  REQUIRE(pair.public_key.size() == 40);
  REQUIRE(pair.secret_key.size() == 40);
  REQUIRE(pair.public_key != pair.secret_key);
  std::string secret = pair.save("alice", home.str());
  CHECK(secret == home.str() + "/keys/alice.key");
  CHECK(mode_of(secret) == 0600);
  CHECK(mode_of(home.str() + "/keys/alice.pub") == 0644);
  CHECK(read_file(secret).find(pair.secret_key) != std::string::npos);

  auto loaded = mktl::KeyPair::load("alice", home.str());
  CHECK(loaded.public_key == pair.public_key);
  CHECK(loaded.secret_key == pair.secret_key);
  CHECK(mktl::load_public_key("alice", home.str()) == pair.public_key);
  CHECK(mktl::load_public_key(home.str() + "/keys/alice.pub", home.str()) == pair.public_key);
  CHECK(mktl::load_public_key(pair.public_key, home.str()) == pair.public_key);

  // No silent replacement of a key.
  auto again = mktl::KeyPair::generate();
  CHECK(error_type([&] { again.save("alice", home.str()); }).rfind("FileExistsError", 0) == 0);
  again.save("alice", home.str(), true);
  CHECK(mktl::KeyPair::load("alice", home.str()).public_key == again.public_key);
  CHECK(mode_of(secret) == 0600);
}

TEST_CASE("keys: a secret key file others may read is refused, naming the path and chmod 600", "[security]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  test::TempDir home;
  std::string secret = mktl::KeyPair::generate().save("bob", home.str());
  REQUIRE(::chmod(secret.c_str(), 0644) == 0);
  std::string err = error_type([&] { mktl::KeyPair::load("bob", home.str()); });
  CHECK(err.rfind("PermissionError", 0) == 0);
  CHECK(err.find(secret) != std::string::npos);
  CHECK(err.find("0644") != std::string::npos);
  CHECK(err.find("chmod 600 " + secret) != std::string::npos);
  // A client given that key refuses to start, with the same error.
  auto o = test::client_options(home);
  o.key = secret;
  CHECK(error_type([&] { mktl::Client c(o); }).rfind("PermissionError", 0) == 0);
  REQUIRE(::chmod(secret.c_str(), 0600) == 0);
  CHECK_NOTHROW(mktl::KeyPair::load(secret));

  CHECK(error_type([&] { mktl::KeyPair::load("nobody", home.str()); }).find("mk keygen nobody") != std::string::npos);
  std::ofstream(home.str() + "/keys/junk.key") << "# nothing\nnot a key\n";
  ::chmod((home.str() + "/keys/junk.key").c_str(), 0600);
  CHECK(error_type([&] { mktl::KeyPair::load("junk", home.str()); }).find("Z85") != std::string::npos);
  CHECK_THROWS_AS(mktl::load_public_key("no-such-key", home.str()), mktl::ValueError);
}

TEST_CASE("security section: parsing and checks name the field", "[security]") {
  auto parse = [](const char* text) { return mktl::SecurityOptions::from_json(Json::parse(text), "sec.json"); };
  auto o = parse(R"({"curve": true, "server_key": "d", "clients": {"a": "k1"},
                     "acl": [{"items": "set*", "get": ["*"], "set": ["a"]}]})");
  CHECK(o.curve);
  CHECK(o.server_key == "d");
  CHECK(o.clients.at("a") == "k1");
  REQUIRE(o.acl.size() == 1);
  CHECK(o.acl[0].items == "set*");
  CHECK(o.acl[0].set == std::vector<std::string>{"a"});
  CHECK_FALSE(mktl::SecurityOptions::from_json(nullptr).curve);

  CHECK_THROWS_WITH(parse(R"({"curv": true})"), Catch::Contains("sec.json: /security/curv: unknown field"));
  CHECK_THROWS_WITH(parse(R"({"curve": "yes"})"), Catch::Contains("/security/curve"));
  CHECK_THROWS_WITH(parse(R"({"acl": [{"items": "x", "sett": ["a"]}]})"), Catch::Contains("/security/acl/0/sett"));
  CHECK_THROWS_WITH(parse(R"({"acl": [{"get": "a"}]})"), Catch::Contains("/security/acl/0/get"));
}

TEST_CASE("security policy: rules by item pattern and client", "[security]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  test::TempDir home;
  mktl::KeyPair::generate().save("d", home.str());
  auto a = mktl::KeyPair::generate(), b = mktl::KeyPair::generate();
  mktl::SecurityOptions o;
  o.curve = true;
  o.server_key = "d";
  o.clients = {{"alice", a.public_key}, {"bob", b.public_key}};
  o.acl = {{"*", {"*"}, {}, {"alice"}}, {"set*", {}, {"alice"}, {}}, {"demo.mode", {}, {"bob"}, {}}};
  using mktl::security::Action;
  mktl::security::Policy p(o, "Demo", home.str(), "sec.json");
  CHECK(p.allows("bob", Action::get, "demo.temp"));
  CHECK(p.allows("alice", Action::set, "demo.setpoint"));
  CHECK_FALSE(p.allows("bob", Action::set, "demo.setpoint"));
  CHECK_FALSE(p.allows("alice", Action::set, "demo.temp"));
  CHECK(p.allows("bob", Action::set, "DEMO.MODE"));      // "store.key" patterns, case-insensitive
  CHECK_FALSE(p.allows("bob", Action::set, "other.mode"));
  CHECK(p.allows("bob", Action::get, "demo._catalog"));  // special targets: open to every client
  CHECK(p.allows("bob", Action::get, "_hash"));
  CHECK(p.may_subscribe_anything("alice"));
  CHECK_FALSE(p.may_subscribe_anything("bob"));
  CHECK(p.refusal("bob", Action::set, "demo.setpoint") ==
        "client 'bob' may not SET demo.setpoint (no rule of this daemon's security acl allows it)");

  auto bad = o;
  bad.acl = {{"*", {"mallory"}, {}, {}}};
  CHECK_THROWS_WITH(mktl::security::Policy(bad, "demo", home.str(), "sec.json"),
                    Catch::Contains("/security/acl/0/get: 'mallory' is not a client listed"));
  bad = o;
  bad.curve = false;
  CHECK_THROWS_WITH(mktl::security::Policy(bad, "demo", home.str(), "sec.json"), Catch::Contains("need \"curve\": true"));
  bad = o;
  bad.clients["carol"] = "not-a-key";
  CHECK_THROWS_WITH(mktl::security::Policy(bad, "demo", home.str(), "sec.json"), Catch::Contains("/security/clients/carol"));
  bad = o;
  bad.server_key = "missing";
  CHECK_THROWS_WITH(mktl::security::Policy(bad, "demo", home.str(), "sec.json"),
                    Catch::Contains("/security/server_key: FileNotFoundError"));
  // The daemon checks it at construction: a bad configuration never binds.
  auto opts = test::isolated(home);
  opts.security = bad;
  CHECK_THROWS_AS(mktl::Daemon("demo", "demo1", Json::parse(kItems), opts), mktl::ConfigError);
}

namespace {

// A daemon requiring CURVE: alice may do everything, bob may GET only, carol
// has a key pair the daemon does not list.
struct SecureFixture {
  test::TempDir home;
  mktl::KeyPair alice = mktl::KeyPair::generate(), bob = mktl::KeyPair::generate(), carol = mktl::KeyPair::generate();
  std::unique_ptr<mktl::Daemon> daemon;

  SecureFixture() {
    mktl::KeyPair::generate().save("demo-daemon", home.str());
    alice.save("alice", home.str());
    bob.save("bob", home.str());
    carol.save("carol", home.str());
    auto opts = test::isolated(home);
    opts.security.curve = true;
    opts.security.server_key = "demo-daemon";
    opts.security.clients = {{"alice", alice.public_key}, {"bob", "bob"}};
    opts.security.acl = {{"*", {"alice", "bob"}, {"alice"}, {"alice"}}};
    daemon = std::make_unique<mktl::Daemon>("demo", "demo1", Json::parse(kItems), opts);
    daemon->start();
  }
  ~SecureFixture() { daemon->stop(); }

  // A client sharing the daemon's $MKTL_HOME, so that it finds the store in
  // the catalog cache the daemon wrote, CURVE key included.
  std::unique_ptr<mktl::Client> client(const std::string& key, double ack_timeout = 1.0) {
    auto o = test::client_options(home);
    o.home = home.str();
    o.key = key.empty() ? std::string() : home.str() + "/keys/" + key + ".key";
    o.ack_timeout = ack_timeout;
    o.timeout = 5.0;
    return std::make_unique<mktl::Client>(o);
  }
};

}  // namespace

TEST_CASE("CURVE daemon: the catalog announces its key and an authorised client gets, sets and subscribes",
          "[security][net]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  SecureFixture f;
  Json block = f.daemon->catalog_block();
  CHECK(block["provenance"][0]["curve"] == mktl::KeyPair::load("demo-daemon", f.home.str()).public_key);

  auto alice = f.client("alice");
  CHECK(alice->get("demo.temp").value == Json(20.5));
  test::Collector seen;
  auto sub = alice->subscribe("demo.setpoint", seen.callback());
  // The subscription is live once a repeated SET's broadcast arrives.
  int attempt = 0;  // a new value each time: only changes are broadcast
  REQUIRE(test::wait_until([&] {
    alice->set("demo.setpoint", mktl::Reading(Json(100 + ++attempt)));
    return seen.wait_for_count(1, 50ms);
  }));
  alice->set("demo.setpoint", mktl::Reading(Json(42)));
  CHECK(seen.wait_for_value(Json(42)));
  CHECK(alice->get("demo.setpoint").value == Json(42));
  // Asynchronous requests go over the engine's own (CURVE) socket.
  CHECK(alice->get_async("demo.temp").get().value == Json(20.5));
}

TEST_CASE("CURVE daemon: ACL refusals are PermissionError and broadcasts need subscribe rights", "[security][net]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  SecureFixture f;
  auto alice = f.client("alice");
  auto bob = f.client("bob");
  CHECK(bob->get("demo.temp").value == Json(20.5));
  std::string err = error_type([&] { bob->set("demo.setpoint", mktl::Reading(Json(7))); });
  CHECK(err == "PermissionError: client 'bob' may not SET demo.setpoint (no rule of this daemon's security acl allows it)");
  // A payload claiming to come from alice changes nothing: the key decides.
  err = error_type([&] { bob->call("SET", "demo.setpoint", {{"value", 7}, {"_user", "alice"}}); });
  CHECK(err.rfind("PermissionError", 0) == 0);
  CHECK(alice->get("demo.setpoint").value == Json(10));

  // bob has no subscribe rights: the PUB socket never admits him.
  test::Collector to_alice, to_bob;
  auto sa = alice->subscribe("demo.setpoint", to_alice.callback());
  auto sb = bob->subscribe("demo.setpoint", to_bob.callback());
  int attempt = 0;  // a new value each time: only changes are broadcast
  REQUIRE(test::wait_until([&] {
    alice->set("demo.setpoint", mktl::Reading(Json(100 + ++attempt)));
    return to_alice.wait_for_count(1, 50ms);
  }));
  for (int i = 0; i < 5; ++i) alice->set("demo.setpoint", mktl::Reading(Json(200 + i)));
  CHECK(to_alice.wait_for_value(Json(204)));
  CHECK_FALSE(to_bob.wait_for_count(1, 300ms));
}

TEST_CASE("CURVE daemon: unknown keys and plain-text clients get nothing", "[security][net]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  SecureFixture f;
  auto alice = f.client("alice");

  // carol's key is not listed: the handshake never completes, so her
  // requests are never acknowledged (TimeoutError), and nothing reaches her.
  {
    auto o = test::client_options(f.home);
    o.key = f.home.str() + "/keys/carol.key";
    o.server_key = f.daemon->catalog_block()["provenance"][0]["curve"].get<std::string>();
    o.ack_timeout = 0.3;
    mktl::Client carol(o);
    const std::string err = error_type([&] { carol.connect(f.daemon->rep_endpoint(), "demo"); });
    CHECK(err.rfind("TimeoutError", 0) == 0);
    CHECK_THAT(err, Catch::Contains("refused this client's key"));  // why, from the failed handshake
  }
  const std::string server_key = f.daemon->catalog_block()["provenance"][0]["curve"].get<std::string>();
  zmq::context_t ctx(1);
  auto curve = [&](zmq::socket_type type, const mktl::KeyPair& key, const std::string& endpoint) {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::curve_serverkey, server_key);
    s.set(zmq::sockopt::curve_publickey, key.public_key);
    s.set(zmq::sockopt::curve_secretkey, key.secret_key);
    s.connect(endpoint);
    return s;
  };
  zmq::socket_t carol_req = curve(zmq::socket_type::dealer, f.carol, f.daemon->rep_endpoint());
  for (const char* frame : {"a", "00000001", "SET", "demo.setpoint", "", "{\"value\": 1}"})
    carol_req.send(zmq::buffer(std::string(frame)), std::string(frame) == "{\"value\": 1}" ? zmq::send_flags::none
                                                                                            : zmq::send_flags::sndmore);
  CHECK_FALSE(test::recv_frames(carol_req, 300ms).has_value());
  zmq::socket_t carol_sub = curve(zmq::socket_type::sub, f.carol, f.daemon->pub_endpoint());
  carol_sub.set(zmq::sockopt::subscribe, "");
  // bob's raw SUB: a listed key without subscribe rights is refused too.
  zmq::socket_t bob_sub = curve(zmq::socket_type::sub, f.bob, f.daemon->pub_endpoint());
  bob_sub.set(zmq::sockopt::subscribe, "");

  // A client without a key pair learns from the catalog that CURVE is needed
  // and says so before sending anything.
  auto plain = f.client("", 0.3);
  std::string err = error_type([&] { plain->get("demo.temp"); });
  CHECK(err.rfind("PermissionError", 0) == 0);
  CHECK(err.find("requires CURVE") != std::string::npos);
  CHECK(err.find("--key") != std::string::npos);
  CHECK_THROWS_WITH(plain->subscribe("demo.temp", [](const std::string&, const mktl::Reading&) {}),
                    Catch::Contains("requires CURVE"));

  // A plain-text peer that does not know (the Python reference, a raw
  // socket): no ACK, no answer at all.
  {
    auto o = test::client_options(f.home);  // its own $MKTL_HOME: no catalog, no key
    o.ack_timeout = 0.3;
    mktl::Client unaware(o);
    const std::string err = error_type([&] { unaware.request(f.daemon->rep_endpoint(), "GET", "demo.temp"); });
    CHECK(err.rfind("TimeoutError", 0) == 0);
    CHECK_THAT(err, Catch::Contains("requires CURVE"));  // certain, or one of two causes named
    test::RawDealer raw(f.daemon->rep_endpoint());
    raw.request("00000001", "GET", "demo.temp");
    CHECK_FALSE(raw.recv(300ms).has_value());
  }

  // Meanwhile alice's broadcasts flow, and carol's subscription sees none.
  test::Collector to_alice;
  auto sa = alice->subscribe("demo.setpoint", to_alice.callback());
  int attempt = 0;  // a new value each time: only changes are broadcast
  REQUIRE(test::wait_until([&] {
    alice->set("demo.setpoint", mktl::Reading(Json(100 + ++attempt)));
    return to_alice.wait_for_count(1, 50ms);
  }));
  CHECK(alice->get("demo.setpoint").value != Json(1));  // carol's SET was never applied
  CHECK_FALSE(test::recv_frames(carol_sub, 300ms).has_value());
  CHECK_FALSE(test::recv_frames(bob_sub, 10ms).has_value());
  // The same raw SUB with alice's key does receive them.
  zmq::socket_t alice_sub = curve(zmq::socket_type::sub, f.alice, f.daemon->pub_endpoint());
  alice_sub.set(zmq::sockopt::subscribe, "demo.setpoint.");
  std::optional<std::vector<std::string>> got;
  REQUIRE(test::wait_until([&] {
    alice->set("demo.setpoint", mktl::Reading(Json(500 + ++attempt)));
    got = test::recv_frames(alice_sub, 50ms);
    return got.has_value();
  }));
  CHECK((*got)[0] == "demo.setpoint.");
}

TEST_CASE("CURVE daemon: a client it refuses fails each request in turn, none waits for ever", "[security][net]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  SecureFixture f;
  // A plain client asking by address (as a registry checks a daemon): the
  // handshake fails, and libzmq then gives the connection up for good. Each
  // request still ends, with the reason, on a new connection.
  auto o = test::client_options(f.home);  // its own $MKTL_HOME: no catalog, no key
  o.ack_timeout = 0.3;
  mktl::Client plain(o);
  for (int i = 0; i < 4; ++i) {
    INFO("request " << i);
    const std::string err = error_type([&] { plain.request(f.daemon->rep_endpoint(), "GET", "demo._hash"); });
    CHECK(err.rfind("TimeoutError", 0) == 0);
  }
}

TEST_CASE("CURVE handshake probe: a daemon with the key answers it, other peers do not", "[security][net]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  SecureFixture f;
  zmq::context_t context(1);
  const std::string key = f.daemon->catalog_block()["provenance"][0]["curve"].get<std::string>();
  // The daemon refuses the probe's key, after proving its own.
  CHECK(mktl::transport::curve_daemon_answers(context, f.daemon->rep_endpoint(), key, 5.0));
  CHECK(mktl::transport::curve_daemon_answers(context, f.daemon->rep_endpoint(), key, 5.0));
  // Another key: the daemon cannot read the probe's HELLO.
  CHECK_FALSE(mktl::transport::curve_daemon_answers(context, f.daemon->rep_endpoint(), f.carol.public_key, 2.0));
  // A plain daemon: no CURVE at all.
  test::TempDir plain_home;
  mktl::Daemon plain("plain", "plain1", Json::parse(kItems), test::isolated(plain_home));
  plain.start();
  CHECK_FALSE(mktl::transport::curve_daemon_answers(context, plain.rep_endpoint(), key, 2.0));
  const std::string gone = plain.rep_endpoint();
  plain.stop();
  // Nothing listening.
  CHECK_FALSE(mktl::transport::curve_daemon_answers(context, gone, key, 1.0));
  // What a block announced by anyone may hold: no key, no address.
  CHECK_FALSE(mktl::transport::curve_daemon_answers(context, f.daemon->rep_endpoint(), "not a key", 1.0));
  CHECK_FALSE(mktl::transport::curve_daemon_answers(context, "tcp://no such host:x", key, 1.0));
}

TEST_CASE("CURVE daemon: a pinned server key reaches it through connect() but a wrong one does not", "[security][net]") {
  if (!mktl::curve_available()) MKTL_SKIP("libzmq without CURVE");
  SecureFixture f;
  auto o = test::client_options(f.home);  // no shared cache: only connect()
  o.key = f.home.str() + "/keys/alice.key";
  o.server_key = f.home.str() + "/keys/demo-daemon.pub";
  {
    mktl::Client c(o);
    REQUIRE(c.connect(f.daemon->rep_endpoint(), "demo") == std::vector<std::string>{"demo"});
    CHECK(c.get("demo.temp").value == Json(20.5));
  }
  o.server_key = f.carol.public_key;  // not the daemon's: the handshake fails
  o.ack_timeout = 0.3;
  mktl::Client wrong(o);
  CHECK(error_type([&] { wrong.connect(f.daemon->rep_endpoint(), "demo"); }).rfind("TimeoutError", 0) == 0);
}

TEST_CASE("security off: no curve in the catalog, plain clients as before", "[security][net]") {
  test::TempDir home;
  mktl::Daemon d("demo", "demo1", Json::parse(kItems), test::isolated(home));
  d.start();
  CHECK_FALSE(d.catalog_block()["provenance"][0].contains("curve"));
  mktl::Client c(test::client_options(home));
  c.connect(d.rep_endpoint(), "demo");
  c.set("demo.setpoint", mktl::Reading(Json(3)));
  CHECK(c.get("demo.setpoint").value == Json(3));
  d.stop();
}

}  // namespace test_security
