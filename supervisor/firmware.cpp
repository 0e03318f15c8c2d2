#include "supervisor/firmware.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "drive/files.hpp"
#include "drive/record.hpp"
#include "supervisor/qemu_user.hpp"

namespace berth {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kVarsLimit = 64ull * 1024 * 1024;  // OVMF's 4M variables are 540 KiB
constexpr std::uint64_t kRecordLimit = 64 * 1024;

// The record's firmware; nullopt when there is no record. Errors: kIntegrity.
Result<std::optional<Firmware>> read_record(const fs::path& path) {
  if (!fs::exists(fs::symlink_status(path)))
    return std::optional<Firmware>{};
  auto text = drive::read_file(path, kRecordLimit);
  if (!text)
    return Error{ErrorKind::kIntegrity, text.error().message};
  auto record = drive::Record::parse(*text);
  auto name = record ? record->string("firmware") : std::nullopt;
  auto firmware = name ? parse_firmware_name(*name) : std::nullopt;
  if (!firmware)
    return Error{ErrorKind::kIntegrity,
                 fmt::format("the firmware record {} is unreadable (no \"firmware\": bios, uefi "
                             "or uefi-secure); remove it to have it written again",
                             path.string())};
  return std::optional<Firmware>{firmware};
}

// Copies the template to `vars` atomically, never replacing an existing file.
Result<void> copy_vars(const fs::path& vars_template, const fs::path& vars) {
  auto data = drive::read_file(vars_template, kVarsLimit);
  if (!data)
    return data.error();
  const fs::path temporary = drive::temporary_path(vars);
  auto written = [&]() -> Result<void> {
    auto writer = drive::SparseFileWriter::open(temporary, drive::OpenMode::kTruncate);
    if (!writer)
      return writer.error();
    if (auto done = writer->write(*data); !done)
      return done;
    if (auto done = writer->finish(); !done)
      return done;
    if (::chmod(temporary.c_str(), 0600) != 0)
      return system_error(fmt::format("chmod {}", temporary.string()), errno);
    return drive::rename_no_replace(temporary, vars);
  }();
  if (!written) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    return written;
  }
  return drive::fsync_directory(vars.parent_path());
}

std::string refusal(Firmware wanted, std::optional<Firmware> before, const fs::path& vars,
                    const fs::path& record) {
  const std::string was =
      before ? fmt::format("was booted with VM_FIRMWARE={} ({})", firmware_name(*before),
                           record.string())
             : fmt::format("has EFI variables {} of an unknown firmware (no record {})",
                           vars.string(), record.string());
  return fmt::format(
      "VM_FIRMWARE={}, but this pet disk {}; a disk installed for one firmware rarely boots with "
      "another, and EFI variables belong to the firmware that wrote them. Set VM_FIRMWARE={} "
      "again, or set VM_EFIVARS_RESET=yes to switch: {} is then renamed aside (kept, never "
      "deleted) and fresh variables are made",
      firmware_name(wanted), was, before ? firmware_name(*before) : "to what it was",
      vars.string());
}

}  // namespace

OvmfFiles ovmf_files(Firmware firmware, const fs::path& ovmf_dir) {
  if (firmware == Firmware::kUefiSecure)
    return {ovmf_dir / "OVMF_CODE_4M.secboot.fd", ovmf_dir / "OVMF_VARS_4M.ms.fd"};
  return {ovmf_dir / "OVMF_CODE_4M.fd", ovmf_dir / "OVMF_VARS_4M.fd"};
}

Result<void> check_ovmf_files(const OvmfFiles& files, Firmware firmware) {
  for (const auto& file : {files.code, files.vars_template})
    if (!drive::is_regular(file))
      return invalid_input(fmt::format(
          "VM_FIRMWARE={} needs OVMF's {}, which is missing: install Debian's package ovmf in "
          "the image, or point BERTH_OVMF_DIR (now {}) at the folder holding it",
          firmware_name(firmware), file.string(), file.parent_path().string()));
  return {};
}

fs::path efivars_path(const fs::path& disk_dir, const std::string& hostname) {
  return disk_dir / (hostname + ".efivars.fd");
}

fs::path firmware_record_path(const fs::path& disk_dir, const std::string& hostname) {
  return disk_dir / (hostname + ".firmware.berth.json");
}

fs::path set_aside_path(const fs::path& vars, std::time_t now) {
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  return vars.string() + "." + stamp + ".old";
}

