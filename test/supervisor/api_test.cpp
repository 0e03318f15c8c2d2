// The HTTP API's routing, limits and allow-list, in-process on loopback (no QEMU): HttpServer and
// Api with a RuntimeState whose VM is absent and a registry holding its metrics.

#include "supervisor/http/api.hpp"

#include <spdlog/sinks/null_sink.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include "supervisor/http/http_server.hpp"

using namespace berth;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_st>());
}

Config config() {
  Config c;
  c.health_port = 0;
  c.runtime_dir = "/tmp";
  c.vnc = true;
  return c;
}

// One API behind two loopback servers, run on a thread; requests are raw HTTP over a socket.
struct Fixture {
  asio::io_context io;
  RuntimeState state;
  MetricsRegistry registry;
  Config cfg = config();
  Api api;
  HttpServer health;
  HttpServer control;
  std::thread thread;

  explicit Fixture(std::optional<std::string> token = std::nullopt, HttpLimits limits = {})
      : api(io, state, registry, cfg, std::move(token), quiet()),
        health(
            io, "health", limits,
            [this](HttpRequest r, asio::ip::tcp::endpoint p) { return api.health(r, p); }, quiet()),
        control(
            io, "control", limits,
            [this](HttpRequest r, asio::ip::tcp::endpoint p) { return api.control(r, p); },
            quiet()) {
    state.register_metrics(registry);
    health.register_metrics(registry);
    const asio::ip::tcp::endpoint any_port{asio::ip::address_v4::loopback(), 0};
    REQUIRE_FALSE(health.listen(any_port));
    REQUIRE_FALSE(control.listen(any_port));
  }
  void start() {
    thread = std::thread([this] { io.run(); });
  }
  ~Fixture() {
    io.stop();
    if (thread.joinable())
      thread.join();
  }

  // Sends `raw` to the server and returns everything it answers until it closes.
  static std::string exchange(const HttpServer& server, const std::string& raw) {
    asio::io_context client;
    asio::ip::tcp::socket socket(client);
    socket.connect(server.local_endpoint());
    asio::write(socket, asio::buffer(raw));
    std::string answer;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(answer), ec);
    return answer;
  }
  std::string get(const HttpServer& server, const std::string& target,
                  const std::string& headers = "") {
    return exchange(server, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
                                + "Connection: close\r\n\r\n");
  }
  std::string post(const std::string& target, const std::string& body,
                   const std::string& headers = "Content-Type: application/json\r\n") {
    return exchange(control, "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
                                 + "Content-Length: " + std::to_string(body.size())
                                 + "\r\nConnection: close\r\n\r\n" + body);
  }
};

}  // namespace

