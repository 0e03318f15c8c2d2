#pragma once
// VM_ACCEL as data: what to try first given the KVM probe, and whether a VM that ended under KVM
// is started again under TCG. Pure; Supervisor::boot and run_until_end act on the answers.

#include <chrono>
#include <optional>
#include <string>

#include "qemu/command_line.hpp"
#include "qemu/kvm.hpp"
#include "supervisor/config.hpp"
#include "supervisor/vm.hpp"

namespace berth {

// How long a guest must run under KVM before VM_ACCEL=auto or kvm reports that it uses KVM. A
// later KVM failure still falls back to TCG once under auto (fall_back_to_tcg): nested KVM can
// fail well after start.
inline constexpr std::chrono::seconds kKvmProbation{5};

enum class AccelStart {
  kTcg,               // start under TCG (VM_ACCEL=tcg, or auto without usable KVM)
  kKvmOrFail,         // VM_ACCEL=kvm with usable KVM: KVM must hold for the probation time
  kKvmElseTcg,        // VM_ACCEL=auto with usable KVM: try KVM, TCG if it does not hold
  kFailKvmNotUsable,  // VM_ACCEL=kvm without usable KVM: a start-up failure
};

struct AccelPlan {
  AccelStart start = AccelStart::kTcg;
  std::string reason;  // for the log (or the failure): why this plan
};

// The plan for `requested` given what probe_kvm found (`probe` is ignored for VM_ACCEL=tcg) and
// the failure of an earlier KVM try remembered on this node (kvm_verdict.hpp), which sends
// VM_ACCEL=auto straight to TCG; VM_ACCEL=kvm tries KVM whatever was remembered.
AccelPlan plan_accel(Accel requested, const qemu::KvmProbe& probe,
                     const std::optional<std::string>& failed_before = std::nullopt);

// True when a VM that ended (`end`) while running under `running` is started again under TCG:
// VM_ACCEL=auto, KVM, and an internal error or QEMU exiting (a KVM failure), never a guest's
// own power-off, panic or a quit by berth.
bool fall_back_to_tcg(Accel requested, qemu::Accelerator running, VmEnd end);

}  // namespace berth
