#pragma once
// What the supervisor knows at run time, read by the health and control API: the phase, the VM's
// QMP client, the lease, counters. The supervisor writes it; nothing else does.

#include <boost/asio/ip/address_v4.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "qemu/qmp/qmp_client.hpp"
#include "supervisor/lifecycle.hpp"

namespace berth {

// QMP events republished for any number of listeners (the SSE stream), across QEMU restarts.
class EventBus {
 public:
  using Handler = std::function<void(const qmp::Event&)>;
  std::uint64_t subscribe(Handler handler) {
    handlers_[next_] = std::move(handler);
    return next_++;
  }
  void unsubscribe(std::uint64_t token) { handlers_.erase(token); }
  void publish(const qmp::Event& event) {
    auto handlers = handlers_;  // a handler may unsubscribe
    for (auto& [token, handler] : handlers)
      handler(event);
  }
  std::size_t listeners() const { return handlers_.size(); }

 private:
  std::map<std::uint64_t, Handler> handlers_;
  std::uint64_t next_ = 1;
};

struct RuntimeState {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  Phase phase = Phase::kConfiguring;
  std::string hostname;
  std::string accel = "none";        // "kvm" or "tcg" once QEMU runs
  std::shared_ptr<qmp::Client> qmp;  // the current VM's, null before boot and after exit
  boost::asio::ip::address_v4 vm_ip;
  bool lease_given = false;
  std::uint64_t qemu_starts = 0;
  std::uint64_t accel_fallbacks = 0;
  std::uint64_t image_bytes_fetched = 0;
  // Module counters (DHCP, DNS, ...) appended to /metrics as Prometheus text, when present.
  std::function<std::string()> extra_metrics;
  EventBus events;
};

}  // namespace berth
