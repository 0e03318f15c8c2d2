#pragma once
// VM_FIRMWARE's files: OVMF's code and variables template (BERTH_OVMF_DIR), and the VM's own,
// persistent copy of the variables, <disk dir>/<hostname>.efivars.fd, next to the pet disk. A
// record, <hostname>.firmware.berth.json, says which firmware the disk and the variables belong
// to; a different firmware on an existing disk is refused unless VM_EFIVARS_RESET asks to switch.

#include <spdlog/logger.h>

#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "qemu/command_line.hpp"
#include "supervisor/children.hpp"
#include "supervisor/config.hpp"

namespace berth {

// OVMF's two files for a UEFI firmware: the code and the template of the variables.
struct OvmfFiles {
  std::filesystem::path code;
  std::filesystem::path vars_template;
};
// uefi: OVMF_CODE_4M.fd + OVMF_VARS_4M.fd; uefi-secure: OVMF_CODE_4M.secboot.fd +
// OVMF_VARS_4M.ms.fd (Microsoft's keys enrolled, Secure Boot on). Not for kBios.
OvmfFiles ovmf_files(Firmware firmware, const std::filesystem::path& ovmf_dir);

// Both files are regular files. Errors: kInvalidInput naming the missing file, BERTH_OVMF_DIR and
// Debian's package.
Result<void> check_ovmf_files(const OvmfFiles& files, Firmware firmware);

std::filesystem::path efivars_path(const std::filesystem::path& disk_dir,
                                   const std::string& hostname);
std::filesystem::path firmware_record_path(const std::filesystem::path& disk_dir,
                                           const std::string& hostname);
// Where a reset puts the old variables: "<vars>.<UTC time as 20261203T074512Z>.old".
std::filesystem::path set_aside_path(const std::filesystem::path& vars, std::time_t now);

// What is on the volume when berth starts.
struct FirmwareState {
  std::optional<Firmware> recorded;  // the record's firmware; nullopt: no record
  bool pet_disk_created = false;     // the pet disk was made in this start
  bool vars_exist = false;           // <hostname>.efivars.fd is there
};

// What to do about it: refuse (with `message`), or set the variables aside, write the record and
// create the variables from the template, each when asked.
struct FirmwarePlan {
  bool refuse = false;
  bool set_aside = false;
  bool write_record = false;
  bool create_vars = false;
  std::string message;  // the refusal, or what is done (for the log)
};

// The pure decision. A disk without a record that berth did not make now was booted before
// firmware records existed, with SeaBIOS: it counts as bios. Variables without a record belong to
// no known firmware and count as a change. A change is refused unless `reset`; `reset` does
// nothing while the firmware is unchanged. `vars` and `record` name the files in messages.
FirmwarePlan plan_firmware(Firmware wanted, const FirmwareState& state, bool reset,
                           const std::filesystem::path& vars, const std::filesystem::path& record);

struct FirmwareParams {
  Firmware firmware = Firmware::kBios;
  std::filesystem::path ovmf_dir;
  std::filesystem::path disk_dir;
  std::string hostname;
  bool pet_disk_created = false;
  bool reset = false;
};

// Checks OVMF's files, reads the record, follows plan_firmware and logs each step. Returns the
// flash QEMU gets (nullopt for bios). The variables are copied from the template to a temporary
// name, fsync'd and renamed into place without replacing; a reset renames the old file aside.
// Errors: kInvalidInput (an OVMF file missing), kConflict (a firmware change refused),
// kIntegrity (an unreadable record), kSystem.
Result<std::optional<qemu::FirmwareFlash>> prepare_firmware(const FirmwareParams& params,
                                                            spdlog::logger& log);

// Makes the variables QEMU's (uid:gid, mode 0600) and checks it can reach them.
Result<void> hand_over_vars(const Credentials& who, const std::filesystem::path& vars);

}  // namespace berth
