#include "drive/disk/pet_disk.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "drive/disk/qcow2.hpp"
#include "drive/files.hpp"
#include "drive/progress.hpp"
#include "drive/record.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// What the sidecar records. An empty base means a standalone disk (no backing file); a blank disk
// made for an install from an ISO also records that ISO.
struct PetRecord {
  std::string base;
  std::string base_sha256;
  std::string base_format;
  std::string install_iso;  // empty: not made for an install
  std::string install_iso_sha256;
};

std::string serialize(const PetRecord& r) {
  Record record;
  record.set("base", r.base).set("base_sha256", r.base_sha256).set("base_format", r.base_format);
  if (!r.install_iso.empty())
    record.set("made_for", "install")
        .set("install_iso", r.install_iso)
        .set("install_iso_sha256", r.install_iso_sha256);
  return record.serialize();
}

std::optional<PetRecord> parse_record(std::string_view text) {
  auto record = Record::parse(text);
  PetRecord r;
  if (!record
      || !record->strings(
          {{"base", &r.base}, {"base_sha256", &r.base_sha256}, {"base_format", &r.base_format}}))
    return std::nullopt;
  r.install_iso = record->string("install_iso").value_or("");
  r.install_iso_sha256 = record->string("install_iso_sha256").value_or("");
  return r;
}

Error program_error(std::string_view what, const ProgramResult& r) {
  if (r.timed_out)
    return {ErrorKind::kProgram,
            fmt::format("{}: qemu-img did not finish within its deadline (the disk phase's "
                        "budget, BERTH_PHASE_BUDGETS) and was stopped; is the disk's storage "
                        "hung? {}",
                        what, r.output.empty() ? "It wrote nothing." : "It wrote: " + r.output)};
  return {ErrorKind::kProgram,
          r.exit_code < 0
              ? fmt::format("{}: qemu-img could not be run: {}", what, r.output)
              : fmt::format("{}: qemu-img exited with code {}: {}", what, r.exit_code, r.output)};
}

// What prepare_pet_disk works on, once the parameters are checked.
struct Target {
  fs::path base;     // absolute
  fs::path sidecar;  // <disk>.berth.json
  std::string format;
  PetRecord wanted;  // the record of a disk over `base`
  PetDisk disk;
};

// The disk's record beside it: <disk>.berth.json.
fs::path record_path(const fs::path& disk) {
  return disk.string() + ".berth.json";
}

Result<Target> check_params(const PetDiskParams& params) {
  const auto& host = params.hostname;
  if (host.empty() || host == "." || host == ".." || host.find('/') != std::string::npos
      || host.find('\0') != std::string::npos || host.size() > 253)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("the hostname \"{}\" cannot name a pet disk file", host)};
  if (params.install && !params.size)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("a blank pet disk for installing from {} needs a size (VM_DISK_SIZE)",
                             params.install->iso)};
  std::error_code ec;
  Target t;
  if (!params.install) {
    t.base = fs::absolute(params.base, ec);
    if (ec)
      return system_error(fmt::format("cannot make {} absolute", params.base), ec);
  }
  fs::create_directories(params.disk_dir, ec);
  if (ec)
    return system_error(
        fmt::format("cannot create the pet disk directory {} (BERTH_DISK_DIR)", params.disk_dir),
        ec);
  t.disk.path = pet_disk_path(params.disk_dir, host);
  t.sidecar = record_path(t.disk.path);
  t.format = std::string(image_format_name(params.base_format));
  if (params.install)
    t.wanted = PetRecord{"", "", "", params.install->iso.string(), params.install->sha256};
  else
    t.wanted = PetRecord{t.base.string(), params.base_sha256, t.format, "", ""};
  return t;
}

// The record next to an existing disk: nullopt when there is none. Errors: kIntegrity (there is
// one but it is unreadable), kConflict (it names another base).
Result<std::optional<PetRecord>> read_record(const Target& t, const PetDiskParams& params) {
  auto text = read_file(t.sidecar, 64 * 1024);
  auto record = text ? parse_record(*text) : std::nullopt;
  if (text && !record)
    return Error{ErrorKind::kIntegrity,
                 fmt::format("{} is unreadable; it records which base image the pet disk {} "
                             "was made from: restore it, or delete it to have Berth check "
                             "the disk's backing file again",
                             t.sidecar, t.disk.path)};
  if (record && !record->base_sha256.empty() && record->base_sha256 != params.base_sha256)
    return Error{
        ErrorKind::kConflict,
        fmt::format("the pet disk {} was made from the base image {} (sha256:{}), but the base "
                    "image now is {} (sha256:{}); booting it over another base would corrupt "
                    "it. Point IMG_SOURCE/IMG_TARGET/IMG_CHECKSUM back at the original image, "
                    "or delete the pet disk and {} to start afresh",
                    t.disk.path, record->base, record->base_sha256, t.base, params.base_sha256,
                    t.sidecar)};
  return record;
}

