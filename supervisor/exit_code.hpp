#pragma once
// Berth's process exit codes: the one place they are defined. The README lists them; keep the two
// in step. Kubernetes shows them as the container's "exit code" and restarts the pod on non-zero.

namespace berth {

enum class ExitCode : int {
  kOk = 0,          // guest powered off, or stopped cleanly after SIGTERM/SIGINT
  kInternal = 1,    // a bug or an unexpected system error; the log says what
  kUsage = 2,       // unknown command-line argument
  kConfig = 3,      // an environment variable is invalid; the log names it and the accepted form
                    // (also an OVMF file VM_FIRMWARE needs is missing, or IMG_SOURCE is an
                    // ISO and VM_DISK_SIZE is unset)
  kImage = 4,       // the base image (or VM_CDROM) could not be fetched, verified or cached
  kDisk = 5,        // the pet disk could not be created, opened or grown; its EFI variables
                    // could not be made, or VM_FIRMWARE changed without VM_EFIVARS_RESET
  kDrive = 6,       // the config drive could not be built
  kNetwork = 7,     // pod discovery, bridge/tap plumbing or NAT failed
  kQemu = 8,        // QEMU failed to start, crashed, was killed, or its QMP socket died
  kGuestCrash = 9,  // the guest panicked or QEMU stopped it with an internal error
  kShutdownTimeout =
      10,     // the guest ignored ACPI power-down for BERTH_SHUTDOWN_TIMEOUT; QEMU was quit
  kTpm = 11,  // swtpm (VM_TPM) could not be started, or died while the VM ran; QEMU was quit
};
// 128+n: berth ended because of signal n (SIGQUIT: fast stop, see README).
constexpr int kSignalExitBase = 128;

constexpr int to_int(ExitCode code) {
  return static_cast<int>(code);
}

}  // namespace berth
