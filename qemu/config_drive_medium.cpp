#include "qemu/config_drive_medium.hpp"

#include <fmt/format.h>

#include "qemu/command_line.hpp"

namespace berth::qemu {

QmpCommand config_drive_media_change(const std::filesystem::path& iso) {
  QmpCommand command{"blockdev-change-medium", {}};
  command.arguments["id"] = std::string(kConfigDriveDevice);
  command.arguments["filename"] = iso.string();
  command.arguments["format"] = "raw";
  command.arguments["read-only-mode"] = "read-only";
  // The guest's tray lock only asks the host not to remove the medium; Berth owns this drive.
  command.arguments["force"] = true;
  return command;
}

boost::asio::awaitable<Result<void>> change_config_drive_medium(
    std::shared_ptr<qmp::Client> qmp, std::filesystem::path iso,
    std::chrono::steady_clock::duration timeout) {
  auto command = config_drive_media_change(iso);
  auto result = co_await qmp->execute(command.name, std::move(command.arguments), timeout);
  if (!result.ok())
    co_return Error{ErrorKind::kSystem,
                    fmt::format("QEMU did not take {} as the config drive's medium (QMP {} on "
                                "device {}: {})",
                                iso.string(), command.name, kConfigDriveDevice, result.describe())};
  co_return Result<void>{};
}

}  // namespace berth::qemu
