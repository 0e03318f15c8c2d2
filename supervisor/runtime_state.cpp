#include "supervisor/runtime_state.hpp"

#include <ctime>

namespace berth {

void RuntimeState::pod_discovered(std::string hostname, boost::asio::ip::address_v4 vm_ip) {
  hostname_ = std::move(hostname);
  vm_ip_ = vm_ip;
}

void RuntimeState::vm_started(qemu::Accelerator accel, std::shared_ptr<qmp::Client> qmp) {
  accel_ = accel == qemu::Accelerator::kKvm ? "kvm" : "tcg";
  qmp_ = std::move(qmp);
}

void RuntimeState::lease_bound(std::chrono::seconds lease_time, Clock::time_point now) {
  lease_expires_ = now + lease_time;
  lease_expires_wall_ = std::chrono::system_clock::now() + lease_time;
  lease_ended_.clear();
}

void RuntimeState::lease_ended(std::string why) {
  if (!lease_expires_)
    lease_expires_ = Clock::time_point{};
  lease_ended_ = std::move(why);
}

std::optional<std::string> RuntimeState::lease_problem(Clock::time_point now) const {
  if (!lease_expires_)
    return "the guest has not taken its DHCP lease yet";
  if (!lease_ended_.empty())
    return lease_ended_;
  if (now < *lease_expires_)
    return std::nullopt;
  const std::time_t expired = std::chrono::system_clock::to_time_t(lease_expires_wall_);
  std::tm utc{};
  gmtime_r(&expired, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return std::string("the guest's DHCP lease expired at ") + when + " and was not renewed";
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
  registry.gauge("berth_lease_given",
                 "1 while the guest holds its DHCP lease (taken, not given up, not expired).",
                 [this] { return lease_given() ? 1.0 : 0.0; });
  registry.counter("berth_image_fetched_bytes_total", "Bytes of base image downloaded.",
                   [this] { return static_cast<double>(image_bytes_fetched_); });
}

}  // namespace berth
