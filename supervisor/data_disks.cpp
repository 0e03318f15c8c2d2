#include "supervisor/data_disks.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drive/disk/data_disk.hpp"
#include "drive/progress.hpp"
#include "supervisor/qemu_user.hpp"

namespace berth {

namespace asio = boost::asio;

namespace {

asio::awaitable<Result<qemu::DataDrive>> prepare_block(const DataDiskSpec& disk,
                                                       drive::RunProgram& run,
                                                       spdlog::logger& log) {
  auto size = drive::block_device_size(disk.path);
  if (!size)
    co_return Error{size.error().kind,
                    fmt::format("disk \"{}\": {}", disk.name, size.error().message)};
  std::string qemu_img = "qemu-img";
  auto probe_run = run;
  const auto aio =
      co_await drive::probe_block_aio(disk.path, std::move(qemu_img), std::move(probe_run));
  const bool uring = aio == drive::BlockAio::kIoUring;
  log.info("data disk \"{}\": block device {} ({}), raw, cache=none, aio={}", disk.name,
           disk.path.string(), drive::format_bytes(*size), uring ? "io_uring" : "native");
  co_return qemu::DataDrive{disk.name, disk.path, qemu::DataBackend::kBlockDevice,
                            uring ? qemu::BlockAio::kIoUring : qemu::BlockAio::kNative};
}

}  // namespace

asio::awaitable<Result<std::vector<qemu::DataDrive>>> prepare_data_disks(
    std::vector<DataDiskSpec> disks, drive::RunProgram run, std::shared_ptr<spdlog::logger> log) {
  std::vector<qemu::DataDrive> drives;
  for (const auto& disk : disks) {
    if (disk.kind == DataDiskKind::kBlock) {
      auto drive = co_await prepare_block(disk, run, *log);
      if (!drive)
        co_return drive.error();
      drives.push_back(std::move(*drive));
      continue;
    }
    const bool raw = disk.format == DataDiskFormat::kRaw;
    drive::DataDiskParams params{disk.path, disk.name, disk.size,
                                 raw ? drive::ImageFormat::kRaw : drive::ImageFormat::kQcow2};
    auto file_run = run;
    auto file_log = log;
    auto file = co_await drive::prepare_data_disk(std::move(params), std::move(file_run),
                                                  std::move(file_log));
    if (!file)
      co_return file.error();
    drives.push_back(
        {disk.name, file->path, raw ? qemu::DataBackend::kRawFile : qemu::DataBackend::kQcow2File});
  }
  co_return drives;
}

Result<void> hand_over_data_disks(const Credentials& who,
                                  const std::vector<qemu::DataDrive>& disks) {
  for (const auto& disk : disks) {
    const std::string what = fmt::format("the data disk \"{}\"", disk.name);
    // chmod first: once the file is QEMU's, changing its mode would need CAP_FOWNER.
    if (::chmod(disk.path.c_str(), 0600) != 0 || ::chown(disk.path.c_str(), who.uid, who.gid) != 0)
      return system_error(fmt::format("handing {} ({}) to QEMU's user {}:{}", what,
                                      disk.path.string(), who.uid, who.gid),
                          errno);
    if (auto reachable = check_reachable(disk.path, who, what); !reachable)
      return reachable;
  }
  return {};
}

const qemu::DataDrive* find_data_disk(const std::vector<qemu::DataDrive>& disks,
                                      const std::vector<DataDiskSpec>& specs,
                                      std::string_view wanted) {
  if (wanted.empty())
    return nullptr;
  // "/vol/data/" and "/vol/data" are one folder.
  auto plain = [](const std::filesystem::path& p) {
    auto text = p.lexically_normal().string();
    while (text.size() > 1 && text.back() == '/')
      text.pop_back();
    return text;
  };
  const auto path = plain(std::filesystem::path(wanted));
  const bool absolute = wanted.front() == '/';
  for (std::size_t i = 0; i < disks.size() && i < specs.size(); ++i)
    if (disks[i].name == wanted
        || (absolute && (plain(disks[i].path) == path || plain(specs[i].path) == path)))
      return &disks[i];
  return nullptr;
}

}  // namespace berth
