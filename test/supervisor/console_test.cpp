// The serial console hub (scrollback, slow viewers, the input cap, the pipe to QEMU's stdin) and
// how its output becomes stdout lines or JSON records. No timed assertion: the loop is polled.

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "supervisor/console/serial_console.hpp"
#include "supervisor/console/stdio_console.hpp"
#include "supervisor/logging.hpp"

using namespace berth;
namespace asio = boost::asio;

TEST_CASE("console: a new viewer gets the last 64 KiB, then what follows", "[console]") {
  asio::io_context io;
  SerialConsole console(io.get_executor());
  std::string sunk;
  console.set_sink([&sunk](std::string_view bytes) { sunk.append(bytes); });
  const std::string early(70 * 1024, 'a');
  console.output(early);
  console.output("login: ");
  auto viewer = console.attach();
  const std::string replay = viewer->take();
  CHECK(replay.size() == 64 * 1024);
  CHECK(replay.ends_with("aaalogin: "));
  console.output("root\r\n");
  CHECK(viewer->take() == "root\r\n");
  CHECK(viewer->take().empty());
  CHECK(sunk == early + "login: root\r\n");  // stdout loses nothing
  console.detach(viewer);
  CHECK(console.viewers() == 0);
}

TEST_CASE("console: several viewers see the same output, and a waiting one wakes", "[console]") {
  asio::io_context io;
  SerialConsole console(io.get_executor());
  auto one = console.attach();
  auto two = console.attach();
  std::string seen;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await two->wait();
        seen = two->take();
      },
      asio::detached);
  io.poll();
  CHECK(seen.empty());
  console.output("hello");
  io.poll();
  CHECK(seen == "hello");
  CHECK(one->take() == "hello");
}

TEST_CASE("console: a viewer 256 KiB behind skips to a marker and the others lose nothing",
          "[console]") {
  asio::io_context io;
  SerialConsole console(io.get_executor());
  auto slow = console.attach();
  auto fast = console.attach();
  const std::string chunk(4096, 'x');
  std::size_t fast_got = 0;
  for (int i = 0; i < 100; ++i) {  // 400 KiB; `fast` keeps up, `slow` never reads
    console.output(chunk);
    fast_got += fast->take().size();
  }
  CHECK(fast_got == 100 * chunk.size());
  const std::string behind = slow->take();
  CHECK(behind.size() <= 256 * 1024 + 200);
  CHECK(behind.find("bytes of console output skipped") != std::string::npos);
  const auto skipped = console.counters().viewer_skipped_bytes;
  CHECK(skipped > 0);
  CHECK(behind.find(std::to_string(skipped) + " bytes") != std::string::npos);
  // What it still gets after the marker is the newest output, in order.
  console.output("tail");
  CHECK(slow->take() == "tail");
}

TEST_CASE("console: input beyond 64 KiB is dropped and counted", "[console]") {
  asio::io_context io;
  SerialConsole console(io.get_executor());
  CHECK(console.input(std::string(60 * 1024, 'k')) == 60 * 1024);
  CHECK(console.input(std::string(8 * 1024, 'k')) == 4 * 1024);
  CHECK(console.counters().input_dropped_bytes == 4 * 1024);
  CHECK(console.take_input().size() == 64 * 1024);
  CHECK(console.input("ls\r") == 3);
  CHECK(console.take_input() == "ls\r");
}

TEST_CASE("console: queued input reaches QEMU's stdin pipe, and none after the guest is gone",
          "[console]") {
  asio::io_context io;
  SerialConsole console(io.get_executor());
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
  const auto guest = console.attach_guest(fds[1]);
  console.input("root\r");
  io.poll();
  char buffer[64];
  const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
  REQUIRE(n == 5);
  CHECK(std::string(buffer, 5) == "root\r");
  console.guest_gone(guest + 1);  // another QEMU's: this one stays
  console.input("a");
  io.poll();
  CHECK(::read(fds[0], buffer, sizeof buffer) == 1);
  console.guest_gone(guest);
  io.poll();
  CHECK(::read(fds[0], buffer, sizeof buffer) == 0);  // the write end is closed
  ::close(fds[0]);
}

TEST_CASE("console: stdout modes - raw on a terminal, lines or JSON records otherwise",
          "[console]") {
  CHECK(console_output_for(true, LogFormat::kJson) == ConsoleOutput::kRaw);
  CHECK(console_output_for(false, LogFormat::kJson) == ConsoleOutput::kJson);
  CHECK(console_output_for(false, LogFormat::kText) == ConsoleOutput::kLines);
}

TEST_CASE("console: lines are split at NL, lose their CR, and are cut when too long", "[console]") {
  LineSplitter lines(8);
  CHECK(lines.feed("abc").empty());
  CHECK(lines.feed("def\r\nxy\n") == std::vector<std::string>{"abcdef", "xy"});
  CHECK(lines.feed("0123456789\n") == std::vector<std::string>{"01234567", "89"});
  CHECK(lines.feed("login: ").empty());
  CHECK(lines.flush() == "login: ");
  CHECK_FALSE(lines.flush());
}

TEST_CASE("console: a JSON record of console bytes is valid JSON of logger console", "[console]") {
  const std::string line = "\x1b[1mbold\x1b[0m \xff\xfe caf\xc3\xa9 \"q\" \\";
  const std::string record =
      json_log_record(std::chrono::system_clock::time_point{}, "info", "console", valid_utf8(line));
  REQUIRE(record.ends_with("}\n"));
  CHECK(record.find('\n') == record.size() - 1);
  const auto value = boost::json::parse(record);  // throws on invalid JSON
  const auto& object = value.as_object();
  CHECK(object.at("logger").as_string() == "console");
  CHECK(object.at("level").as_string() == "info");
  CHECK(object.at("time").as_string() == "1970-01-01T00:00:00.000Z");
  CHECK(object.at("msg").as_string()
        == "\x1b[1mbold\x1b[0m \xEF\xBF\xBD\xEF\xBF\xBD caf\xc3\xa9 \"q\" \\");
}

TEST_CASE("console: invalid UTF-8 becomes U+FFFD, valid text stays", "[console]") {
  CHECK(valid_utf8("plain") == "plain");
  CHECK(valid_utf8("\xe2\x82\xac") == "\xe2\x82\xac");                          // a 3-byte sequence
  CHECK(valid_utf8("\xf0\x9f\x98\x80") == "\xf0\x9f\x98\x80");                  // a 4-byte sequence
  CHECK(valid_utf8("\xc0\xaf") == "\xEF\xBF\xBD\xEF\xBF\xBD");                  // an overlong slash
  CHECK(valid_utf8("\xed\xa0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(valid_utf8("ab\xe2\x82") == "ab\xEF\xBF\xBD\xEF\xBF\xBD");              // cut short
}
