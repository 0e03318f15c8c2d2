#pragma once
// Test support for VM_DISKS tests (test/supervisor/disks_test.cpp on the test guest,
// test/cloudimage/cloud_image_test.cpp on the Debian cloud image): a loop device standing in for
// a block-mode volume, a file's allocated size on the host, and the control API's hot-plug calls.

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "test/support/berth_process.hpp"

namespace berth::test {

// The bytes a file holds on the host (st_blocks), not its length: what a sparse file or a
// trimmed qcow2 gives back.
inline std::uint64_t allocated(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// A loop device over a sparse file of `size` (truncate's syntax) at `file`, detached again (and
// its node's owner and mode put back: berth hands it to QEMU's user) at the end.
struct LoopDevice {
  fs::path device;
  struct stat original {};
  explicit LoopDevice(const fs::path& file, const std::string& size = "64M") {
    REQUIRE(std::system(("truncate -s " + size + " " + file.string()).c_str()) == 0);
    std::string out = capture("losetup --find --show " + file.string());
    while (!out.empty() && out.back() == '\n')
      out.pop_back();
    REQUIRE(out.starts_with("/dev/loop"));
    device = out;
    REQUIRE(::stat(device.c_str(), &original) == 0);
  }
  ~LoopDevice() {
    ::chown(device.c_str(), original.st_uid, original.st_gid);
    ::chmod(device.c_str(), original.st_mode & 07777);
    [[maybe_unused]] int rc = std::system(("losetup -d " + device.string()).c_str());
  }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
};

// POST /api/v1/disks/<action> {"disk": disk} on the control API as `kubectl port-forward` reaches
// it (loopback in the pod `net`), with the token berth made in its runtime folder `run` unless
// `with_token` is false.
inline HttpResult hotplug(const PodNet& net, const fs::path& run, const std::string& action,
                          const std::string& disk, bool with_token = true) {
  std::string token = with_token ? slurp(run / "control-token") : "";
  while (!token.empty() && token.back() == '\n')
    token.pop_back();
  const std::string out = capture(
      "ip netns exec " + net.pod() + " curl -s -m 90 -X POST -H 'Content-Type: application/json' "
      + (token.empty() ? "" : "-H 'Authorization: Bearer " + token + "' ") + "-d '{\"disk\":\""
      + disk + "\"}' -w '\n%{http_code}' http://127.0.0.1:9251/api/v1/disks/" + action);
  const auto nl = out.rfind('\n');
  if (nl == std::string::npos)
    return {};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}

}  // namespace berth::test
