#pragma once
// The config drive from the user's inputs: each of user-data, metadata and network data is a file
// (the seed's form) or a ConfigMap volume directory holding the key userdata, metadata or
// networkdata; missing ones are fine. Read, validated, built into an ISO, written atomically.

#include <spdlog/logger.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "drive/configdrive/cloud_config.hpp"

namespace berth::drive {

struct ConfigDriveParams {
  DriveLayout layout = DriveLayout::kConfigDrive;      // BERTH_DRIVE_FORMAT
  std::filesystem::path userdata = "/userdata";        // BERTH_USERDATA
  std::filesystem::path metadata = "/metadata";        // BERTH_METADATA
  std::filesystem::path networkdata = "/networkdata";  // BERTH_NETWORKDATA
  std::string hostname;  // the pod's hostname: default hostname and instance-id source
  std::filesystem::path
      iso;  // where the drive is written, e.g. <BERTH_RUNTIME_DIR>/config-drive.iso
};

// The ConfigMap keys: "userdata", "metadata", "networkdata".
inline constexpr std::string_view kUserdataKey = "userdata";
inline constexpr std::string_view kMetadataKey = "metadata";
inline constexpr std::string_view kNetworkdataKey = "networkdata";

// Where an input is read from: `path` itself, or `path`/`key` when `path` is a directory.
std::filesystem::path input_file(const std::filesystem::path& path, std::string_view key);

// Reads one input; nullopt when it does not exist. Errors: unreadable, not a regular file, or
// larger than kMaxInputBytes (64 KiB; `name` says which input, default the file).
Result<std::optional<std::string>> read_drive_input(const std::filesystem::path& path,
                                                    std::string_view key,
                                                    std::string_view name = {});

// Reads the three inputs, naming each by its file for error messages. Logs a warning when a
// ConfigMap directory lacks the key but holds other keys (a misnamed key is a common mistake).
Result<DriveInputs> read_drive_inputs(const ConfigDriveParams& params, spdlog::logger& log);

struct BuiltDrive {
  DriveContent content;
  std::string iso;  // the image's bytes
};

// Reads, validates and builds the drive in memory. Errors: the inputs' (kInvalidInput, with the
// file, line and column) or libisofs' (kSystem).
Result<BuiltDrive> make_config_drive(const ConfigDriveParams& params, spdlog::logger& log);

enum class DriveWrite { kWritten, kUnchanged };

struct ConfigDrive {
  std::filesystem::path iso;
  std::string label;
  std::string instance_id;
  std::string hostname;
  std::vector<std::string> files;
  std::uint64_t size = 0;
  DriveWrite write = DriveWrite::kWritten;
};

// Builds the drive and writes it atomically to params.iso, unless the file there already has the
// same bytes. Errors: as make_config_drive, or writing the file (kSystem).
Result<ConfigDrive> build_config_drive(const ConfigDriveParams& params, spdlog::logger& log);

}  // namespace berth::drive
