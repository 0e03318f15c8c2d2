#include "drive/configdrive/config_drive.hpp"

#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/stat.h>

#include <cerrno>

#include "drive/configdrive/iso_builder.hpp"
#include "drive/files.hpp"

namespace berth::drive {

namespace fs = std::filesystem;

namespace {

// The visible keys of a ConfigMap directory (the kubelet's own entries start with "..").
std::vector<std::string> visible_keys(const fs::path& dir) {
  std::vector<std::string> keys;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("."))
      keys.push_back(name);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace

fs::path input_file(const fs::path& path, std::string_view key) {
  return is_dir(path) ? path / key : path;
}

Result<std::optional<std::string>> read_drive_input(const fs::path& path, std::string_view key,
                                                    std::string_view name) {
  const fs::path file = input_file(path, key);
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return std::optional<std::string>();
    return system_error(fmt::format("cannot read {}", file), errno);
  }
  if (S_ISREG(st.st_mode)) {
    const std::string file_name = file.string();
    if (auto ok = check_input_size(name.empty() ? file_name : name,
                                   static_cast<std::uint64_t>(st.st_size));
        !ok)
      return ok.error();
  }
  auto data = read_file(file, kMaxInputBytes);
  if (!data)
    return data.error();
  return std::optional<std::string>(std::move(*data));
}

Result<DriveInputs> read_drive_inputs(const ConfigDriveParams& params, spdlog::logger& log) {
  DriveInputs inputs;
  struct Slot {
    const fs::path& path;
    std::string_view key;
    std::string_view what;
    std::optional<std::string>& data;
    std::string& name;
  };
  const Slot slots[] = {
      {params.userdata, kUserdataKey, "user-data", inputs.userdata, inputs.userdata_name},
      {params.metadata, kMetadataKey, "metadata", inputs.metadata, inputs.metadata_name},
      {params.networkdata, kNetworkdataKey, "network data", inputs.networkdata,
       inputs.networkdata_name},
  };
  for (const auto& slot : slots) {
    slot.name = fmt::format("{} from {}", slot.what, input_file(slot.path, slot.key).string());
    auto data = read_drive_input(slot.path, slot.key, slot.name);
    if (!data)
      return data.error();
    slot.data = std::move(*data);
    if (!slot.data && is_dir(slot.path)) {
      const auto keys = visible_keys(slot.path);
      if (!keys.empty())
        log.warn("{} has no key \"{}\" (it has: {}); the drive gets no {} from it",
                 slot.path.string(), slot.key, fmt::join(keys, ", "), slot.what);
    }
  }
  return inputs;
}

Result<BuiltDrive> make_config_drive(const ConfigDriveParams& params, spdlog::logger& log) {
  auto inputs = read_drive_inputs(params, log);
  if (!inputs)
    return inputs.error();
  auto content = make_drive_content(params.layout, params.hostname, *inputs);
  if (!content)
    return content.error();
  auto iso = build_iso(*content);
  if (!iso)
    return iso.error();
  return BuiltDrive{std::move(*content), std::move(*iso)};
}

Result<ConfigDrive> build_config_drive(const ConfigDriveParams& params, spdlog::logger& log) {
  auto built = make_config_drive(params, log);
  if (!built)
    return built.error();
  ConfigDrive drive;
  drive.iso = params.iso;
  drive.label = built->content.label;
  drive.instance_id = built->content.instance_id;
  drive.hostname = built->content.hostname;
  for (const auto& file : built->content.files)
    drive.files.push_back(file.path);
  drive.size = built->iso.size();
  auto current = read_file(params.iso, built->iso.size());
  if (current && *current == built->iso) {
    drive.write = DriveWrite::kUnchanged;
    return drive;
  }
  std::error_code ec;
  fs::create_directories(params.iso.parent_path(), ec);
  // Rebuilt from the ConfigMaps at every start: atomic for QEMU, but no fsync to wait for.
  if (auto w = write_file_atomic(params.iso, built->iso, Durability::kAtomicOnly); !w)
    return w.error();
  drive.write = DriveWrite::kWritten;
  return drive;
}

}  // namespace berth::drive
