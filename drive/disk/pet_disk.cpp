#include "drive/disk/pet_disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "drive/files.hpp"
#include "drive/progress.hpp"
#include "drive/record.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// What the sidecar records. An empty base means a standalone disk (no backing file).
struct PetRecord {
  std::string base;
  std::string base_sha256;
  std::string base_format;
};

std::string serialize(const PetRecord& r) {
  return Record()
      .set("base", r.base)
      .set("base_sha256", r.base_sha256)
      .set("base_format", r.base_format)
      .serialize();
}

std::optional<PetRecord> parse_record(std::string_view text) {
  auto record = Record::parse(text);
  PetRecord r;
  if (!record
      || !record->strings(
          {{"base", &r.base}, {"base_sha256", &r.base_sha256}, {"base_format", &r.base_format}}))
    return std::nullopt;
  return r;
}

struct Qcow2Info {
  std::uint64_t virtual_size = 0;
  std::optional<std::string> backing;
};

Result<Qcow2Info> read_qcow2(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return system_error(fmt::format("cannot open the pet disk {}", path), errno);
  char head[512];
  const ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
  if (n < 0)
    return system_error(fmt::format("cannot read {}", path), errno);
  auto header = parse_qcow2_header({head, static_cast<std::size_t>(n)});
  if (!header)
    return Error{ErrorKind::kIntegrity,
                 fmt::format("{} is not a qcow2 file; Berth's pet disks are qcow2 overlays: move "
                             "it away to start a new pet disk",
                             path)};
  Qcow2Info info{header->virtual_size, std::nullopt};
  if (header->backing_file_offset != 0 && header->backing_file_size > 0) {
    if (header->backing_file_size > 1023)
      return Error{ErrorKind::kIntegrity,
                   fmt::format("{}: the qcow2 header names a backing file of {} bytes (at most "
                               "1023 are allowed)",
                               path, header->backing_file_size)};
    std::string name(header->backing_file_size, '\0');
    const ssize_t got = ::pread(fd.get(), name.data(), name.size(),
                                static_cast<off_t>(header->backing_file_offset));
    if (got != static_cast<ssize_t>(name.size()))
      return Error{
          ErrorKind::kIntegrity,
          fmt::format("{}: cannot read the backing file name from the qcow2 header", path)};
    info.backing = std::move(name);
  }
  return info;
}

// The size the guest sees of the base: a qcow2's virtual size, a raw file's length (to 512).
Result<std::uint64_t> virtual_size_of(const fs::path& base, ImageFormat format) {
  UniqueFd fd(::open(base.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return system_error(fmt::format("cannot open the base image {}", base), errno);
  if (format == ImageFormat::kRaw) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
      return system_error(fmt::format("cannot stat the base image {}", base), errno);
    return (static_cast<std::uint64_t>(st.st_size) + 511) / 512 * 512;
  }
  char head[64];
  const ssize_t n = ::pread(fd.get(), head, sizeof head, 0);
  if (n < 0)
    return system_error(fmt::format("cannot read the base image {}", base), errno);
  auto header = parse_qcow2_header({head, static_cast<std::size_t>(n)});
  if (!header)
    return Error{ErrorKind::kIntegrity, fmt::format("the base image {} is not qcow2 any more: {}",
                                                    base, header.error().message)};
  return header->virtual_size;
}

// Creates `path` (which must not exist) with the overlay's bytes, sparse, and fsyncs it.
Result<void> write_sparse(const fs::path& path, const Qcow2Overlay& overlay) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd)
    return system_error(fmt::format("cannot create {}", path), errno);
  for (const auto& [offset, bytes] : overlay.chunks) {
    if (::pwrite(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset))
        != static_cast<ssize_t>(bytes.size()))
      return system_error(fmt::format("cannot write {}", path), errno == 0 ? ENOSPC : errno);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(overlay.file_size)) != 0)
    return system_error(fmt::format("cannot size {}", path), errno);
  if (::fsync(fd.get()) != 0)
    return system_error(fmt::format("cannot fsync {}", path), errno);
  return {};
}

Error program_error(std::string_view what, const ProgramResult& r) {
  return {ErrorKind::kProgram,
          r.exit_code < 0
              ? fmt::format("{}: qemu-img could not be run: {}", what, r.output)
              : fmt::format("{}: qemu-img exited with code {}: {}", what, r.exit_code, r.output)};
}

}  // namespace

fs::path pet_disk_path(const fs::path& disk_dir, const std::string& hostname) {
  return disk_dir / (hostname + ".qcow2");
}

