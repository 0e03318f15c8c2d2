// VM_TPM with real swtpm and QEMU (TCG) through the berth binary, on the UEFI test guest
// (test/guest/README.md: it prints `tpm /dev/tpm0`, `tpm-pcr16=<hex>` and a boot counter kept in a
// TPM NV index, `tpm-nv=N`), booted with VM_FIRMWARE=uefi, so QEMU gets tpm-crb; and on the BIOS
// guest under SeaBIOS, which gets tpm-tis.

#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>

#include "test/support/berth_process.hpp"

using namespace berth::test;

namespace {

// PCR 16 after the guest's one extend: sha256(32 zero bytes || "berth-guest-pcr16-extend-32bytes").
constexpr const char* kPcr16 = "dea075f0ecb5be94ca5e1ec65728b50854cda6e7d0812dcdcd2857290ebd0bbd";
constexpr auto kBoot = 240s;  // OVMF + TPM under TCG on a loaded 2-core machine: 20-60 s

// The environment of berth on the UEFI guest (VM_FIRMWARE=uefi) with VM_TPM=yes; the disks, the
// TPM state and the EFI variables live in `dir`, so a second berth on it finds them again.
std::vector<std::string> tpm_env(const fs::path& dir, std::vector<std::string> extra = {}) {
  std::vector<std::string> env = test_berth_env(dir);
  env.insert(env.end(), {"IMG_SOURCE=" + test_guest_uefi(), "VM_FIRMWARE=uefi", "VM_TPM=yes",
                         "BERTH_SHUTDOWN_TIMEOUT=60"});
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// The one <hostname>.tpm folder under BERTH_DISK_DIR.
fs::path state_dir(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir / "disks"))
    if (entry.path().extension() == ".tpm")
      return entry.path();
  return {};
}

bool alive(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

}  // namespace

TEST_CASE("tpm: the guest sees its TPM, extends PCR 16, and its NV counter survives a restart",
          "[tpm]") {
  TempDir dir;
  for (int boot = 1; boot <= 2; ++boot) {
    PodNet net;
    // Each boot's console and log in a folder of its own: the first boot's lines must not answer
    // for the second.
    const fs::path out = dir.path / ("boot" + std::to_string(boot));
    fs::create_directories(out);
    BerthProcess berth(out, tpm_env(dir.path), net.in_pod());
    INFO("boot " << boot << ": " << berth.log_text());
    REQUIRE(berth.wait_log("swtpm running as pid \\d+"));
    CHECK(berth.wait_log("-tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0"));
    REQUIRE(berth.wait_console("berth-guest: tpm (/dev/tpm0)", kBoot));
    CHECK(berth.wait_console("berth-guest: tpm (/dev/tpmrm0)", 30s));
    CHECK(berth.wait_console("berth-guest: tpm-pcr16=([0-9a-f]+)", 30s) == kPcr16);
    CHECK(berth.wait_console("berth-guest: tpm-nv=(\\d+)", 30s) == std::to_string(boot));
    REQUIRE(berth.wait_console("berth-guest: ready", 60s));
    berth.signal(SIGTERM);
    REQUIRE(berth.wait_exit(90s) == 0);
    // The state stays on the pet-disk volume, private to QEMU's user (107 unless berth is not
    // root).
    const fs::path state = state_dir(dir.path);
    REQUIRE(!state.empty());
    struct stat st {};
    REQUIRE(::stat(state.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    if (::geteuid() == 0)
      CHECK(st.st_uid == 107);
    CHECK(fs::exists(state / "tpm2-00.permall"));
  }
}

// The BIOS guest has no TPM script of its own (test/guest/README.md: that is the UEFI variant's),
// but its kernel has the TIS driver built in: user-data reports what the guest sees.
constexpr const char* kBiosTpmUserData = R"sh(#!/bin/sh
for dev in /dev/tpm0 /dev/tpmrm0; do [ -c "$dev" ] && echo "bios-tpm: device $dev"; done
echo "bios-tpm: version $(cat /sys/class/tpm/tpm0/tpm_version_major)"
echo "bios-tpm: pcr0=$(cat /sys/class/tpm/tpm0/pcr-sha256/0)"
)sh";

TEST_CASE("tpm: the BIOS guest under SeaBIOS gets a TPM 2.0 over TIS that SeaBIOS measured into",
          "[tpm]") {
  TempDir dir;
  PodNet net;
  {
    std::ofstream userdata(dir.path / "userdata");
    userdata << kBiosTpmUserData;
  }
  std::vector<std::string> env = test_berth_env(dir.path);
  env.insert(env.end(), {"IMG_SOURCE=" + test_guest(), "VM_FIRMWARE=bios", "VM_TPM=yes",
                         "BERTH_SHUTDOWN_TIMEOUT=60"});
  BerthProcess berth(dir.path, env, net.in_pod());
  INFO(berth.log_text());
  REQUIRE(berth.wait_log("swtpm running as pid \\d+"));
  CHECK(berth.wait_log("-tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0"));
  REQUIRE(berth.wait_console("berth-guest: ready", kBoot));
  CHECK(berth.wait_console("bios-tpm: device (/dev/tpm0)", 0ms));
  CHECK(berth.wait_console("bios-tpm: device (/dev/tpmrm0)", 0ms));
  CHECK(berth.wait_console("bios-tpm: version (\\d+)", 0ms) == "2");
  // SeaBIOS extends PCR 0 with its own code before the boot loader: not zero.
  const auto pcr0 = berth.wait_console("bios-tpm: pcr0=([0-9A-Fa-f]{64})", 0ms);
  REQUIRE(pcr0);
  CHECK(*pcr0 != std::string(64, '0'));
  berth.signal(SIGTERM);
  CHECK(berth.wait_exit(90s) == 0);
}

TEST_CASE("tpm: kill -9 of swtpm while the VM runs ends berth with the TPM code 11, QEMU quit",
          "[tpm]") {
  TempDir dir;
  PodNet net;
  BerthProcess berth(dir.path, tpm_env(dir.path), net.in_pod());
  INFO(berth.log_text());
  const auto swtpm = berth.wait_log("swtpm running as pid (\\d+)");
  const auto qemu = berth.wait_log("QEMU running as pid (\\d+)");
  REQUIRE(swtpm);
  REQUIRE(qemu);
  REQUIRE(berth.wait_console("berth-guest: tpm-nv=1", kBoot));
  ::kill(std::stoi(*swtpm), SIGKILL);
  REQUIRE(berth.wait_exit(60s) == 11);
  CHECK(
      berth.wait_log("swtpm \\(VM_TPM\\) ended while the VM ran, \\(pid \\d+\\) killed by "
                     "signal 9 \\(SIGKILL\\)",
                     0ms));
  CHECK_FALSE(alive(std::stoi(*qemu)));
}

TEST_CASE("tpm: VM_TPM without swtpm in PATH is a configuration error (exit 3)", "[tpm]") {
  TempDir dir;
  BerthProcess berth(dir.path, tpm_env(dir.path, {"PATH=" + (dir.path / "empty").string()}));
  REQUIRE(berth.wait_exit(30s) == 3);
  CHECK(berth.wait_log("VM_TPM: \"yes\" needs swtpm, the TPM 2.0 emulator, which is not in PATH",
                       0ms));
}
