#include "supervisor/loop_lag.hpp"

#include <algorithm>

namespace berth {

std::vector<double> loop_lag_buckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
}

LoopLagProbe::LoopLagProbe(boost::asio::any_io_executor executor, MetricsRegistry& registry,
                           std::chrono::milliseconds period)
    : timer_(std::move(executor)),
      lag_(registry.histogram("berth_loop_lag_seconds",
                              "How late the event loop ran a periodic timer, in seconds.",
                              loop_lag_buckets())),
      period_(period) {}

void LoopLagProbe::start() {
  if (running_)
    return;
  running_ = true;
  arm();
}

void LoopLagProbe::stop() {
  running_ = false;
  timer_.cancel();
}

void LoopLagProbe::arm() {
  timer_.expires_after(period_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || !running_)
      return;
    const auto late = std::chrono::steady_clock::now() - timer_.expiry();
    lag_.observe(std::max(0.0, std::chrono::duration<double>(late).count()));
    arm();
  });
}

}  // namespace berth
