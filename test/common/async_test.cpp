#include "common/async.hpp"

#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

TEST_CASE("common: with_deadline returns the value or nullopt when the timer wins", "[common]") {
  asio::io_context io;
  std::optional<int> fast, slow;
  bool slow_done = true;
  auto sleep_then = [](std::chrono::milliseconds d, int v) -> asio::awaitable<int> {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
    co_return v;
  };
  auto sleep = [](std::chrono::milliseconds d) -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        fast = co_await berth::with_deadline(sleep_then(10ms, 1), 2s);
        slow = co_await berth::with_deadline(sleep_then(5s, 2), 20ms);
        slow_done = co_await berth::with_deadline(sleep(5s), 20ms);
      },
      asio::detached);
  const auto start = std::chrono::steady_clock::now();
  io.run();
  CHECK(fast == 1);
  CHECK_FALSE(slow);
  CHECK_FALSE(slow_done);
  CHECK(std::chrono::steady_clock::now() - start < 2s);  // the losers were cancelled
}

TEST_CASE("common: with_deadline keeps a variant result whole", "[common]") {
  // Asio's || flattens variants; every alternative must still count as "the work finished".
  asio::io_context io;
  using Value = std::variant<int, std::string>;
  std::optional<Value> first, second;
  auto give = [](Value v) -> asio::awaitable<Value> { co_return v; };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Arguments built before the co_await: GCC 12 miscompiles temporaries inside it.
        Value number = 7;
        Value text = std::string("text");
        first = co_await berth::with_deadline(give(number), 1s);
        second = co_await berth::with_deadline(give(text), 1s);
      },
      asio::detached);
  io.run();
  REQUIRE(first);
  CHECK(std::get<int>(*first) == 7);
  REQUIRE(second);
  CHECK(std::get<std::string>(*second) == "text");
}

TEST_CASE("common: run_blocking runs on a worker and resumes on the loop thread", "[common]") {
  asio::io_context io;
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id worker, resumed;
  int value = 0;
  bool threw = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        value = co_await berth::run_blocking([&worker] {
          worker = std::this_thread::get_id();
          return 42;
        });
        resumed = std::this_thread::get_id();
        try {
          co_await berth::run_blocking([]() -> int { throw std::runtime_error("disk on fire"); });
        } catch (const std::runtime_error& e) {
          threw = std::string(e.what()) == "disk on fire";
        }
      },
      asio::detached);
  io.run();
  CHECK(value == 42);
  CHECK(worker != loop_thread);
  CHECK(resumed == loop_thread);
  CHECK(threw);
}

TEST_CASE("common: run_blocking owns a callable that captures heap-owning values", "[common]") {
  // A capture with a destructor (a path, a string) must be destroyed once, after the call.
  asio::io_context io;
  std::string got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 200; ++i) {
          std::filesystem::path path = "/var/lib/berth/images/" + std::string(64, 'x');
          std::vector<std::string> words(8, std::string(100, 'y'));
          auto work = [path, words] { return path.string() + words.back(); };
          got = co_await berth::run_blocking(std::move(work));
        }
      },
      asio::detached);
  io.run();
  CHECK(got == "/var/lib/berth/images/" + std::string(64, 'x') + std::string(100, 'y'));
}

TEST_CASE("common: log_exceptions logs what ended a spawned coroutine", "[common]") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto log = std::make_shared<spdlog::logger>("t", sink);
  asio::io_context io;
  asio::co_spawn(
      io,
      []() -> asio::awaitable<void> {
        throw std::runtime_error("boom");
        co_return;
      },
      berth::log_exceptions(log, "the test task"));
  asio::co_spawn(
      io, []() -> asio::awaitable<int> { co_return 1; },
      berth::log_exceptions(log, "a quiet task"));
  io.run();
  log->flush();
  CHECK(out.str().find("the test task ended by an exception: boom") != std::string::npos);
  CHECK(out.str().find("quiet") == std::string::npos);
}
