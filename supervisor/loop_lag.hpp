#pragma once
// How late the event loop runs timers: a periodic timer measures how long after its expiry it
// fired and observes that into a histogram (berth_loop_lag_seconds). Anything that blocks the
// loop (a slow syscall, a stalled pipe) shows up as lag.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <vector>

#include "common/metrics.hpp"

namespace berth {

// The buckets of berth_loop_lag_seconds: 1 ms to 1 s.
std::vector<double> loop_lag_buckets();

class LoopLagProbe {
 public:
  // Registers berth_loop_lag_seconds with `registry` (which must outlive the probe).
  LoopLagProbe(boost::asio::any_io_executor executor, MetricsRegistry& registry,
               std::chrono::milliseconds period = std::chrono::milliseconds(100));
  LoopLagProbe(const LoopLagProbe&) = delete;
  LoopLagProbe& operator=(const LoopLagProbe&) = delete;

  // Starts measuring; stop() (or the destructor) ends it.
  void start();
  void stop();

 private:
  void arm();

  boost::asio::steady_timer timer_;
  Histogram& lag_;
  std::chrono::milliseconds period_;
  bool running_ = false;
};

}  // namespace berth
