// VM_FIRMWARE with real QEMU (TCG), OVMF and the UEFI test guest, through the berth binary: UEFI
// and Secure Boot boots, an unsigned loader refused, EFI variables kept across restarts, and a
// firmware change on an existing disk. UEFI boots take 10-30 s under TCG: the waits are generous.

#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "test/support/berth_process.hpp"

using namespace berth::test;

namespace {

constexpr auto kBoot = 240s;  // to the ready line, under TCG on a loaded machine

using FirmwarePod = VolumePod;

// Boots to the ready line, checks the guest's UEFI lines, then stops berth with SIGTERM.
void boot_and_stop(BerthProcess& berth, const std::string& secureboot, const std::string& efivar) {
  INFO(berth.log_text());
  REQUIRE(berth.wait_console("berth-guest: ready", kBoot));
  CHECK(berth.wait_console("berth-guest: secureboot=" + secureboot + "\\b", 0ms));
  CHECK(berth.wait_console("berth-guest: efivar=" + efivar + "\\b", 0ms));
  berth.signal(SIGTERM);
  CHECK(berth.wait_exit(60s) == 0);
}

std::string fmt_line(const std::string& firmware, int round, double from_berth, double from_qemu) {
  char line[160];
  std::snprintf(line, sizeof line,
                "boot %-11s round %d: berth start -> ready %.2f s, QEMU -> ready %.2f s",
                firmware.c_str(), round + 1, from_berth, from_qemu);
  return line;
}

}  // namespace

TEST_CASE("firmware: the UEFI guest boots under uefi and under uefi-secure with Secure Boot on",
          "[firmware]") {
  FirmwarePod plain;
  auto uefi = plain.start(test_guest_uefi(), "uefi");
  boot_and_stop(*uefi, "0", "1");
  CHECK(uefi->wait_log("firmware: uefi \\(OVMF [^ ]*OVMF_CODE_4M.fd\\)", 0ms));
  CHECK(uefi->wait_log("starting QEMU: [^\\n]*if=pflash,format=raw,unit=1", 0ms));

  FirmwarePod secure;
  auto secboot = secure.start(test_guest_uefi(), "uefi-secure");
  boot_and_stop(*secboot, "1", "1");
  CHECK(secboot->wait_log("firmware: uefi-secure \\(OVMF [^ ]*OVMF_CODE_4M.secboot.fd", 0ms));
  CHECK(secboot->wait_log("starting QEMU: [^\\n]*smm=on", 0ms));
}

TEST_CASE("firmware: an unsigned boot loader is refused under uefi-secure and boots under uefi",
          "[firmware]") {
  FirmwarePod secure;
  auto refused = secure.start(test_guest_uefi_unsigned(), "uefi-secure");
  INFO(refused->log_text());
  REQUIRE(refused->wait_console("BdsDxe: failed to load Boot\\d+ .*: Access Denied", kBoot));
  // OVMF gives up on every option; nothing of the guest ever runs.
  REQUIRE(refused->wait_console("BdsDxe: No bootable option or device was found", 60s));
  CHECK_FALSE(refused->wait_console("berth-guest:", 0ms));
  refused->signal(SIGQUIT);  // nothing in the guest answers ACPI
  CHECK(refused->wait_exit(60s) == 128 + SIGQUIT);

  FirmwarePod plain;
  auto uefi = plain.start(test_guest_uefi_unsigned(), "uefi");
  boot_and_stop(*uefi, "0", "1");
}

TEST_CASE(
    "firmware: EFI variables persist across restarts, and a firmware change is refused unless "
    "VM_EFIVARS_RESET keeps the old ones aside",
    "[firmware]") {
  FirmwarePod pod;
  auto first = pod.start(test_guest_uefi(), "uefi");
  boot_and_stop(*first, "0", "1");
  const auto vars = pod.disk_files(".efivars.fd");
  REQUIRE(vars.size() == 1);
  CHECK(first->wait_log("EFI variables " + vars.front().string() + " made from", 0ms));

  // The variable the guest counts its boots in is still there on the same volume.
  auto second = pod.start(test_guest_uefi(), "uefi");
  boot_and_stop(*second, "0", "2");
  CHECK(second->wait_log("EFI variables [^\\n]* kept from an earlier boot", 0ms));

  // Another firmware on this disk: refused before QEMU, with the file and the fix.
  auto changed = pod.start(test_guest_uefi(), "uefi-secure");
  REQUIRE(changed->wait_exit(60s) == 5);
  INFO(changed->log_text());
  CHECK(
      changed->wait_log("VM_FIRMWARE=uefi-secure, but this pet disk was booted with "
                        "VM_FIRMWARE=uefi",
                        0ms));
  CHECK(changed->wait_log("VM_EFIVARS_RESET=yes", 0ms));
  CHECK_FALSE(changed->wait_log("starting QEMU", 0ms));

  // Asked to reset: the old variables are set aside and Secure Boot starts from a fresh copy.
  auto reset = pod.start(test_guest_uefi(), "uefi-secure", {"VM_EFIVARS_RESET=yes"});
  boot_and_stop(*reset, "1", "1");
  CHECK(reset->wait_log("the old EFI variables are kept as", 0ms));
  CHECK(pod.disk_files(".old").size() == 1);
  CHECK(pod.disk_files(".efivars.fd").size() == 1);

  // And BIOS on this UEFI disk is refused the same way.
  auto bios = pod.start(test_guest_uefi(), "bios");
  REQUIRE(bios->wait_exit(60s) == 5);
  CHECK(bios->wait_log("VM_FIRMWARE=bios, but this pet disk", 0ms));
}

// The measurement in the README (not run by ctest): berth's start and QEMU's start to the guest's
// ready line, BIOS vs UEFI vs UEFI with Secure Boot, the same kernel and initramfs, one run each
// in turn, `rounds` times.
TEST_CASE("firmware: boot time to the ready line per firmware", "[.][firmware-bench]") {
  using Clock = std::chrono::steady_clock;
  const int rounds = std::getenv("ROUNDS") ? std::atoi(std::getenv("ROUNDS")) : 3;
  for (int round = 0; round < rounds; ++round)
    for (const auto& [firmware, image] :
         {std::pair{"bios", test_guest()}, std::pair{"uefi", test_guest_uefi()},
          std::pair{"uefi-secure", test_guest_uefi()}}) {
      FirmwarePod pod;
      const auto start = Clock::now();
      auto berth = pod.start(image, firmware);
      REQUIRE(berth->wait_log("QEMU running as pid", kBoot));
      const auto qemu = Clock::now();
      REQUIRE(berth->wait_console("berth-guest: ready", kBoot));
      const auto ready = Clock::now();
      auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
      WARN(fmt_line(firmware, round, seconds(ready - start), seconds(ready - qemu)));
      berth->signal(SIGQUIT);
      berth->wait_exit(60s);
    }
}
