// The viewer's WebSocket route in-process: Api + HttpServer + VncProxy on loopback, with a unix
// socket server standing in for QEMU's viewer display (it greets like an RFB server and echoes).
// The token, the byte pump both ways, the cap of viewers (1013), QEMU absent, berth stopping
// (1001), and the metrics.

#include "supervisor/http/vnc_proxy.hpp"

#include <spdlog/sinks/null_sink.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <thread>

#include "supervisor/http/api.hpp"
#include "supervisor/http/http_server.hpp"

using namespace berth;
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using local = asio::local::stream_protocol;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kToken = "0123456789abcdef0123";
constexpr std::string_view kGreeting = "RFB 003.008\n";

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_st>());
}

// QEMU's viewer display, as far as the proxy can tell: greets each connection, then echoes.
asio::awaitable<void> fake_display(local::socket socket) {
  boost::system::error_code ec;
  co_await asio::async_write(socket, asio::buffer(kGreeting),
                             asio::redirect_error(asio::use_awaitable, ec));
  std::array<char, 4096> data{};
  while (!ec) {
    const auto n = co_await socket.async_read_some(asio::buffer(data),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    co_await asio::async_write(socket, asio::buffer(data.data(), n),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> accept_displays(local::acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      co_return;
    asio::co_spawn(acceptor.get_executor(), fake_display(std::move(socket)), asio::detached);
  }
}

struct Fixture {
  asio::io_context io;
  std::filesystem::path dir;
  RuntimeState state;
  MetricsRegistry registry;
  Config cfg;
  Api api{io, state, registry, cfg, std::string(kToken), quiet()};
  HttpServer control{io, "control", HttpLimits{},
                     [this](HttpRequest r, asio::ip::tcp::endpoint p) { return api.control(r, p); },
                     quiet()};
  std::unique_ptr<VncProxy> proxy;
  std::unique_ptr<local::acceptor> display;
  std::thread thread;

  explicit Fixture(bool with_display = true, std::size_t max_viewers = 3) {
    std::string pattern = (std::filesystem::temp_directory_path() / "berth-vnc-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    proxy = std::make_unique<VncProxy>(io, dir / "vnc.sock", registry, quiet(), max_viewers);
    api.add_websocket("/api/v1/vnc", proxy->session(), "binary");
    if (with_display) {
      display = std::make_unique<local::acceptor>(io, local::endpoint((dir / "vnc.sock").string()));
      asio::co_spawn(io, accept_displays(*display), asio::detached);
    }
    REQUIRE_FALSE(control.listen({asio::ip::address_v4::loopback(), 0}));
    thread = std::thread([this] { io.run(); });
  }
  ~Fixture() {
    io.stop();
    thread.join();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  // Runs `work` on the loop and waits for its value.
  template <class T, class F>
  T on_loop(F work) {
    return asio::post(io, asio::use_future(std::move(work))).get();
  }
};

using Client = websocket::stream<asio::ip::tcp::socket>;

// A viewer: connects and upgrades with the cookie (or `cookie` empty: none); throws if refused.
std::unique_ptr<Client> open_viewer(asio::io_context& client, const HttpServer& server,
                                    std::string cookie = "berth_token=" + std::string(kToken),
                                    websocket::response_type* answer = nullptr) {
  auto ws = std::make_unique<Client>(client);
  ws->next_layer().connect(server.local_endpoint());
  ws->set_option(websocket::stream_base::decorator([cookie](auto& request) {
    if (!cookie.empty())
      request.set(boost::beast::http::field::cookie, cookie);
    request.set(boost::beast::http::field::sec_websocket_protocol, "binary");
  }));
  websocket::response_type ignored;
  ws->handshake(answer ? *answer : ignored, "127.0.0.1", "/api/v1/vnc");
  ws->binary(true);
  return ws;
}

std::string read_message(Client& ws) {
  boost::beast::flat_buffer in;
  ws.read(in);
  return boost::beast::buffers_to_string(in.data());
}

// Reads until the server closes; returns the close code it sent.
websocket::close_code read_until_closed(Client& ws) {
  boost::beast::flat_buffer in;
  boost::system::error_code ec;
  while (!ec)
    ws.read(in, ec);
  CHECK(ec == websocket::error::closed);
  return static_cast<websocket::close_code>(ws.reason().code);
}

}  // namespace

TEST_CASE("viewer: the WebSocket needs the token, then carries RFB bytes both ways", "[viewer]") {
  Fixture f;
  asio::io_context client;
  websocket::response_type answer;
  CHECK_THROWS(open_viewer(client, f.control, "", &answer));
  CHECK(answer.result() == boost::beast::http::status::unauthorized);
  CHECK_THROWS(open_viewer(client, f.control, "berth_token=wrong-wrong-wrong-wrong", &answer));
  CHECK(answer.result() == boost::beast::http::status::unauthorized);

  auto ws = open_viewer(client, f.control, "berth_token=" + std::string(kToken), &answer);
  CHECK(answer.result() == boost::beast::http::status::switching_protocols);
  CHECK(answer[boost::beast::http::field::sec_websocket_protocol] == "binary");
  CHECK(read_message(*ws) == kGreeting);
  ws->write(asio::buffer(std::string_view("RFB 003.008\n")));
  std::string echoed;
  while (echoed.size() < kGreeting.size())
    echoed += read_message(*ws);
  CHECK(echoed == kGreeting);
  CHECK(f.on_loop<std::size_t>([&] { return f.proxy->viewers(); }) == 1);
  ws->close(websocket::close_code::normal);
  // The proxy counts both directions and shows the gauge in the registry.
  const auto text = f.on_loop<std::string>([&] { return f.registry.render(); });
  CHECK_THAT(text, Catch::Contains("berth_viewer_connections_total 1")
                       && Catch::Contains("berth_viewer_sent_bytes_total 12")
                       && Catch::Contains("berth_viewers "));
}

TEST_CASE("viewer: beyond the cap a viewer is closed with 1013, the others keep going",
          "[viewer]") {
  Fixture f(true, 2);
  asio::io_context client;
  auto first = open_viewer(client, f.control);
  auto second = open_viewer(client, f.control);
  CHECK(read_message(*first) == kGreeting);
  CHECK(read_message(*second) == kGreeting);
  auto third = open_viewer(client, f.control);  // upgraded, then closed at once
  CHECK(read_until_closed(*third) == websocket::close_code::try_again_later);
  first->write(asio::buffer(std::string_view("still here")));
  CHECK(read_message(*first) == "still here");
  CHECK(f.on_loop<std::uint64_t>([&] { return f.proxy->counters().refused; }) == 1);
  // One leaves: there is room again.
  first->close(websocket::close_code::normal);
  std::unique_ptr<Client> fourth;
  for (int i = 0; i < 200 && !fourth; ++i) {  // until the proxy has seen the first one go
    auto candidate = open_viewer(client, f.control);
    boost::beast::flat_buffer in;
    boost::system::error_code ec;
    candidate->read(in, ec);
    if (!ec) {
      CHECK(boost::beast::buffers_to_string(in.data()) == kGreeting);
      fourth = std::move(candidate);
    }
  }
  CHECK(fourth);
}

TEST_CASE("viewer: without QEMU's display the viewer is told the VM is not running", "[viewer]") {
  Fixture f(false);
  asio::io_context client;
  auto ws = open_viewer(client, f.control);
  CHECK(read_until_closed(*ws) == websocket::close_code::try_again_later);
  CHECK(ws->reason().reason == "the VM is not running");
  CHECK(f.on_loop<std::uint64_t>([&] { return f.proxy->counters().failed; }) == 1);
}

TEST_CASE("viewer: when berth stops, every viewer is closed with 1001 and new ones refused",
          "[viewer]") {
  Fixture f;
  asio::io_context client;
  auto a = open_viewer(client, f.control);
  auto b = open_viewer(client, f.control);
  CHECK(read_message(*a) == kGreeting);
  CHECK(read_message(*b) == kGreeting);
  auto closing = asio::co_spawn(f.io, f.proxy->close_all(5s), asio::use_future);
  CHECK(read_until_closed(*a) == websocket::close_code::going_away);
  CHECK(read_until_closed(*b) == websocket::close_code::going_away);
  closing.get();
  CHECK(f.on_loop<std::size_t>([&] { return f.proxy->viewers(); }) == 0);
  auto late = open_viewer(client, f.control);
  CHECK(read_until_closed(*late) == websocket::close_code::going_away);
}
