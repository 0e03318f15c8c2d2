#include "common/metrics.hpp"

#include <catch2/catch.hpp>

TEST_CASE("common: the registry renders counters, gauges, families and histograms", "[common]") {
  berth::MetricsRegistry registry;
  std::uint64_t answered = 7;
  registry.counter("berth_x_total", "Things.", [&] { return static_cast<double>(answered); });
  registry.gauge("berth_up", "Up.", [] { return 0.5; });
  registry.family(berth::MetricType::kCounter, "berth_io_total", "I/O.", [] {
    return std::vector<berth::Sample>{{{{"device", "disk\"0"}}, 3}, {{{"device", "cd"}}, 4}};
  });
  registry.family(berth::MetricType::kGauge, "berth_empty", "Nothing yet.",
                  [] { return std::vector<berth::Sample>{}; });
  auto& lag = registry.histogram("berth_lag_seconds", "Lag.", {0.01, 0.001, 0.1});
  lag.observe(0.0005);
  lag.observe(0.05);
  lag.observe(2);
  answered = 9;  // read at render time

  CHECK(registry.render()
        == "# HELP berth_x_total Things.\n# TYPE berth_x_total counter\nberth_x_total 9\n"
           "# HELP berth_up Up.\n# TYPE berth_up gauge\nberth_up 0.5\n"
           "# HELP berth_io_total I/O.\n# TYPE berth_io_total counter\n"
           "berth_io_total{device=\"disk\\\"0\"} 3\nberth_io_total{device=\"cd\"} 4\n"
           "# HELP berth_lag_seconds Lag.\n# TYPE berth_lag_seconds histogram\n"
           "berth_lag_seconds_bucket{le=\"0.001\"} 1\nberth_lag_seconds_bucket{le=\"0.01\"} 1\n"
           "berth_lag_seconds_bucket{le=\"0.1\"} 2\nberth_lag_seconds_bucket{le=\"+Inf\"} 3\n"
           "berth_lag_seconds_sum 2.0505\nberth_lag_seconds_count 3\n");
}

TEST_CASE("common: registering a name again replaces it, and remove forgets it", "[common]") {
  berth::MetricsRegistry registry;
  registry.counter("a_total", "A.", [] { return 1.0; });
  registry.counter("b_total", "B.", [] { return 2.0; });
  registry.counter("a_total", "A again.", [] { return 3.0; });
  CHECK(registry.names() == std::vector<std::string>{"a_total", "b_total"});
  CHECK(registry.render().find("a_total 3\n") != std::string::npos);
  registry.remove("a_total");
  CHECK(registry.names() == std::vector<std::string>{"b_total"});
}
