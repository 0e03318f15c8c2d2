#include "supervisor/runtime_state.hpp"

namespace berth {

void RuntimeState::pod_discovered(std::string hostname, boost::asio::ip::address_v4 vm_ip) {
  hostname_ = std::move(hostname);
  vm_ip_ = vm_ip;
}

void RuntimeState::vm_started(qemu::Accelerator accel, std::shared_ptr<qmp::Client> qmp) {
  accel_ = accel == qemu::Accelerator::kKvm ? "kvm" : "tcg";
  qmp_ = std::move(qmp);
}

void RuntimeState::register_metrics(MetricsRegistry& registry) const {
  registry.family(
      MetricType::kGauge, "berth_info", "Berth's version and the accelerator in use.", [this] {
        return std::vector<Sample>{{{{"version", BERTH_VERSION}, {"accel", accel_}}, 1}};
      });
  registry.family(MetricType::kGauge, "berth_phase",
                  "The lifecycle phase berth is in (1 for the current one).", [this] {
                    std::vector<Sample> samples;
                    for (int p = 0; p <= static_cast<int>(Phase::kExited); ++p) {
                      const auto phase = static_cast<Phase>(p);
                      samples.push_back({{{"phase", std::string(phase_name(phase))}},
                                         phase == phase_ ? 1.0 : 0.0});
                    }
                    return samples;
                  });
  registry.gauge("berth_uptime_seconds", "Seconds since berth started.",
                 [this] { return std::chrono::duration<double>(Clock::now() - started_).count(); });
  registry.counter("berth_qemu_starts_total", "QEMU processes started.",
                   [this] { return static_cast<double>(qemu_starts_); });
  registry.counter("berth_accel_fallbacks_total", "Times KVM failed and TCG was used instead.",
                   [this] { return static_cast<double>(accel_fallbacks_); });
  registry.gauge("berth_lease_given", "1 once the guest took its DHCP lease.",
                 [this] { return lease_given_ ? 1.0 : 0.0; });
  registry.counter("berth_image_fetched_bytes_total", "Bytes of base image downloaded.",
                   [this] { return static_cast<double>(image_bytes_fetched_); });
}

}  // namespace berth
