#include "drive/disk/data_disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "drive/disk/qcow2.hpp"
#include "drive/files.hpp"
#include "drive/progress.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

std::string_view extension(ImageFormat format) {
  return format == ImageFormat::kRaw ? ".raw" : ".qcow2";
}

Error program_error(std::string_view what, const ProgramResult& r) {
  return {ErrorKind::kProgram,
          fmt::format("{}: qemu-img {}: {}", what,
                      r.timed_out       ? "did not finish within the disk phase's budget"
                      : r.exit_code < 0 ? std::string("could not be run")
                                        : fmt::format("exited with code {}", r.exit_code),
                      r.output)};
}

// fsyncs the file at `path` (qemu-img create does not).
Result<void> fsync_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0)
      ::close(fd);
    return system_error(fmt::format("syncing {}", path), error);
  }
  ::close(fd);
  return {};
}

// A sparse raw file of `size` bytes at `temp`, fsync'd.
Result<void> make_raw(const fs::path& temp, std::uint64_t size) {
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return system_error(fmt::format("creating {}", temp), errno);
  const bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0 && ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok)
    return system_error(fmt::format("sizing {} to {} bytes", temp, size), error);
  return {};
}

asio::awaitable<Result<void>> create(const DataDiskParams& params, const fs::path& path,
                                     RunProgram& run) {
  const fs::path temp = temporary_path(path);
  Result<void> made;
  if (params.format == ImageFormat::kRaw) {
    made = make_raw(temp, params.size);
  } else {
    std::vector<std::string> argv{
        params.qemu_img, "create", "-q", "-f", "qcow2", temp.string(), std::to_string(params.size)};
    auto r = co_await run(std::move(argv));
    made = r.exit_code == 0 && !r.timed_out
               ? fsync_file(temp)
               : Result<void>(program_error(fmt::format("creating {}", path), r));
  }
  std::error_code ec;
  if (made)
    made = rename_no_replace(temp, path);
  if (!made) {
    fs::remove(temp, ec);
    co_return made.error();
  }
  co_return fsync_directory(params.folder);
}

// The size the guest sees of an existing file: a qcow2's virtual size, a raw file's length.
Result<std::uint64_t> current_size(const fs::path& path, ImageFormat format) {
  if (format == ImageFormat::kQcow2) {
    auto info = read_qcow2(path);
    if (!info)
      return info.error();
    return info->virtual_size;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return system_error(fmt::format("cannot stat {}", path), errno);
  return static_cast<std::uint64_t>(st.st_size);
}

asio::awaitable<Result<void>> grow(DataDiskFile& disk, const DataDiskParams& params,
                                   RunProgram& run) {
  if (params.size < disk.virtual_size)
    co_return invalid_input(fmt::format(
        "VM_DISKS gives the disk \"{}\" {} but {} is {}; disks are never shrunk: give it {} or "
        "more (or move the file away to start afresh)",
        params.name, format_bytes(params.size), disk.path, format_bytes(disk.virtual_size),
        format_bytes(disk.virtual_size)));
  if (params.size == disk.virtual_size)
    co_return Result<void>{};
  std::vector<std::string> argv{params.qemu_img,
                                "resize",
                                "-q",
                                "-f",
                                std::string(image_format_name(params.format)),
                                disk.path.string(),
                                std::to_string(params.size)};
  auto r = co_await run(std::move(argv));
  if (r.exit_code != 0 || r.timed_out)
    co_return program_error(fmt::format("growing {} to {}", disk.path, params.size), r);
  disk.grown_from = disk.virtual_size;
  disk.virtual_size = params.size;
  co_return Result<void>{};
}

}  // namespace

fs::path data_disk_path(const DataDiskParams& params) {
  return params.folder / (params.name + std::string(extension(params.format)));
}

asio::awaitable<Result<DataDiskFile>> prepare_data_disk(DataDiskParams params, RunProgram run,
                                                        std::shared_ptr<spdlog::logger> log) {
  if (!is_dir(params.folder))
    co_return invalid_input(fmt::format(
        "the folder {} of the disk \"{}\" (VM_DISKS) is missing or not a folder; mount the "
        "volume there",
        params.folder, params.name));
  DataDiskFile disk;
  disk.path = data_disk_path(params);
  const auto other_format =
      params.format == ImageFormat::kRaw ? ImageFormat::kQcow2 : ImageFormat::kRaw;
  const fs::path other = params.folder / (params.name + std::string(extension(other_format)));
  std::error_code ec;
  if (fs::exists(other, ec))
    co_return Error{ErrorKind::kConflict,
                    fmt::format("the disk \"{}\" is {} in VM_DISKS but {} is there; formats are "
                                "not converted: set the format back, or move the file away",
                                params.name, image_format_name(params.format), other)};
  if (!fs::exists(disk.path, ec)) {
    if (auto made = co_await create(params, disk.path, run); !made)
      co_return made.error();
    disk.outcome = DiskOutcome::kCreated;
    disk.virtual_size = params.size;
    log->info("created the data disk {} ({}, {})", disk.path.string(),
              image_format_name(params.format), format_bytes(params.size));
    co_return disk;
  }
  auto size = current_size(disk.path, params.format);
  if (!size)
    co_return size.error();
  disk.virtual_size = *size;
  if (auto grown = co_await grow(disk, params, run); !grown)
    co_return grown.error();
  if (disk.grown_from)
    log->info("grew the data disk {} from {} to {}; the guest grows its file system itself",
              disk.path.string(), format_bytes(*disk.grown_from), format_bytes(disk.virtual_size));
  else
    log->info("reusing the data disk {} ({})", disk.path.string(), format_bytes(disk.virtual_size));
  co_return disk;
}

Result<std::uint64_t> block_device_size(const fs::path& path) {
  struct stat st {};
  const bool found = ::stat(path.c_str(), &st) == 0;
  if (!found || !S_ISBLK(st.st_mode))
    return invalid_input(fmt::format(
        "{} (VM_DISKS, no size: a block device) is {}; give the pod the volume as a device "
        "(volumeDevices), or a folder with a size (name=/folder:10Gi)",
        path, found ? "not a block device" : "missing"));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  std::uint64_t size = 0;
  if (fd < 0 || ::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    const int error = errno;
    if (fd >= 0)
      ::close(fd);
    return system_error(fmt::format("reading the size of {}", path), error);
  }
  ::close(fd);
  return size;
}

asio::awaitable<BlockAio> probe_block_aio(fs::path device, std::string qemu_img, RunProgram run) {
  std::string escaped;
  for (char c : device.string()) {
    escaped += c;
    if (c == ',')
      escaped += ',';
  }
  std::vector<std::string> argv{
      std::move(qemu_img), "info", "-U", "--image-opts",
      "driver=raw,file.driver=host_device,file.aio=io_uring,file.cache.direct=on,file.filename="
          + escaped};
  auto r = co_await run(std::move(argv));
  co_return r.exit_code == 0 && !r.timed_out ? BlockAio::kIoUring : BlockAio::kNative;
}

}  // namespace berth::drive
