// The loop-lag probe: a timer on the loop that measures how late it fires.

#include "supervisor/loop_lag.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <thread>

using namespace berth;
using namespace std::chrono_literals;

TEST_CASE("loop lag: a blocked loop shows up in berth_loop_lag_seconds", "[loop_lag]") {
  boost::asio::io_context io;
  MetricsRegistry registry;
  LoopLagProbe probe(io.get_executor(), registry, 10ms);
  probe.start();
  // Block the loop for 80 ms while the probe's timer is due.
  boost::asio::steady_timer block(io, 15ms);
  block.async_wait([](boost::system::error_code) { std::this_thread::sleep_for(80ms); });
  io.run_for(200ms);
  probe.stop();
  const auto text = registry.render();
  CHECK_THAT(text, Catch::Contains("# TYPE berth_loop_lag_seconds histogram\n")
                       && Catch::Contains("berth_loop_lag_seconds_bucket{le=\"0.001\"}")
                       && Catch::Contains("berth_loop_lag_seconds_bucket{le=\"1\"}")
                       && Catch::Contains("berth_loop_lag_seconds_count"));
  // Every observation is at most 1 s; at least one (the blocked one) is over 50 ms.
  const auto at = [&](const std::string& le) {
    const auto key = "berth_loop_lag_seconds_bucket{le=\"" + le + "\"} ";
    const auto pos = text.find(key);
    REQUIRE(pos != std::string::npos);
    return std::stoull(text.substr(pos + key.size()));
  };
  CHECK(at("1") >= 5);
  CHECK(at("0.05") < at("1"));
}
