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

// Installs under `firmware`, then boots the installed disk.
void install_then_boot(const std::string& firmware) {
  VolumePod pod;
  const std::string iso_name = fs::path(test_installer_iso()).filename().string();

  auto install = pod.start(test_installer_iso(), firmware, {"VM_DISK_SIZE=1Gi"});
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
  const auto sidecars = pod.disk_files(".qcow2.berth.json");
  REQUIRE(sidecars.size() == 1);
  const fs::path sidecar = sidecars.front();
  const auto record = boost::json::parse(slurp(sidecar)).as_object();
  CHECK(record.at("made_for").as_string() == "install");
  CHECK(record.at("install_iso").as_string().ends_with(iso_name));

  // The same settings again: the disk holds a system now and boots; the installer never runs.
  auto installed = pod.start(test_installer_iso(), firmware, {"VM_DISK_SIZE=1Gi"});
  INFO(installed->log_text());
  REQUIRE(installed->wait_console("berth-guest: ready", kBoot));
  CHECK_FALSE(installed->wait_console("berth-installer:", 0ms));
  CHECK(installed->wait_log("reusing the pet disk", 0ms));
  installed->signal(SIGTERM);
  CHECK(installed->wait_exit(60s) == 0);
}

}  // namespace

TEST_CASE("install iso: VM_DISK_SIZE is required when IMG_SOURCE is an ISO", "[install-iso]") {
  VolumePod pod;
  auto refused = pod.start(test_installer_iso(), "bios");
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
