// The guest agent client against a scripted agent on a real unix socket, in-process: the
// handshake, deadlines, a late reply after a timeout, a lost socket and its reconnect, and a
// hostile reply.

#include "qemu/agent/agent_client.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>

#include "test/support/scripted_agent.hpp"

using namespace berth::agent;
namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using stream = asio::local::stream_protocol;

namespace {

using berth::test::agent;
using berth::test::Dir;
using berth::test::null_log;
using berth::test::Script;

// Runs `body` on a fresh loop to completion.
template <class Body>
void run(asio::io_context& io, Body body) {
  bool finished = false;
  std::exception_ptr error;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    finished = true;
    error = e;
    io.stop();  // the scripted agent's accept loop would keep the loop running
  });
  io.run_for(60s);
  if (error)
    std::rethrow_exception(error);
  REQUIRE(finished);
}

}  // namespace

TEST_CASE("guest agent client: commands, deadlines, late replies and reconnects", "[agent]") {
  Dir dir;
  const auto path = dir.path / "agent.sock";
  asio::io_context io;
  auto acceptor = std::make_shared<stream::acceptor>(io, stream::endpoint(path.string()));
  bool late_reply_pending = false;
  int pings = 0;
  Script script = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "guest-sync-delimited") {
      if (!late_reply_pending)
        return std::nullopt;
      late_reply_pending = false;
      return std::string("{\"return\": \"late\"}\n");
    }
    if (name == "guest-ping") {
      ++pings;
      return std::string("{\"return\": {}}\n");
    }
    if (name == "guest-slow") {
      late_reply_pending = true;  // answers only just before the next handshake
      return std::nullopt;
    }
    if (name == "guest-huge")
      return std::string(kMaxReplyBytes + 10, 'x');
    if (name == "guest-shutdown")
      return std::nullopt;
    return std::string("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command "
                       + name + " has not been found\"}}\n");
  };
  asio::co_spawn(io, agent(acceptor, script), asio::detached);
  auto client = Client::create(io.get_executor(), path, null_log());

  run(io, [&]() -> asio::awaitable<void> {
    auto ping = co_await client->execute("guest-ping", {}, 5s);
    CHECK(ping.ok());
    CHECK(client->answering());

    auto missing = co_await client->execute("guest-nope", {}, 5s);
    REQUIRE(missing.error);
    CHECK(missing.error->error_class == "CommandNotFound");

    // No reply in time: timed out; its late reply must not be taken for the next command's.
    auto slow = co_await client->execute("guest-slow", {}, 200ms);
    CHECK(slow.transport == boost::system::errc::timed_out);
    CHECK_FALSE(client->answering());
    auto after = co_await client->execute("guest-ping", {}, 5s);
    CHECK(after.ok());
    CHECK(after.value.is_object());

    // Commands from several coroutines take turns.
    int done = 0;
    for (int i = 0; i < 3; ++i)
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            auto r = co_await client->execute("guest-ping", {}, 5s);
            CHECK(r.ok());
            ++done;
          },
          asio::detached);
    auto last = co_await client->execute("guest-ping", {}, 5s);
    CHECK(last.ok());
    asio::steady_timer settle(io, 100ms);
    co_await settle.async_wait(asio::use_awaitable);
    CHECK(done == 3);

    // A hostile reply (a line over the limit) is a protocol error; the next handshake recovers.
    auto huge = co_await client->execute("guest-huge", {}, 5s);
    CHECK(huge.transport == boost::system::errc::protocol_error);

    // guest-shutdown: no reply means it was sent.
    json::object mode;
    mode["mode"] = "powerdown";
    auto shutdown = co_await client->send("guest-shutdown", mode, 5s, 300ms);
    CHECK(shutdown.ok());
    auto again = co_await client->execute("guest-ping", {}, 5s);
    CHECK(again.ok());
  });
  CHECK(pings >= 6);
}

TEST_CASE("guest agent client: no agent, then a new socket (QEMU restarted)", "[agent]") {
  Dir dir;
  const auto path = dir.path / "agent.sock";
  asio::io_context io;
  auto client = Client::create(io.get_executor(), path, null_log());
  Script pong = [](const std::string& name) -> std::optional<std::string> {
    if (name == "guest-ping")
      return std::string("{\"return\": {}}\n");
    return std::nullopt;
  };
  Script silent = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };

  run(io, [&]() -> asio::awaitable<void> {
    auto nobody = co_await client->execute("guest-ping", {}, 1s);
    CHECK(nobody.transport == boost::system::errc::not_connected);

    // QEMU listens but the guest's agent does not run: the handshake times out.
    auto first = std::make_shared<stream::acceptor>(io, stream::endpoint(path.string()));
    asio::co_spawn(io, agent(first, silent), asio::detached);
    auto quiet = co_await client->execute("guest-ping", {}, 300ms);
    CHECK(quiet.transport == boost::system::errc::timed_out);

    // QEMU goes away: the socket closes; a new QEMU listens at the same path.
    first->close();
    std::filesystem::remove(path);
    auto second = std::make_shared<stream::acceptor>(io, stream::endpoint(path.string()));
    asio::co_spawn(io, agent(second, pong), asio::detached);
    client->close();
    auto back = co_await client->execute("guest-ping", {}, 5s);
    CHECK(back.ok());
    CHECK(client->answering());
    second->close();
  });
}
