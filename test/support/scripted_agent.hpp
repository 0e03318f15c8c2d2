#pragma once
// A scripted QEMU guest agent on a real unix socket, in-process, for tests of the agent client
// and of what berth does with it: each handshake (guest-sync-delimited) is answered at once with
// its id, every other command as the test's script says.

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace berth::test {

struct Dir {
  std::filesystem::path path;
  Dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "berth-agent-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~Dir() { std::filesystem::remove_all(path); }
};

// How the scripted agent answers one command (without the delimiter); the reply's text, or
// nullopt for no reply at all.
using Script = std::function<std::optional<std::string>(const std::string& command)>;

// Serves one connection: answers each handshake at once (delimiter and id) and each other
// command as `script` says; `held` replies are written before the next handshake's reply.
inline boost::asio::awaitable<void> serve(boost::asio::local::stream_protocol::socket socket,
                                          Script script) {
  std::string buffer;
  for (;;) {
    boost::system::error_code ec;
    const auto n = co_await boost::asio::async_read_until(
        socket, boost::asio::dynamic_buffer(buffer), '\n',
        boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec)
      co_return;
    std::string line = buffer.substr(0, n);
    buffer.erase(0, n);
    while (!line.empty() && line.front() == '\xff')
      line.erase(0, 1);
    auto command = boost::json::parse(line).as_object();
    const std::string name(command.at("execute").as_string());
    std::string reply;
    if (name == "guest-sync-delimited") {
      auto pending = script(name);  // a late reply the scenario wants before the handshake's
      if (pending)
        reply = *pending;
      reply +=
          "\xff{\"return\": " + boost::json::serialize(command.at("arguments").at("id")) + "}\n";
    } else if (auto answer = script(name)) {
      reply = *answer;
    } else {
      continue;
    }
    co_await boost::asio::async_write(socket, boost::asio::buffer(reply),
                                      boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec)
      co_return;
  }
}

// Accepts connections on `path` and serves each with `script`.
inline boost::asio::awaitable<void> agent(
    std::shared_ptr<boost::asio::local::stream_protocol::acceptor> acceptor, Script script) {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor->async_accept(
        boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec)
      co_return;
    boost::asio::co_spawn(acceptor->get_executor(), serve(std::move(socket), script),
                          boost::asio::detached);
  }
}

inline auto null_log() {
  return std::make_shared<spdlog::logger>("agent-test",
                                          std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace berth::test
