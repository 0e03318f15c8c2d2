// The UEFI variant of the Debian cloud image (build-cloud-image.sh --uefi: GPT, Debian's signed
// shim, GRUB and cloud kernel, tpm2-tools, efivar, efibootmgr, mokutil) under the real berth binary
// with VM_FIRMWARE=uefi-secure and VM_TPM=yes, in a pod namespace under TCG (cloud_cluster.hpp):
// Secure Boot is on in the guest, and a secret sealed in the TPM to PCR 7 and an EFI variable
// written by the guest survive berth's stop and start on the same disk.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <random>

#include "test/cloudimage/cloud_cluster.hpp"

using namespace berth::test;

namespace {

#ifndef BERTH_TEST_CLOUD_IMAGE_UEFI_PATH
#define BERTH_TEST_CLOUD_IMAGE_UEFI_PATH ""
#endif

// OVMF with Secure Boot and SMM, swtpm: slower than the BIOS image's boot.
constexpr auto kUefiBootLimit = 420s;
// The persistent handle the sealed object is kept at, and the test's EFI variable (its own GUID).
constexpr const char* kHandle = "0x81010042";
#define BERTH_VARIABLE_GUID "5f1f1a6e-4b0c-4f3e-9a51-0b5e7a6c2d17"
constexpr const char* kVariable = "/sys/firmware/efi/efivars/BerthCloudTest-" BERTH_VARIABLE_GUID;
constexpr const char* kVariableForEfivar = BERTH_VARIABLE_GUID "-BerthCloudTest";

// A shell line for the guest that runs tpm2-tools on the kernel's resource manager, as root.
std::string tpm(const std::string& commands) {
  return "sudo env TPM2TOOLS_TCTI=device:/dev/tpmrm0 sh -c \"" + commands + "\"";
}

std::unique_ptr<BerthProcess> boot(CloudCluster& cluster, int number) {
  const auto start = std::chrono::steady_clock::now();
  auto berth = cluster.start_pod({"VM_FIRMWARE=uefi-secure", "VM_TPM=yes"});
  REQUIRE(berth->wait_log("swtpm running as pid \\d+", 60s));
  REQUIRE(cluster.wait_ssh(*berth, kUefiBootLimit));
  std::printf("cloud image uefi: boot %d: SSH login %.1f s after berth started\n", number,
              seconds_since(start));
  return berth;
}

}  // namespace

TEST_CASE(
    "cloud image uefi: under Secure Boot a secret sealed to PCR 7 in the vTPM and an EFI"
    " variable survive berth's restart on the same disk",
    "[cloudimage]") {
  CloudCluster cluster(env_or("BERTH_TEST_CLOUD_IMAGE_UEFI", BERTH_TEST_CLOUD_IMAGE_UEFI_PATH));
  const std::string secret = "berth-sealed-" + std::to_string(std::random_device{}());
  const std::string value = "berth-efivar-" + std::to_string(std::random_device{}());

  {
    auto berth = boot(cluster, 1);
    // The guest booted through shim, GRUB and the kernel with Secure Boot enforced.
    CHECK_THAT(cluster.ssh("mokutil --sb-state"), Catch::Contains("SecureBoot enabled"));
    CHECK_THAT(cluster.ssh("sudo dmesg | grep -i secure"), Catch::Contains("Secure boot enabled"));
    CHECK(cluster.ssh("test -c /dev/tpmrm0 && echo tpm") == "tpm");
    CHECK_THAT(cluster.ssh("sudo efibootmgr"), Catch::Contains("BootOrder"));

    // A primary key under the owner hierarchy, a sealed object whose policy is PCR 7 (Secure
    // Boot's state and keys) as it is now, kept at a persistent handle.
    CHECK(cluster.ssh(tpm("cd /var/tmp && tpm2_createprimary -Q -C o -c primary.ctx"
                          " && tpm2_pcrread -Q -o pcr7.bin sha256:7"
                          " && tpm2_createpolicy -Q --policy-pcr -l sha256:7 -f pcr7.bin"
                          " -L pcr7.policy"
                          " && printf %s "
                          + secret
                          + " > secret && tpm2_create -Q -C primary.ctx -L pcr7.policy -i secret"
                            " -u sealed.pub -r sealed.priv"
                            " && tpm2_load -Q -C primary.ctx -u sealed.pub -r sealed.priv"
                            " -c sealed.ctx"
                            " && tpm2_evictcontrol -Q -C o -c sealed.ctx "
                          + kHandle + " && rm secret && echo sealed"),
                      120)
          == "sealed");
    CHECK(cluster.ssh(tpm(std::string("tpm2_unseal -c ") + kHandle + " -p pcr:sha256:7"))
          == secret);

    // A non-volatile EFI variable (attributes NV | BS | RT, then the value), written through
    // efivarfs in one write; read back through a pipe (efivarfs files cannot seek).
    CHECK(cluster.ssh("printf \"\\007\\000\\000\\000%s\" " + value
                      + " > /var/tmp/var.bin && sudo dd if=/var/tmp/var.bin of=" + kVariable
                      + " bs=4096 status=none && cat " + kVariable + " | tail -c +5")
          == value);
    power_off(cluster, *berth);
    // OVMF wrote it to its variable store, berth's <hostname>.efivars.fd beside the pet disk.
    const std::string store =
        slurp(cluster.dir.path / "disks" / (std::string(kPodHostname) + ".efivars.fd"));
    CHECK(store.find(value) != std::string::npos);
  }

  auto berth = boot(cluster, 2);
  CHECK_THAT(cluster.ssh("mokutil --sb-state"), Catch::Contains("SecureBoot enabled"));
  // The variable came back from that file, swtpm's state from its folder beside it, and PCR 7
  // came out the same, so the TPM unseals.
  CHECK(cluster.ssh(std::string("cat ") + kVariable + " | tail -c +5") == value);
  CHECK_THAT(cluster.ssh(std::string("sudo efivar -p -n ") + kVariableForEfivar),
             Catch::Contains("Non-Volatile"));
  CHECK(cluster.ssh(tpm(std::string("tpm2_unseal -c ") + kHandle + " -p pcr:sha256:7")) == secret);
  // The policy holds: once PCR 7 is extended, the same unseal is refused.
  CHECK(cluster.ssh(tpm(std::string("tpm2_pcrextend 7:sha256=") + std::string(64, '0')
                        + " && tpm2_unseal -c " + kHandle + " -p pcr:sha256:7 || echo refused")
                    + " 2>/dev/null")
        == "refused");
  power_off(cluster, *berth);
}