asio::awaitable<Result<PetDisk>> prepare_pet_disk(PetDiskParams params, RunProgram run,
                                                  std::shared_ptr<spdlog::logger> log) {
  const auto& host = params.hostname;
  if (host.empty() || host == "." || host == ".." || host.find('/') != std::string::npos
      || host.find('\0') != std::string::npos || host.size() > 253)
    co_return Error{ErrorKind::kInvalidInput,
                    fmt::format("the hostname \"{}\" cannot name a pet disk file", host)};
  std::error_code ec;
  const fs::path base = fs::absolute(params.base, ec);
  if (ec)
    co_return system_error(fmt::format("cannot make {} absolute", params.base), ec);
  fs::create_directories(params.disk_dir, ec);
  if (ec)
    co_return system_error(
        fmt::format("cannot create the pet disk directory {} (BERTH_DISK_DIR)", params.disk_dir),
        ec);

  PetDisk disk;
  disk.path = pet_disk_path(params.disk_dir, host);
  const fs::path sidecar = disk.path.string() + ".berth.json";
  const std::string format(image_format_name(params.base_format));
  const PetRecord wanted{base.string(), params.base_sha256, format};

  struct stat st {};
  if (::stat(disk.path.c_str(), &st) == 0) {
    disk.outcome = PetOutcome::kReused;
    auto info = read_qcow2(disk.path);
    if (!info)
      co_return info.error();
    auto text = read_file(sidecar, 64 * 1024);
    auto record = text ? parse_record(*text) : std::nullopt;
    if (text && !record)
      co_return Error{ErrorKind::kIntegrity,
                      fmt::format("{} is unreadable; it records which base image the pet disk {} "
                                  "was made from: restore it, or delete it to have Berth check "
                                  "the disk's backing file again",
                                  sidecar, disk.path)};
    if (record && !record->base_sha256.empty() && record->base_sha256 != params.base_sha256)
      co_return Error{
          ErrorKind::kConflict,
          fmt::format("the pet disk {} was made from the base image {} (sha256:{}), but the base "
                      "image now is {} (sha256:{}); booting it over another base would corrupt "
                      "it. Point IMG_SOURCE/IMG_TARGET/IMG_CHECKSUM back at the original image, "
                      "or delete the pet disk and {} to start afresh",
                      disk.path, record->base, record->base_sha256, base, params.base_sha256,
                      sidecar)};
    if (record && !record->base_sha256.empty() && record->base != base.string()) {
      // Same content, another path (the cache moved): point the header at the new path.
      log->info(
          "the base image of {} moved from {} to {} (same sha256); updating the backing "
          "file name",
          disk.path.string(), record->base, base.string());
      std::vector<std::string> argv{
          params.qemu_img, "rebase",          "-u", "-f", "qcow2", "-F", format, "-b",
          base.string(),   disk.path.string()};
      auto r = co_await run(std::move(argv));
      if (r.exit_code != 0)
        co_return program_error(fmt::format("updating the backing file of {}", disk.path), r);
      if (auto w = write_file_atomic(sidecar, serialize(wanted)); !w)
        co_return w.error();
    } else if (!record) {
      // No record (created before Berth kept one, or a crash right after creation): trust the
      // backing file named in the qcow2 header when it is our base.
      if (!info->backing) {
        log->warn("the pet disk {} has no backing file; using it as a standalone disk",
                  disk.path.string());
        if (auto w = write_file_atomic(sidecar, serialize(PetRecord{})); !w)
          co_return w.error();
      } else if (*info->backing == base.string()) {
        log->info("recording that the pet disk {} is based on {}", disk.path.string(),
                  base.string());
        if (auto w = write_file_atomic(sidecar, serialize(wanted)); !w)
          co_return w.error();
      } else {
        co_return Error{ErrorKind::kConflict,
                        fmt::format("the pet disk {} is based on {}, not on the base image {}; "
                                    "point IMG_SOURCE/IMG_TARGET back at its base, or delete the "
                                    "pet disk to start afresh",
                                    disk.path, *info->backing, base)};
      }
    }
    disk.virtual_size = info->virtual_size;
    log->info("reusing the pet disk {} ({})", disk.path.string(), format_bytes(info->virtual_size));
  } else if (errno != ENOENT) {
    co_return system_error(fmt::format("cannot stat the pet disk {}", disk.path), errno);
  } else {
    disk.outcome = PetOutcome::kCreated;
    // Written here rather than by `qemu-img create`: the header is a few hundred bytes, and a
    // pod's start-up should not wait for a process that maps all of QEMU's block layer.
    auto base_size = virtual_size_of(base, params.base_format);
    if (!base_size)
      co_return base_size.error();
    std::uint64_t size = *base_size;
    if (params.size)
      size = std::max(size, (*params.size + 511) / 512 * 512);
    auto overlay = qcow2_overlay(size, base.string(), params.base_format);
    if (!overlay)
      co_return overlay.error();
    const fs::path temp = temporary_path(disk.path);
    if (auto written = write_sparse(temp, *overlay); !written) {
      fs::remove(temp, ec);
      co_return written.error();
    }
    // Never overwrite: if a pet disk appeared meanwhile, it wins and this is an error.
    if (auto renamed = rename_no_replace(temp, disk.path); !renamed) {
      fs::remove(temp, ec);
      co_return Error{ErrorKind::kConflict,
                      fmt::format("{}; is another pod using the same BERTH_DISK_DIR and hostname?",
                                  renamed.error().message)};
    }
    if (auto w = write_file_atomic(sidecar, serialize(wanted)); !w)
      co_return w.error();
    if (auto synced = fsync_directory(params.disk_dir); !synced)
      co_return synced.error();
    disk.virtual_size = size;
    log->info("created the pet disk {} ({}) over {} ({})", disk.path.string(), format_bytes(size),
              base.string(), format);
  }

  if (params.size) {
    const std::uint64_t want = (*params.size + 511) / 512 * 512;
    if (want > disk.virtual_size) {
      std::vector<std::string> argv{
          params.qemu_img, "resize", "-q", "-f", "qcow2", disk.path.string(), std::to_string(want)};
      auto r = co_await run(std::move(argv));
      if (r.exit_code != 0)
        co_return program_error(fmt::format("growing the pet disk {} to {}", disk.path, want), r);
      log->info(
          "grew the pet disk {} from {} to {} (VM_DISK_SIZE); the guest grows its "
          "partition and file system itself (cloud-init growpart)",
          disk.path.string(), format_bytes(disk.virtual_size), format_bytes(want));
      disk.grown_from = disk.virtual_size;
      disk.virtual_size = want;
    } else if (want < disk.virtual_size) {
      log->info("VM_DISK_SIZE ({}) is smaller than the pet disk ({}); disks are never shrunk",
                format_bytes(want), format_bytes(disk.virtual_size));
    }
  }
  co_return disk;
}

}  // namespace berth::drive