// Same content, another path (the cache moved): points the header at the new path.
asio::awaitable<Result<void>> rebase(const Target& t, const PetRecord& record,
                                     const PetDiskParams& params, RunProgram& run,
                                     spdlog::logger& log) {
  log.info("the base image of {} moved from {} to {} (same sha256); updating the backing file name",
           t.disk.path.string(), record.base, t.base.string());
  std::vector<std::string> argv{
      params.qemu_img,     "rebase", "-u", "-f", "qcow2", "-F", t.format, "-b", t.base.string(),
      t.disk.path.string()};
  auto r = co_await run(std::move(argv));
  if (r.exit_code != 0 || r.timed_out)
    co_return program_error(fmt::format("updating the backing file of {}", t.disk.path), r);
  co_return write_file_atomic(t.sidecar, serialize(t.wanted));
}

// No record (created before Berth kept one, or a crash right after creation): trusts the backing
// file named in the qcow2 header when it is our base.
Result<void> record_unrecorded(const Target& t, const Qcow2Info& info, spdlog::logger& log) {
  if (!info.backing) {
    log.warn("the pet disk {} has no backing file; using it as a standalone disk",
             t.disk.path.string());
    return write_file_atomic(t.sidecar, serialize(PetRecord{}));
  }
  if (*info.backing == t.base.string()) {
    log.info("recording that the pet disk {} is based on {}", t.disk.path.string(),
             t.base.string());
    return write_file_atomic(t.sidecar, serialize(t.wanted));
  }
  return Error{ErrorKind::kConflict,
               fmt::format("the pet disk {} is based on {}, not on the base image {}; point "
                           "IMG_SOURCE/IMG_TARGET back at its base, or delete the pet disk to "
                           "start afresh",
                           t.disk.path, *info.backing, t.base)};
}

asio::awaitable<Result<void>> reuse(Target& t, const PetDiskParams& params, RunProgram& run,
                                    spdlog::logger& log) {
  t.disk.outcome = PetOutcome::kReused;
  auto info = read_qcow2(t.disk.path);
  if (!info)
    co_return info.error();
  auto record = read_record(t, params);
  if (!record)
    co_return record.error();
  if (*record && !(*record)->base_sha256.empty() && (*record)->base != t.base.string()) {
    if (auto r = co_await rebase(t, **record, params, run, log); !r)
      co_return r;
  } else if (!*record) {
    if (auto r = record_unrecorded(t, *info, log); !r)
      co_return r;
  }
  t.disk.virtual_size = info->virtual_size;
  log.info("reusing the pet disk {} ({})", t.disk.path.string(), format_bytes(info->virtual_size));
  co_return Result<void>{};
}

// Renames the new disk `temp` to the pet disk's name, never over an existing one (a pet disk that
// appeared meanwhile wins and this is an error; `temp` is removed), then writes its record.
Result<void> publish(const Target& t, const fs::path& temp, const PetDiskParams& params) {
  if (auto renamed = rename_no_replace(temp, t.disk.path); !renamed) {
    std::error_code ec;
    fs::remove(temp, ec);
    return Error{ErrorKind::kConflict,
                 fmt::format("{}; is another pod using the same BERTH_DISK_DIR and hostname?",
                             renamed.error().message)};
  }
  if (auto w = write_file_atomic(t.sidecar, serialize(t.wanted)); !w)
    return w.error();
  return fsync_directory(params.disk_dir);
}

// Written here rather than by `qemu-img create`: the header is a few hundred bytes, and a pod's
// start-up should not wait for a process that maps all of QEMU's block layer.
Result<void> create(Target& t, const PetDiskParams& params, spdlog::logger& log) {
  t.disk.outcome = PetOutcome::kCreated;
  auto base_size = virtual_size_of(params.base_contents.value_or(t.base), params.base_format);
  if (!base_size)
    return base_size.error();
  std::uint64_t size = *base_size;
  if (params.size)
    size = std::max(size, (*params.size + 511) / 512 * 512);
  auto overlay = qcow2_overlay(size, t.base.string(), params.base_format);
  if (!overlay)
    return overlay.error();
  const fs::path temp = temporary_path(t.disk.path);
  std::error_code ec;
  if (auto written = write_overlay(temp, *overlay); !written) {
    fs::remove(temp, ec);
    return written.error();
  }
  if (auto published = publish(t, temp, params); !published)
    return published;
  t.disk.virtual_size = size;
  log.info("created the pet disk {} ({}) over {} ({})", t.disk.path.string(), format_bytes(size),
           t.base.string(), t.format);
  return {};
}

