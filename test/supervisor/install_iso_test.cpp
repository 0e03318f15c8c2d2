// Install from an ISO with real QEMU (TCG) through the berth binary: IMG_SOURCE is the test
// installer ISO (test/guest/build-installer-iso.sh), the pet disk a blank disk of VM_DISK_SIZE.
// The first start boots the CD-ROM (the disk is blank): the installer writes a test guest onto the
// disk and powers off. The second start, with the same settings, boots the disk: the test guest's
// ready line. Under SeaBIOS and under OVMF, which both fall through the blank disk (bootindex 0)
// to the CD-ROM (bootindex 1). Two boots per firmware, 30-90 s each under TCG.

#include <signal.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <memory>

#include "test/support/berth_process.hpp"

using namespace berth::test;

namespace {

constexpr auto kBoot = 300s;  // to the installer's or the guest's line, under TCG on a loaded host

// One pod (network namespace) and one volume (disk dir) that the runs share in turn.
struct InstallPod {
  TempDir dir;
  PodNet net;
  int runs = 0;

  std::unique_ptr<BerthProcess> start(const std::string& firmware,
                                      std::vector<std::string> env = {}) {
    const fs::path logs = dir.path / ("run-" + std::to_string(++runs));
    fs::create_directories(logs);
    std::vector<std::string> all = {"IMG_SOURCE=" + test_installer_iso(),
                                    "VM_FIRMWARE=" + firmware,
                                    "VM_ACCEL=tcg",
                                    "VM_MEMORY=512M",
                                    "NO_VNC=1",
                                    "BERTH_SHUTDOWN_TIMEOUT=30"};
    for (const auto& [variable, folder] :
         {std::pair{"BERTH_DISK_DIR", "disks"}, std::pair{"BERTH_RUNTIME_DIR", "run"},
          std::pair{"BERTH_IMAGE_DIR", "images"}, std::pair{"BERTH_USERDATA", "userdata"},
          std::pair{"BERTH_METADATA", "metadata"}, std::pair{"BERTH_NETWORKDATA", "networkdata"}})
      all.push_back(std::string(variable) + "=" + (dir.path / folder).string());
    all.insert(all.end(), env.begin(), env.end());
    return std::make_unique<BerthProcess>(logs, all, net.in_pod());
  }
};

// Installs under `firmware`, then boots the installed disk.
void install_then_boot(const std::string& firmware) {
  InstallPod pod;
  const std::string iso_name = fs::path(test_installer_iso()).filename().string();

  auto install = pod.start(firmware, {"VM_DISK_SIZE=1Gi"});
  INFO(install->log_text());
  REQUIRE(
      install->wait_console("berth-installer: booted from the CD-ROM under " + firmware, kBoot));
  REQUIRE(
      install->wait_console("berth-installer: installed the " + firmware + " test guest", kBoot));
  CHECK(install->wait_exit(120s) == 0);  // the installer powered the VM off
  CHECK_FALSE(install->wait_console("berth-guest:", 0ms));
  CHECK(install->wait_log("IMG_SOURCE is an ISO 9660 image", 0ms));
  CHECK(install->wait_log("created the blank pet disk", 0ms));
  CHECK(install->wait_log("starting QEMU: [^\\n]*virtio-blk-pci,drive=disk0,bootindex=0", 0ms));
  CHECK(install->wait_log("starting QEMU: [^\\n]*" + iso_name
                              + "[^\\n]*scsi-cd,bus=scsi0.0,"
                                "drive=cdrom0-media,id=cdrom0,bootindex=1",
                          0ms));
  const fs::path disk = pod.dir.path / "disks";
  fs::path sidecar;
  for (const auto& entry : fs::directory_iterator(disk))
    if (entry.path().filename().string().ends_with(".qcow2.berth.json"))
      sidecar = entry.path();
  REQUIRE_FALSE(sidecar.empty());
  const auto record = boost::json::parse(slurp(sidecar)).as_object();
  CHECK(record.at("made_for").as_string() == "install");
  CHECK(record.at("install_iso").as_string().ends_with(iso_name));

  // The same settings again: the disk holds a system now and boots; the installer never runs.
  auto installed = pod.start(firmware, {"VM_DISK_SIZE=1Gi"});
  INFO(installed->log_text());
  REQUIRE(installed->wait_console("berth-guest: ready", kBoot));
  CHECK_FALSE(installed->wait_console("berth-installer:", 0ms));
  CHECK(installed->wait_log("reusing the pet disk", 0ms));
  installed->signal(SIGTERM);
  CHECK(installed->wait_exit(60s) == 0);
}

}  // namespace

TEST_CASE("install iso: VM_DISK_SIZE is required when IMG_SOURCE is an ISO", "[install-iso]") {
  InstallPod pod;
  auto refused = pod.start("bios");
  REQUIRE(refused->wait_exit(120s) == 3);
  INFO(refused->log_text());
  CHECK(refused->wait_log("is an ISO 9660 image \\(an installer\\)[^\\n]*VM_DISK_SIZE", 0ms));
  CHECK_FALSE(refused->wait_log("starting QEMU", 0ms));
  const fs::path disks = pod.dir.path / "disks";
  CHECK((!fs::exists(disks) || fs::is_empty(disks)));  // no pet disk was made
}

TEST_CASE("install iso: under SeaBIOS the blank disk falls through to the CD-ROM, then boots",
          "[install-iso]") {
  install_then_boot("bios");
}

TEST_CASE("install iso: under OVMF the blank disk falls through to the CD-ROM, then boots",
          "[install-iso]") {
  install_then_boot("uefi");
}
