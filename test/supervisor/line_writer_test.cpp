// The off-loop line writer: lines arrive in order, and a stalled reader costs dropped lines,
// never a blocked writer.

#include "supervisor/line_writer.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace berth;

TEST_CASE("line writer: lines in order, and a full pipe drops and counts but never blocks",
          "[line_writer]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::FILE* out = ::fdopen(fds[1], "w");
  REQUIRE(out);
  std::string read_back;
  std::thread reader;
  {
    LineWriter writer(out, 16 * 1024);
    CHECK(writer.write("first"));
    CHECK(writer.write("second"));
    // Nobody reads: the pipe (64 KiB) and then the queue (16 KiB) fill up.
    const std::string line(1000, 'x');
    const auto start = std::chrono::steady_clock::now();
    int refused = 0;
    for (int i = 0; i < 500; ++i)
      refused += writer.write(line) ? 0 : 1;
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK(refused > 0);
    CHECK(writer.dropped() == static_cast<std::uint64_t>(refused));
    // A reader drains the pipe so the writer can finish what it queued.
    reader = std::thread([&] {
      char buffer[4096];
      for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
        read_back.append(buffer, static_cast<std::size_t>(n));
    });
    // ~LineWriter writes the queue before returning.
  }
  std::fclose(out);  // the reader sees the end
  reader.join();
  ::close(fds[0]);
  CHECK(read_back.starts_with("first\nsecond\nxxx"));
}