// An install's blank disk that exists: reused whatever ISO it was made for (the installed system
// is on it), never one over a base image (that is another kind of pet disk).
Result<void> reuse_blank(Target& t, const PetDiskParams& params, spdlog::logger& log) {
  t.disk.outcome = PetOutcome::kReused;
  auto info = read_qcow2(t.disk.path);
  if (!info)
    return info.error();
  if (info->backing)
    return Error{ErrorKind::kConflict,
                 fmt::format("IMG_SOURCE is an ISO, so the pet disk should be a blank disk to "
                             "install on, but {} is an overlay over the base image {}; point "
                             "IMG_SOURCE back at that image (and give the ISO as VM_CDROM), or "
                             "delete the pet disk and {} to install afresh",
                             t.disk.path, *info->backing, t.sidecar)};
  auto text = read_file(t.sidecar, 64 * 1024);
  auto record = text ? parse_record(*text) : std::nullopt;
  if (!record) {
    log.info("recording that the pet disk {} is a standalone disk, used to install from {}",
             t.disk.path.string(), params.install->iso.string());
    if (auto w = write_file_atomic(t.sidecar, serialize(t.wanted)); !w)
      return w.error();
  } else if (record->install_iso_sha256 != params.install->sha256) {
    log.info("the pet disk {} was made for {}; booting it, with {} as the CD-ROM behind it",
             t.disk.path.string(),
             record->install_iso.empty() ? "another image" : record->install_iso,
             params.install->iso.string());
  }
  t.disk.virtual_size = info->virtual_size;
  log.info("reusing the pet disk {} ({}); the VM boots it when it is bootable, else the CD-ROM",
           t.disk.path.string(), format_bytes(info->virtual_size));
  return {};
}

// A blank disk to install on: `qemu-img create` to a temporary name, renamed without replacing.
asio::awaitable<Result<void>> create_blank(Target& t, const PetDiskParams& params, RunProgram& run,
                                           spdlog::logger& log) {
  t.disk.outcome = PetOutcome::kCreated;
  const std::uint64_t size = (*params.size + 511) / 512 * 512;
  const fs::path temp = temporary_path(t.disk.path);
  std::vector<std::string> argv{params.qemu_img,     "create", "-q", "-f", "qcow2", temp.string(),
                                std::to_string(size)};
  auto r = co_await run(std::move(argv));
  std::error_code ec;
  if (r.exit_code != 0 || r.timed_out) {
    fs::remove(temp, ec);
    co_return program_error(fmt::format("creating the blank pet disk {}", t.disk.path), r);
  }
  if (auto published = publish(t, temp, params); !published)
    co_return published;
  t.disk.virtual_size = size;
  log.info("created the blank pet disk {} ({}) to install on from {}", t.disk.path.string(),
           format_bytes(size), params.install->iso.string());
  co_return Result<void>{};
}

// Grows the disk to VM_DISK_SIZE when that is larger; never shrinks it.
asio::awaitable<Result<void>> grow(PetDisk& disk, const PetDiskParams& params, RunProgram& run,
                                   spdlog::logger& log) {
  const std::uint64_t want = (*params.size + 511) / 512 * 512;
  if (want < disk.virtual_size)
    log.info("VM_DISK_SIZE ({}) is smaller than the pet disk ({}); disks are never shrunk",
             format_bytes(want), format_bytes(disk.virtual_size));
  if (want <= disk.virtual_size)
    co_return Result<void>{};
  std::vector<std::string> argv{
      params.qemu_img, "resize", "-q", "-f", "qcow2", disk.path.string(), std::to_string(want)};
  auto r = co_await run(std::move(argv));
  if (r.exit_code != 0 || r.timed_out)
    co_return program_error(fmt::format("growing the pet disk {} to {}", disk.path, want), r);
  log.info(
      "grew the pet disk {} from {} to {} (VM_DISK_SIZE); the guest grows its partition and file "
      "system itself (cloud-init growpart)",
      disk.path.string(), format_bytes(disk.virtual_size), format_bytes(want));
  disk.grown_from = disk.virtual_size;
  disk.virtual_size = want;
  co_return Result<void>{};
}

}  // namespace

fs::path pet_disk_path(const fs::path& disk_dir, const std::string& hostname) {
  return disk_dir / (hostname + ".qcow2");
}

void discard_pet_disk(const fs::path& disk) {
  std::error_code ec;
  fs::remove(disk, ec);
  fs::remove(record_path(disk), ec);
}

asio::awaitable<Result<PetDisk>> prepare_pet_disk(PetDiskParams params, RunProgram run,
                                                  std::shared_ptr<spdlog::logger> log) {
  auto target = check_params(params);
  if (!target)
    co_return target.error();
  struct stat st {};
  const bool exists = ::stat(target->disk.path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT)
    co_return system_error(fmt::format("cannot stat the pet disk {}", target->disk.path), errno);
  Result<void> made;
  if (params.install && exists)
    made = reuse_blank(*target, params, *log);
  else if (params.install)
    made = co_await create_blank(*target, params, run, *log);
  else if (exists)
    made = co_await reuse(*target, params, run, *log);
  else
    made = create(*target, params, *log);
  if (!made)
    co_return made.error();
  if (params.size)
    if (auto r = co_await grow(target->disk, params, run, *log); !r)
      co_return r.error();
  co_return target->disk;
}

}  // namespace berth::drive
