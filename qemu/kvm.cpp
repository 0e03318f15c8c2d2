#include "qemu/kvm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace berth::qemu {

KvmProbe probe_kvm(const char* device) {
  const int fd = ::open(device, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return {false, fmt::format("{}: {}", device, std::strerror(errno))};
  KvmProbe probe;
  const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    probe.reason =
        fmt::format("{}: API version {} (expected {})", device, version, KVM_API_VERSION);
  } else if (const int vm = ::ioctl(fd, KVM_CREATE_VM, 0); vm < 0) {
    probe.reason = fmt::format("{}: cannot create a VM: {}", device, std::strerror(errno));
  } else {
    ::close(vm);
    probe.usable = true;
  }
  ::close(fd);
  return probe;
}

}  // namespace berth::qemu