TEST_CASE("health: liveness answers while starting, readiness waits for the VM", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kImage);  // e.g. a long image download
  f.start();
  CHECK_THAT(f.get(f.health, "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
  const auto ready = f.get(f.health, "/readyz");
  CHECK_THAT(ready, Catch::StartsWith("HTTP/1.1 503") && Catch::Contains("not running yet"));
  CHECK_THAT(f.get(f.health, "/nope"), Catch::StartsWith("HTTP/1.1 404"));
  CHECK_THAT(
      f.exchange(f.health, "DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      Catch::StartsWith("HTTP/1.1 405"));
}

TEST_CASE("health: a start-up phase past its budget fails liveness, naming the phase", "[api]") {
  Fixture f;
  f.cfg.phase_budgets = *parse_phase_budgets("image=5,disk=5");
  const auto now = RuntimeState::Clock::now();
  f.state.enter_phase(Phase::kImage, now - 8s);
  f.state.progress(now - 2s);  // the download moves: fine
  f.start();
  auto moving = f.get(f.health, "/healthz");
  CHECK_THAT(moving, Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("\"phase\":\"image\"")
                         && Catch::Contains("\"phase_seconds\":8"));
  boost::asio::post(f.io, [&] { f.state.progress(now - 6s); });  // it stalled 6s ago
  auto stalled = f.get(f.health, "/healthz");
  CHECK_THAT(stalled, Catch::StartsWith("HTTP/1.1 503") && Catch::Contains("\"phase\":\"image\"")
                          && Catch::Contains("phase image made no progress for 6s (budget 5s")
                          && Catch::Contains("\"budget_seconds\":5"));
  boost::asio::post(f.io, [&] { f.state.enter_phase(Phase::kDisk, now - 7s); });
  CHECK_THAT(f.get(f.health, "/healthz"),
             Catch::StartsWith("HTTP/1.1 503") && Catch::Contains("phase disk has run for 7s"));
  boost::asio::post(f.io, [&] { f.state.enter_phase(Phase::kBooting, now); });
  // Booting, QEMU not answering QMP yet: alive within the booting budget.
  CHECK_THAT(f.get(f.health, "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
}

TEST_CASE("health: a running phase without QMP fails liveness", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kRunning);
  f.start();
  CHECK_THAT(f.get(f.health, "/healthz"),
             Catch::StartsWith("HTTP/1.1 503") && Catch::Contains("QMP is not connected"));
}

TEST_CASE("metrics: Prometheus text with the lifecycle and counters", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kDisk);
  f.state.qemu_starting();
  f.state.qemu_starting();
  f.registry.counter("berth_dhcp_acks_total", "DHCPACKs sent.", [] { return 3.0; });
  f.start();
  const auto text = f.get(f.health, "/metrics");
  CHECK_THAT(text, Catch::Contains("Content-Type: text/plain; version=0.0.4"));
  CHECK_THAT(text, Catch::Contains("berth_phase{phase=\"disk\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("berth_phase{phase=\"running\"} 0\n"));
  CHECK_THAT(
      text, Catch::Contains("# TYPE berth_qemu_starts_total counter\nberth_qemu_starts_total 2\n"));
  CHECK_THAT(text, Catch::Contains("berth_dhcp_acks_total 3\n"));
}

TEST_CASE("control: routes, JSON-only POSTs, cross-origin refusal, allow-list", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kRunning);
  f.start();
  CHECK_THAT(f.get(f.control, "/"),
             Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("<title>Berth console</title>"));
  CHECK_THAT(f.get(f.control, "/api/v1/status"),
             Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("\"qmp_allowed\":["));
  CHECK_THAT(f.post("/api/v1/powerdown", "{}", "Content-Type: text/plain\r\n"),
             Catch::StartsWith("HTTP/1.1 415"));
  CHECK_THAT(f.get(f.control, "/api/v1/status", "Origin: http://evil.example\r\n"),
             Catch::StartsWith("HTTP/1.1 403"));
  CHECK_THAT(f.get(f.control, "/api/v1/status", "Origin: http://127.0.0.1\r\n"),
             Catch::StartsWith("HTTP/1.1 200"));
  for (const char* command : {"human-monitor-command", "migrate", "device_add", "x-exit-preconfig",
                              "blockdev-change-medium", "quit"}) {
    INFO(command);
    CHECK_THAT(f.post("/api/v1/qmp", std::string("{\"execute\":\"") + command + "\"}"),
               Catch::StartsWith("HTTP/1.1 403") && Catch::Contains("not allowed"));
  }
  // Allowed, but there is no VM: a conflict, not a crash.
  CHECK_THAT(f.post("/api/v1/qmp", R"({"execute":"query-status"})"),
             Catch::StartsWith("HTTP/1.1 409"));
  CHECK_THAT(f.post("/api/v1/qmp", R"({"execute":"query-status","arguments":[1]})"),
             Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(f.post("/api/v1/qmp", "not json"), Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(f.get(f.control, "/api/v1/nothing"), Catch::StartsWith("HTTP/1.1 404"));
}

TEST_CASE("control: freeze and thaw without a guest agent answer 409 with why", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kRunning);
  f.start();
  // No agent at all.
  CHECK_THAT(f.post("/api/v1/fsfreeze", "{}"),
             Catch::StartsWith("HTTP/1.1 409") && Catch::Contains("no guest agent channel"));
  CHECK_THAT(f.get(f.control, "/api/v1/status"), Catch::Contains("\"guest_agent\":null"));
}

TEST_CASE("control: a guest agent that does not answer: 409, status and metrics say so", "[api]") {
  GuestAgent agent(quiet(), std::chrono::seconds(60));  // outlives the fixture's loop
  Fixture f;
  f.state.set_guest_agent(&agent);
  agent.register_metrics(f.registry);
  f.state.enter_phase(Phase::kRunning);
  f.start();
  for (const char* path : {"/api/v1/fsfreeze", "/api/v1/fsthaw"}) {
    INFO(path);
    CHECK_THAT(f.post(path, "{}"),
               Catch::StartsWith("HTTP/1.1 409") && Catch::Contains("no guest agent answers"));
  }
  CHECK_THAT(f.get(f.control, "/api/v1/status"),
             Catch::Contains("\"guest_agent\":{") && Catch::Contains("\"connected\":false"));
  CHECK_THAT(f.get(f.health, "/metrics"), Catch::Contains("berth_guest_agent_connected 0\n"));
}

TEST_CASE("control: a token, when set, is required as a bearer header or cookie", "[api]") {
  Fixture f(std::string("0123456789abcdef0123"));
  f.start();
  const auto refused = f.get(f.control, "/api/v1/status");
  CHECK_THAT(refused,
             Catch::StartsWith("HTTP/1.1 401") && Catch::Contains("WWW-Authenticate: Bearer"));
  CHECK_THAT(f.get(f.control, "/api/v1/status", "Authorization: Bearer wrong\r\n"),
             Catch::StartsWith("HTTP/1.1 401"));
  CHECK_THAT(f.get(f.control, "/api/v1/status", "Authorization: Bearer 0123456789abcdef0123\r\n"),
             Catch::StartsWith("HTTP/1.1 200"));
  CHECK_THAT(
      f.get(f.control, "/api/v1/status", "Cookie: a=1; berth_token=0123456789abcdef0123\r\n"),
      Catch::StartsWith("HTTP/1.1 200"));
  CHECK_THAT(f.get(f.control, "/api/v1/status", "Cookie: berth_token=0123456789abcdef012\r\n"),
             Catch::StartsWith("HTTP/1.1 401"));
}

TEST_CASE("control: a WebSocket route needs the token and the upgrade, and echoes", "[api]") {
  Fixture f(std::string("0123456789abcdef0123"));
  // The session answers each message with its text reversed, until the client closes.
  f.api.add_websocket(
      "/ws/echo",
      [](WebSocket& ws) -> asio::awaitable<void> {
        for (;;) {
          boost::beast::flat_buffer in;
          boost::system::error_code ec;
          co_await ws.async_read(in, asio::redirect_error(asio::use_awaitable, ec));
          if (ec)
            co_return;
          auto text = boost::beast::buffers_to_string(in.data());
          std::reverse(text.begin(), text.end());
          co_await ws.async_write(asio::buffer(text),
                                  asio::redirect_error(asio::use_awaitable, ec));
        }
      },
      "binary");
  f.start();
  const std::string upgrade =
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  CHECK_THAT(f.get(f.control, "/ws/echo", upgrade), Catch::StartsWith("HTTP/1.1 401"));
  CHECK_THAT(f.get(f.control, "/ws/echo", "Authorization: Bearer 0123456789abcdef0123\r\n"),
             Catch::StartsWith("HTTP/1.1 426"));
  CHECK_THAT(f.get(f.control, "/ws/echo",
                   upgrade + "Origin: http://evil.example\r\n"
                       + "Authorization: Bearer 0123456789abcdef0123\r\n"),
             Catch::StartsWith("HTTP/1.1 403"));

  asio::io_context client;
  boost::beast::websocket::stream<asio::ip::tcp::socket> ws(client);
  ws.next_layer().connect(f.control.local_endpoint());
  ws.set_option(boost::beast::websocket::stream_base::decorator([](auto& request) {
    request.set(boost::beast::http::field::cookie, "berth_token=0123456789abcdef0123");
    request.set(boost::beast::http::field::sec_websocket_protocol, "chat, binary");
  }));
  boost::beast::websocket::response_type answer;
  ws.handshake(answer, "127.0.0.1", "/ws/echo");
  CHECK(answer[boost::beast::http::field::sec_websocket_protocol] == "binary");
  ws.write(asio::buffer(std::string("viewer")));
  boost::beast::flat_buffer in;
  ws.read(in);
  CHECK(ws.got_binary());
  CHECK(boost::beast::buffers_to_string(in.data()) == "reweiv");
  ws.close(boost::beast::websocket::close_code::normal);
}

TEST_CASE("control: on loopback, state changes and the console need the token", "[api]") {
  Fixture f(std::string("0123456789abcdef0123"));
  f.state.enter_phase(Phase::kRunning);
  f.start();
  // Without it: a power action is refused and / is only the login form.
  CHECK_THAT(f.post("/api/v1/powerdown", "{}"), Catch::StartsWith("HTTP/1.1 401"));
  const auto login_form = f.get(f.control, "/");
  CHECK_THAT(login_form, Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("control-token"));
  CHECK_THAT(login_form, !Catch::Contains("<title>Berth console</title>"));
  // With the bearer header: allowed (409: there is no VM to power down).
  CHECK_THAT(
      f.post("/api/v1/powerdown", "{}",
             "Content-Type: application/json\r\nAuthorization: Bearer 0123456789abcdef0123\r\n"),
      Catch::StartsWith("HTTP/1.1 409"));
  // Login turns the bearer header into the cookie, which then opens the console and powers down.
  CHECK_THAT(f.post("/api/v1/login", "{}", "Content-Type: application/json\r\n"),
             Catch::StartsWith("HTTP/1.1 401"));
  const auto login =
      f.post("/api/v1/login", "{}",
             "Content-Type: application/json\r\nAuthorization: Bearer 0123456789abcdef0123\r\n");
  CHECK_THAT(login,
             Catch::StartsWith("HTTP/1.1 200")
                 && Catch::Contains("Set-Cookie: berth_token=0123456789abcdef0123; HttpOnly; "
                                    "SameSite=Strict; Path=/"));
  const std::string cookie = "Cookie: berth_token=0123456789abcdef0123\r\n";
  CHECK_THAT(f.get(f.control, "/", cookie), Catch::Contains("<title>Berth console</title>"));
  CHECK_THAT(f.post("/api/v1/powerdown", "{}", "Content-Type: application/json\r\n" + cookie),
             Catch::StartsWith("HTTP/1.1 409"));
  CHECK_THAT(f.post("/api/v1/logout", "{}", "Content-Type: application/json\r\n" + cookie),
             Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("Max-Age=0"));
}

TEST_CASE("control: the token is never accepted in the URL", "[api]") {
  Fixture f(std::string("0123456789abcdef0123"));
  f.start();
  CHECK_THAT(f.get(f.control, "/api/v1/status?token=0123456789abcdef0123"),
             Catch::StartsWith("HTTP/1.1 400") && Catch::Contains("not accepted in the URL"));
  CHECK_THAT(f.get(f.control, "/api/v1/events?token=0123456789abcdef0123"),
             Catch::StartsWith("HTTP/1.1 400"));
}

TEST_CASE("control: DNS rebinding (a Host that is not loopback) is refused", "[api]") {
  // A page on evil.example whose name now resolves to 127.0.0.1, where port-forward listens: its
  // Host and Origin agree, so the Origin check alone lets it through.
  Fixture f;
  f.cfg.control_listen.address = asio::ip::make_address("10.1.2.3");  // BERTH_CONTROL_LISTEN
  f.state.enter_phase(Phase::kRunning);
  f.start();
  const auto rebound =
      f.exchange(f.control,
                 "POST /api/v1/powerdown HTTP/1.1\r\nHost: evil.example:9251\r\n"
                 "Origin: http://evil.example:9251\r\nContent-Type: application/json\r\n"
                 "Content-Length: 2\r\nConnection: close\r\n\r\n{}");
  CHECK_THAT(rebound, Catch::StartsWith("HTTP/1.1 421") && Catch::Contains("Host header"));
  CHECK_THAT(f.exchange(f.control,
                        "GET /api/v1/status HTTP/1.1\r\nHost: evil.example\r\n"
                        "Connection: close\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 421"));
  for (const char* host : {"127.0.0.1:9251", "localhost", "localhost:9251", "127.1.2.3:80", "[::1]",
                           "[::1]:9251", "10.1.2.3:9251"}) {
    INFO(host);
    CHECK_THAT(f.exchange(f.control, std::string("GET /api/v1/status HTTP/1.1\r\nHost: ") + host
                                         + "\r\nConnection: close\r\n\r\n"),
               Catch::StartsWith("HTTP/1.1 200"));
  }
  CHECK_THAT(f.exchange(f.control,
                        "GET /api/v1/status HTTP/1.1\r\nHost: 10.0.0.1:9251\r\n"
                        "Connection: close\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 421"));
}

TEST_CASE("control: requests from another site may not change the VM", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kRunning);
  f.start();
  for (const char* site : {"cross-site", "same-site"}) {
    INFO(site);
    CHECK_THAT(
        f.post("/api/v1/powerdown", "{}",
               std::string("Content-Type: application/json\r\nSec-Fetch-Site: ") + site + "\r\n"),
        Catch::StartsWith("HTTP/1.1 403") && Catch::Contains("Sec-Fetch-Site"));
    CHECK_THAT(
        f.post("/api/v1/qmp", R"({"execute":"query-status"})",
               std::string("Content-Type: application/json\r\nSec-Fetch-Site: ") + site + "\r\n"),
        Catch::StartsWith("HTTP/1.1 403"));
  }
  for (const char* site : {"same-origin", "none"}) {
    INFO(site);
    CHECK_THAT(
        f.post("/api/v1/powerdown", "{}",
               std::string("Content-Type: application/json\r\nSec-Fetch-Site: ") + site + "\r\n"),
        Catch::StartsWith("HTTP/1.1 409"));
  }
  CHECK_THAT(f.get(f.control, "/api/v1/status", "Sec-Fetch-Site: cross-site\r\n"),
             Catch::StartsWith("HTTP/1.1 200"));  // reading is not changing; CORS keeps the answer
}

TEST_CASE("limits: oversized headers and bodies, garbage, and the connection cap", "[api]") {
  HttpLimits limits;
  limits.header_bytes = 1024;
  limits.body_bytes = 256;
  limits.max_connections = 2;
  limits.head_timeout = std::chrono::seconds(1);
  limits.read_timeout = std::chrono::seconds(1);
  Fixture f(std::nullopt, limits);
  f.start();
  CHECK_THAT(f.get(f.health, "/healthz", "X-Big: " + std::string(2000, 'a') + "\r\n"),
             Catch::StartsWith("HTTP/1.1 413") && Catch::Contains("malformed request"));
  CHECK_THAT(f.post("/api/v1/qmp", std::string(1000, ' ')), Catch::StartsWith("HTTP/1.1 413"));
  CHECK_THAT(f.exchange(f.health, "\x16\x03\x01 not http\r\n\r\n"),
             Catch::StartsWith("HTTP/1.1 400"));
  // Two idle connections fill the cap; a third is closed at once; after the read deadline the
  // idle ones are dropped and the server answers again.
  asio::io_context client;
  asio::ip::tcp::socket a(client), b(client);
  a.connect(f.health.local_endpoint());
  b.connect(f.health.local_endpoint());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(f.get(f.health, "/healthz").empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK_THAT(f.get(f.health, "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
}

namespace {

// A connection from `source` (any 127/8 address is this host's loopback) to `server`.
asio::ip::tcp::socket connect_from(asio::io_context& io, const char* source,
                                   const HttpServer& server) {
  asio::ip::tcp::socket socket(io);
  socket.open(asio::ip::tcp::v4());
  socket.bind({asio::ip::make_address_v4(source), 0});
  socket.connect(server.local_endpoint());
  return socket;
}

}  // namespace

TEST_CASE("health: one peer holding and dribbling connections cannot starve the probe", "[api]") {
  Fixture f(std::nullopt, probe_limits());
  f.start();
  using Clock = std::chrono::steady_clock;
  asio::io_context attacker;
  // 127.0.0.3 dribbles a request head, a byte every 100 ms (20 s for all of it)...
  const auto dribble_start = Clock::now();
  std::atomic<double> dribbled_for{-1};
  std::thread dribbler([&] {
    asio::io_context io;
    auto socket = connect_from(io, "127.0.0.3", f.health);
    const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'a');
    boost::system::error_code ec;
    for (char c : head) {
      asio::write(socket, asio::buffer(&c, 1), ec);
      if (ec)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    dribbled_for = std::chrono::duration<double>(Clock::now() - dribble_start).count();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // ...and 127.0.0.2 opens more connections than any cap and sends nothing on them.
  std::vector<asio::ip::tcp::socket> idle;
  for (int i = 0; i < 80; ++i)
    idle.push_back(connect_from(attacker, "127.0.0.2", f.health));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // The kubelet (127.0.0.1) probes every 250 ms for 4 s; each answer must come within 1 s.
  for (int probe = 0; probe < 16; ++probe) {
    INFO("probe " << probe);
    const auto asked = Clock::now();
    CHECK_THAT(f.get(f.health, "/healthz"), Catch::StartsWith("HTTP/1.1 200"));
    CHECK(Clock::now() - asked < std::chrono::seconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  dribbler.join();
  // The dribbled head was cut at the head deadline (2 s), long before its 20 s of bytes.
  CHECK(dribbled_for.load() > 0);
  CHECK(dribbled_for.load() < 3.5);
  // The refused connections are counted.
  CHECK_THAT(f.get(f.health, "/metrics"),
             Catch::Contains("berth_health_connections_refused_total{reason=\"per_peer\"}"));
}

TEST_CASE("readiness: a lease that expires unrenewed stops counting until it is renewed", "[api]") {
  Fixture f;
  f.state.enter_phase(Phase::kRunning);
  f.state.lease_bound(std::chrono::seconds(1));
  f.start();
  // The state is the loop's: change it there.
  auto on_loop = [&f](std::function<void()> change) {
    std::promise<void> done;
    asio::post(f.io, [&] {
      change();
      done.set_value();
    });
    done.get_future().wait();
  };
  CHECK_THAT(f.get(f.health, "/metrics"), Catch::Contains("\nberth_lease_given 1\n"));
  CHECK_THAT(f.get(f.control, "/api/v1/status"), Catch::Contains("\"lease_given\":true"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  CHECK_THAT(f.get(f.health, "/metrics"), Catch::Contains("\nberth_lease_given 0\n"));
  CHECK_THAT(f.get(f.control, "/api/v1/status"), Catch::Contains("\"lease_given\":false"));
  on_loop([&f] { f.state.lease_bound(std::chrono::seconds(1)); });
  CHECK_THAT(f.get(f.health, "/metrics"), Catch::Contains("\nberth_lease_given 1\n"));
}

TEST_CASE("readiness: the lease's reason follows bound, renewed, expired and released", "[api]") {
  using Clock = RuntimeState::Clock;
  using std::chrono::seconds;
  RuntimeState state;
  const auto t0 = Clock::now();
  CHECK_THAT(*state.lease_problem(t0), Catch::Contains("has not taken its DHCP lease yet"));
  state.lease_bound(seconds(4), t0);
  CHECK_FALSE(state.lease_problem(t0 + seconds(3)));
  CHECK(state.lease_given(t0 + seconds(3)));
  // Not renewed within its 4 s: expired, with the time it ended.
  const auto expired = state.lease_problem(t0 + seconds(4));
  REQUIRE(expired);
  CHECK_THAT(*expired, Catch::Matches("the guest's DHCP lease expired at "
                                      "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z and was not renewed"));
  CHECK_FALSE(state.lease_given(t0 + seconds(5)));
  // Renewed: ready again, until the new expiry.
  state.lease_bound(seconds(4), t0 + seconds(5));
  CHECK(state.lease_given(t0 + seconds(8)));
  CHECK_FALSE(state.lease_given(t0 + seconds(9)));
  state.lease_bound(seconds(4), t0 + seconds(9));
  state.lease_ended("the guest released its DHCP lease");
  CHECK(*state.lease_problem(t0 + seconds(10)) == "the guest released its DHCP lease");
  state.lease_bound(seconds(4), t0 + seconds(11));
  CHECK(state.lease_given(t0 + seconds(12)));
}

TEST_CASE("control: /web/ files need the token, and a page without it is the login form", "[api]") {
  Fixture f(std::string("0123456789abcdef0123"));
  std::string pattern = (std::filesystem::temp_directory_path() / "berth-web-XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  const std::filesystem::path web = pattern;
  f.cfg.web_dir = web;
  std::ofstream(web / "screen.html") << "<title>the screen</title>";
  std::ofstream(web / "screen.js") << "import RFB from './novnc/core/rfb.js';";
  f.start();
  const std::string cookie = "Cookie: berth_token=0123456789abcdef0123\r\n";
  const auto form = f.get(f.control, "/web/screen.html");
  CHECK_THAT(form, Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("control-token")
                       && !Catch::Contains("the screen"));
  CHECK_THAT(f.get(f.control, "/web/screen.js"), Catch::StartsWith("HTTP/1.1 401"));
  const auto page = f.get(f.control, "/web/screen.html", cookie);
  CHECK_THAT(page, Catch::StartsWith("HTTP/1.1 200") && Catch::Contains("<title>the screen</title>")
                       && Catch::Contains("Content-Security-Policy: default-src 'none'")
                       && Catch::Contains("Content-Type: text/html; charset=utf-8"));
  CHECK_THAT(f.get(f.control, "/web/screen.js", cookie),
             Catch::StartsWith("HTTP/1.1 200")
                 && Catch::Contains("Content-Type: text/javascript; charset=utf-8"));
  CHECK_THAT(f.get(f.control, "/web/../api_test.cpp", cookie), Catch::StartsWith("HTTP/1.1 404"));
  CHECK_THAT(f.get(f.control, "/web/%2e%2e/%2e%2e/etc/passwd", cookie),
             Catch::StartsWith("HTTP/1.1 404"));
  CHECK_THAT(f.get(f.control, "/web/missing.js", cookie), Catch::StartsWith("HTTP/1.1 404"));
  // A page from another origin may not load them with the user's cookie.
  CHECK_THAT(f.get(f.control, "/web/screen.js", cookie + "Origin: http://evil.example\r\n"),
             Catch::StartsWith("HTTP/1.1 403"));
  std::filesystem::remove_all(web);
}
