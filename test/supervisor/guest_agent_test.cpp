// The supervisor's guest agent poll against a scripted agent on a real unix socket, in-process:
// it pings at once, but asks for the guest's facts only `settle` after the agent first answers
// (an agent appears while its guest boots, beside sshd and the other services).

#include "supervisor/guest_agent.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <map>

#include "test/support/scripted_agent.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using stream = asio::local::stream_protocol;

namespace {

// Polls a scripted agent every 10 ms with `settle` until the agent has seen `last` (then stops
// the loop) and returns how often it saw each command.
std::map<std::string, int> poll(std::chrono::steady_clock::duration settle, const std::string& last,
                                int times) {
  berth::test::Dir dir;
  const auto path = dir.path / "agent.sock";
  asio::io_context io;
  auto acceptor = std::make_shared<stream::acceptor>(io, stream::endpoint(path.string()));
  std::map<std::string, int> seen;
  berth::test::Script script = [&](const std::string& name) -> std::optional<std::string> {
    if (name == "guest-sync-delimited")
      return std::nullopt;
    if (++seen[name] == times && name == last)
      io.stop();
    if (name == "guest-ping")
      return std::string("{\"return\": {}}\n");
    return std::string("{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"no\"}}\n");
  };
  asio::co_spawn(io, berth::test::agent(acceptor, script), asio::detached);
  berth::GuestAgent agent(berth::test::null_log(), 60s);
  agent.attach(berth::agent::Client::create(io.get_executor(), path, berth::test::null_log()));
  asio::co_spawn(io, agent.run(10ms, 1h, settle), asio::detached);
  io.run_for(60s);
  CHECK(agent.connected());
  return seen;
}

}  // namespace

TEST_CASE("guest agent poll: the facts are asked for only once the agent has settled", "[agent]") {
  SECTION("not while the agent has just begun to answer") {
    const auto seen = poll(1h, "guest-ping", 20);
    CHECK(seen.at("guest-ping") == 20);
    CHECK_FALSE(seen.contains("guest-get-osinfo"));
    CHECK_FALSE(seen.contains("guest-get-fsinfo"));
  }
  SECTION("all six once it has") {
    const auto seen = poll(0s, "guest-get-users", 1);
    for (const char* name : {"guest-get-osinfo", "guest-get-host-name", "guest-get-timezone",
                             "guest-network-get-interfaces", "guest-get-fsinfo", "guest-get-users"})
      CHECK(seen.contains(name));
  }
}
