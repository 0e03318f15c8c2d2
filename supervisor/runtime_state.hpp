#pragma once
// What the supervisor knows at run time, read by the health and control API: the phase, the VM's
// QMP client, the lease, counters. The supervisor changes it through named methods; nothing else
// does.

#include <boost/asio/ip/address_v4.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/metrics.hpp"
#include "qemu/command_line.hpp"
#include "qemu/qmp/qmp_client.hpp"
#include "supervisor/guest_agent.hpp"
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

 private:
  std::map<std::uint64_t, Handler> handlers_;
  std::uint64_t next_ = 1;
};

// The supervisor's state as the API sees it. One owner: the supervisor changes it only through
// the named methods below; the API reads it through the const getters.
class RuntimeState {
 public:
  using Clock = std::chrono::steady_clock;

  // Changes, made by the supervisor.
  void enter_phase(Phase phase, Clock::time_point now = Clock::now()) {
    phase_ = phase;
    phase_entered_ = now;
    progress_.reset();
  }
  // The current phase made progress (image: bytes arrived, or the lock holder's download grew).
  void progress(Clock::time_point now = Clock::now()) { progress_ = now; }
  void pod_discovered(std::string hostname, boost::asio::ip::address_v4 vm_ip);
  // A QEMU process was spawned (counted whether or not it comes up).
  void qemu_starting() { ++qemu_starts_; }
  // QEMU runs under `accel` and answers on `qmp`.
  void vm_started(qemu::Accelerator accel, std::shared_ptr<qmp::Client> qmp);
  // The VM's QMP client is gone (a new QEMU is starting, or QEMU ended).
  void vm_gone() { qmp_.reset(); }
  // KVM failed and the guest is started again under TCG.
  void kvm_fell_back() { ++accel_fallbacks_; }
  // The guest took or renewed its DHCP lease, for `lease_time` from `now`.
  void lease_bound(std::chrono::seconds lease_time, Clock::time_point now = Clock::now());
  // The guest gave its lease up (released, declined); `why` says so, for /readyz.
  void lease_ended(std::string why);
  void image_fetched(std::uint64_t bytes) { image_bytes_fetched_ += bytes; }
  // VM_DISKS as prepared for QEMU (the only disks the control API may attach), with the number of
  // queues each virtio-blk device gets.
  void data_disks_prepared(std::vector<qemu::DataDrive> disks, unsigned queues) {
    data_disks_ = std::move(disks);
    disk_queues_ = queues;
  }

  // Reads, for the API.
  Clock::time_point started() const { return started_; }
  Phase phase() const { return phase_; }
  Clock::time_point phase_entered() const { return phase_entered_; }
  // When the current phase last made progress; nullopt: not since it was entered.
  std::optional<Clock::time_point> last_progress() const { return progress_; }
  const std::string& hostname() const { return hostname_; }
  // "kvm" or "tcg" once QEMU runs, "none" before.
  const std::string& accel() const { return accel_; }
  // The current VM's QMP client; null before boot and after exit.
  std::shared_ptr<qmp::Client> qmp() const { return qmp_; }
  boost::asio::ip::address_v4 vm_ip() const { return vm_ip_; }
  // Whether the guest holds its lease at `now`: taken, neither given up nor expired.
  bool lease_given(Clock::time_point now = Clock::now()) const { return !lease_problem(now); }
  // Why the guest holds no lease at `now` (a sentence for /readyz); nullopt while it holds one.
  std::optional<std::string> lease_problem(Clock::time_point now = Clock::now()) const;
  std::uint64_t qemu_starts() const { return qemu_starts_; }
  const std::vector<qemu::DataDrive>& data_disks() const { return data_disks_; }
  unsigned disk_queues() const { return disk_queues_; }
  // QMP events of every VM so far, for any number of listeners.
  EventBus& events() { return events_; }
  // The guest agent's state and commands; null where no supervisor set one (tests).
  GuestAgent* guest_agent() const { return guest_agent_; }
  void set_guest_agent(GuestAgent* agent) { guest_agent_ = agent; }

  // Registers berth_info, berth_phase, berth_uptime_seconds, berth_qemu_starts_total,
  // berth_accel_fallbacks_total, berth_lease_given and berth_image_fetched_bytes_total, read from
  // this object (which must outlive every render).
  void register_metrics(MetricsRegistry& registry) const;

 private:
  Clock::time_point started_ = Clock::now();
  Phase phase_ = Phase::kConfiguring;
  Clock::time_point phase_entered_ = started_;
  std::optional<Clock::time_point> progress_;
  std::string hostname_;
  std::string accel_ = "none";
  std::shared_ptr<qmp::Client> qmp_;
  boost::asio::ip::address_v4 vm_ip_;
  // The lease: when it runs out (steady, and on the wall clock for the message); why it ended
  // early; nothing before the first.
  std::optional<Clock::time_point> lease_expires_;
  std::chrono::system_clock::time_point lease_expires_wall_;
  std::string lease_ended_;
  std::uint64_t qemu_starts_ = 0;
  std::uint64_t accel_fallbacks_ = 0;
  std::uint64_t image_bytes_fetched_ = 0;
  EventBus events_;
  GuestAgent* guest_agent_ = nullptr;
  std::vector<qemu::DataDrive> data_disks_;
  unsigned disk_queues_ = 1;
};

}  // namespace berth