FirmwarePlan plan_firmware(Firmware wanted, const FirmwareState& state, bool reset,
                           const fs::path& vars, const fs::path& record) {
  const bool uefi = wanted != Firmware::kBios;
  std::optional<Firmware> before = state.recorded;
  bool known = true;
  if (!before && state.vars_exist)
    known = false;  // variables nobody recorded
  else if (!before && !state.pet_disk_created)
    before = Firmware::kBios;  // a disk from before firmware records: booted with SeaBIOS
  FirmwarePlan plan;
  if (known && (!before || *before == wanted)) {
    plan.write_record = !state.recorded;
    plan.create_vars = uefi && !state.vars_exist;
    if (plan.create_vars && before)
      plan.message =
          fmt::format("{} was missing; fresh variables are made from the template", vars.string());
    return plan;
  }
  if (!reset) {
    plan.refuse = true;
    plan.message = refusal(wanted, before, vars, record);
    return plan;
  }
  plan.set_aside = state.vars_exist;
  plan.write_record = true;
  plan.create_vars = uefi;
  plan.message =
      fmt::format("VM_EFIVARS_RESET: switching this pet disk from {} to {}",
                  before ? firmware_name(*before) : "an unknown firmware", firmware_name(wanted));
  return plan;
}

Result<std::optional<qemu::FirmwareFlash>> prepare_firmware(const FirmwareParams& params,
                                                            spdlog::logger& log) {
  const bool uefi = params.firmware != Firmware::kBios;
  const OvmfFiles files = ovmf_files(params.firmware, params.ovmf_dir);
  if (uefi)
    if (auto found = check_ovmf_files(files, params.firmware); !found)
      return found.error();
  const fs::path vars = efivars_path(params.disk_dir, params.hostname);
  const fs::path record = firmware_record_path(params.disk_dir, params.hostname);
  auto recorded = read_record(record);
  if (!recorded)
    return recorded.error();
  const FirmwareState state{*recorded, params.pet_disk_created,
                            fs::exists(fs::symlink_status(vars))};
  const FirmwarePlan plan = plan_firmware(params.firmware, state, params.reset, vars, record);
  if (plan.refuse)
    return Error{ErrorKind::kConflict, plan.message};
  if (!plan.message.empty())
    log.warn("{}", plan.message);
  if (plan.set_aside) {
    const fs::path aside = set_aside_path(vars, std::time(nullptr));
    if (auto moved = drive::rename_no_replace(vars, aside); !moved)
      return moved.error();
    log.warn("VM_EFIVARS_RESET: the old EFI variables are kept as {}", aside.string());
  }
  if (plan.write_record) {
    // Written before the variables: a crash in between leaves a record whose variables are
    // missing, which the next start makes again.
    drive::Record content;
    content.set("firmware", std::string(firmware_name(params.firmware)));
    if (uefi)
      content.set("vars_template", files.vars_template.string());
    if (auto written = drive::write_file_atomic(record, content.serialize()); !written)
      return written.error();
  }
  if (!uefi) {
    log.info("firmware: bios (SeaBIOS)");
    return std::optional<qemu::FirmwareFlash>{};
  }
  if (plan.create_vars) {
    if (auto copied = copy_vars(files.vars_template, vars); !copied)
      return copied.error();
    log.info("firmware: EFI variables {} made from {}", vars.string(),
             files.vars_template.string());
  } else {
    log.info("firmware: EFI variables {} kept from an earlier boot", vars.string());
  }
  log.info("firmware: {} (OVMF {}{})", firmware_name(params.firmware), files.code.string(),
           params.firmware == Firmware::kUefiSecure ? ", Secure Boot enforced, SMM on" : "");
  return std::optional<qemu::FirmwareFlash>{qemu::FirmwareFlash{files.code, vars}};
}

Result<void> hand_over_vars(const Credentials& who, const fs::path& vars) {
  // Only what differs is changed: once the file is QEMU's, chmod would need CAP_FOWNER.
  struct stat st {};
  const bool ok = ::stat(vars.c_str(), &st) == 0
                  && ((st.st_mode & 07777) == 0600 || ::chmod(vars.c_str(), 0600) == 0)
                  && ((st.st_uid == who.uid && st.st_gid == who.gid)
                      || ::chown(vars.c_str(), who.uid, who.gid) == 0);
  if (!ok)
    return system_error(fmt::format("handing the EFI variables {} to QEMU's user {}:{}",
                                    vars.string(), who.uid, who.gid),
                        errno);
  return check_reachable(vars, who, "the EFI variables");
}

}  // namespace berth
