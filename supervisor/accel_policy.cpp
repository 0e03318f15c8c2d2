#include "supervisor/accel_policy.hpp"

#include <fmt/format.h>

namespace berth {

AccelPlan plan_accel(Accel requested, const qemu::KvmProbe& probe,
                     const std::optional<std::string>& failed_before) {
  switch (requested) {
    case Accel::kTcg:
      return {AccelStart::kTcg, "VM_ACCEL=tcg"};
    case Accel::kKvm:
      if (!probe.usable)
        return {AccelStart::kFailKvmNotUsable,
                fmt::format("VM_ACCEL=kvm, but KVM is not usable: {}; give the pod /dev/kvm or set "
                            "VM_ACCEL=auto or tcg",
                            probe.reason)};
      return {AccelStart::kKvmOrFail, "VM_ACCEL=kvm"};
    case Accel::kAuto:
      if (!probe.usable)
        return {AccelStart::kTcg, "KVM is not usable: " + probe.reason};
      if (failed_before)
        return {AccelStart::kTcg,
                "a guest did not run under KVM on this node before: " + *failed_before};
      return {AccelStart::kKvmElseTcg, "VM_ACCEL=auto and KVM is usable"};
  }
  return {AccelStart::kTcg, "?"};
}

bool fall_back_to_tcg(Accel requested, qemu::Accelerator running, VmEnd end) {
  return requested == Accel::kAuto && running == qemu::Accelerator::kKvm
         && (end == VmEnd::kInternalError || end == VmEnd::kQemuExited);
}

}  // namespace berth
