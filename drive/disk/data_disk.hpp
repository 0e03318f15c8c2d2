#pragma once
// Data disks (VM_DISKS): a file that Berth makes in a mounted folder (a filesystem-mode volume),
// or a block device given to QEMU as it is (a block-mode volume). A file is created once at its
// size (atomically: a temporary name, fsync, rename without replacing), never overwritten, grown
// when the size grows and never shrunk.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "drive/image/image_format.hpp"
#include "drive/program.hpp"

namespace berth::drive {

struct DataDiskParams {
  std::filesystem::path folder;  // the volume's mount point
  std::string name;              // [a-z0-9-]: the file is <name>.qcow2 or <name>.raw
  std::uint64_t size = 0;        // bytes, a multiple of 512
  ImageFormat format = ImageFormat::kQcow2;
  std::string qemu_img = "qemu-img";
};

enum class DiskOutcome { kCreated, kReused };

struct DataDiskFile {
  std::filesystem::path path;
  std::uint64_t virtual_size = 0;
  DiskOutcome outcome = DiskOutcome::kReused;
  std::optional<std::uint64_t> grown_from;  // the size before it was grown now, if it was
};

// The file of a data disk in its folder: <folder>/<name>.qcow2 or .raw.
std::filesystem::path data_disk_path(const DataDiskParams& params);

// Makes the data disk's file when absent (qcow2 by `qemu-img create`, raw as a sparse file; both
// under a temporary name, fsync'd, renamed without replacing) or reuses it, growing it (qemu-img
// resize) when params.size is larger. Errors: kInvalidInput (the folder is missing or not a
// folder; the size is smaller than the file's: disks are never shrunk), kConflict (the file of
// the other format is there too), kIntegrity (a .qcow2 that is not qcow2), kProgram, kSystem.
boost::asio::awaitable<Result<DataDiskFile>> prepare_data_disk(DataDiskParams params,
                                                               RunProgram run,
                                                               std::shared_ptr<spdlog::logger> log);

// The size of the block device at `path`. Errors: kInvalidInput (missing, or not a block
// device), kSystem (it cannot be opened or sized).
Result<std::uint64_t> block_device_size(const std::filesystem::path& path);

// How QEMU submits I/O to a block device: io_uring where QEMU's block layer can use it (built
// with liburing, and the kernel and the container's seccomp profile allow it), else Linux AIO.
enum class BlockAio { kIoUring, kNative };

// Opens `device` the way QEMU will (qemu-img info, O_DIRECT, aio=io_uring): kIoUring when that
// works, else kNative.
boost::asio::awaitable<BlockAio> probe_block_aio(std::filesystem::path device, std::string qemu_img,
                                                 RunProgram run);

}  // namespace berth::drive
