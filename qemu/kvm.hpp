#pragma once
// Whether KVM can be used at all: /dev/kvm opens, speaks API version 12 and creates a VM. This is
// only the first gate of VM_ACCEL=auto; whether a guest really runs is seen when QEMU runs it.

#include <string>

namespace berth::qemu {

struct KvmProbe {
  bool usable = false;
  std::string reason;  // why not, e.g. "/dev/kvm: No such file or directory"
};

KvmProbe probe_kvm(const char* device = "/dev/kvm");

}  // namespace berth::qemu
