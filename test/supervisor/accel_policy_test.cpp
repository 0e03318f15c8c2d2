// VM_ACCEL as data: the plan for each request and probe, and when a KVM VM falls back to TCG.

#include "supervisor/accel_policy.hpp"

#include <catch2/catch.hpp>

using namespace berth;

TEST_CASE("the acceleration plan for each VM_ACCEL and KVM probe", "[accel]") {
  const qemu::KvmProbe usable{true, ""};
  const qemu::KvmProbe missing{false, "/dev/kvm: No such file or directory"};
  CHECK(plan_accel(Accel::kTcg, usable).start == AccelStart::kTcg);
  CHECK(plan_accel(Accel::kKvm, usable).start == AccelStart::kKvmOrFail);
  CHECK(plan_accel(Accel::kAuto, usable).start == AccelStart::kKvmElseTcg);
  const auto auto_without = plan_accel(Accel::kAuto, missing);
  CHECK(auto_without.start == AccelStart::kTcg);
  CHECK_THAT(auto_without.reason, Catch::Contains("KVM is not usable: /dev/kvm"));
  const auto kvm_without = plan_accel(Accel::kKvm, missing);
  CHECK(kvm_without.start == AccelStart::kFailKvmNotUsable);
  CHECK_THAT(kvm_without.reason,
             Catch::Contains("/dev/kvm: No such file") && Catch::Contains("VM_ACCEL=auto or tcg"));
}

TEST_CASE("only VM_ACCEL=auto falls back to TCG, and only when KVM failed", "[accel]") {
  using qemu::Accelerator;
  CHECK(fall_back_to_tcg(Accel::kAuto, Accelerator::kKvm, VmEnd::kInternalError));
  CHECK(fall_back_to_tcg(Accel::kAuto, Accelerator::kKvm, VmEnd::kQemuExited));
  for (auto end : {VmEnd::kPoweredOff, VmEnd::kGuestPanicked, VmEnd::kQmpLost, VmEnd::kQuit}) {
    INFO(vm_end_name(end));
    CHECK_FALSE(fall_back_to_tcg(Accel::kAuto, Accelerator::kKvm, end));
  }
  CHECK_FALSE(fall_back_to_tcg(Accel::kAuto, Accelerator::kTcg, VmEnd::kInternalError));
  CHECK_FALSE(fall_back_to_tcg(Accel::kKvm, Accelerator::kKvm, VmEnd::kInternalError));
  CHECK_FALSE(fall_back_to_tcg(Accel::kTcg, Accelerator::kTcg, VmEnd::kQemuExited));
}

TEST_CASE("a KVM failure remembered on the node sends VM_ACCEL=auto straight to TCG", "[accel]") {
  const qemu::KvmProbe usable{true, ""};
  const std::optional<std::string> failed = "KVM internal error (recorded 2026-12-03T10:00:00Z)";
  const auto plan = plan_accel(Accel::kAuto, usable, failed);
  CHECK(plan.start == AccelStart::kTcg);
  CHECK_THAT(plan.reason, Catch::Contains("did not run under KVM on this node before")
                              && Catch::Contains("KVM internal error"));
  // VM_ACCEL=kvm asks for KVM whatever happened before; tcg never looks.
  CHECK(plan_accel(Accel::kKvm, usable, failed).start == AccelStart::kKvmOrFail);
  CHECK(plan_accel(Accel::kTcg, usable, failed).start == AccelStart::kTcg);
  // Without a usable KVM, that is the reason given.
  const auto missing = plan_accel(Accel::kAuto, {false, "/dev/kvm: No such file"}, failed);
  CHECK_THAT(missing.reason, Catch::Contains("KVM is not usable"));
}
