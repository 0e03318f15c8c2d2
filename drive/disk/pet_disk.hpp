#pragma once
// The pet disk: <disk dir>/<hostname>.qcow2, a qcow2 overlay over the cached base image that holds
// everything the guest writes. Created once (atomically, never overwritten), grown when
// VM_DISK_SIZE asks for more, and tied to its base: a sidecar <hostname>.qcow2.berth.json records
// the base's path and checksum, and a different base is refused.
//
// For an install from an ISO (IMG_SOURCE is an installer ISO) the pet disk is instead a blank
// qcow2 of VM_DISK_SIZE with no backing file, and the sidecar records the ISO it was made for;
// once made it is kept like any pet disk (the installed system lives on it).

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

// The ISO a blank pet disk is made for (recorded in the sidecar, not used by the disk).
struct InstallMedium {
  std::filesystem::path iso;  // the cached ISO
  std::string sha256;         // its checksum
};

struct PetDiskParams {
  std::filesystem::path disk_dir;  // BERTH_DISK_DIR
  std::string hostname;            // the pod's hostname (StatefulSet: <name>-<ordinal>)
  std::filesystem::path base;      // the cached base image (CachedImage::path)
  ImageFormat base_format = ImageFormat::kQcow2;
  std::string base_sha256;            // CachedImage::sha256
  std::optional<std::uint64_t> size;  // VM_DISK_SIZE in bytes: grow to this when larger
  std::string qemu_img = "qemu-img";  // program name or path
  // Set: a blank disk of `size` (required) for installing from this ISO; `base` is not used.
  std::optional<InstallMedium> install;
  // IMG_LAZY: where the base's bytes are while `base` is still filling (T.lazy): its size is read
  // from there; the overlay still names `base`.
  std::optional<std::filesystem::path> base_contents;
};

enum class PetOutcome { kCreated, kReused };

struct PetDisk {
  std::filesystem::path path;  // give it to QEMU as qcow2
  std::uint64_t virtual_size = 0;
  PetOutcome outcome = PetOutcome::kReused;
  std::optional<std::uint64_t> grown_from;  // the size before it was grown now, if it was
};

// Creates the pet disk when absent (a qcow2 overlay over <base> written by Berth itself, at the
// base's size or params.size if larger, to a temporary name, fsync'd, then renamed without
// replacing), or reuses it after checking it is based on params.base and grows it (qemu-img
// resize) when params.size is larger. With params.install: creates a blank disk (qemu-img create,
// to a temporary name, renamed without replacing) or reuses one that has no backing file.
// Errors: kInvalidInput (hostname not a file name, install without a size), kConflict (made from
// another base, or over a base image when an install asks for a blank disk), kProgram (qemu-img
// failed), kIntegrity (not a qcow2 file), kSystem.
boost::asio::awaitable<Result<PetDisk>> prepare_pet_disk(PetDiskParams params, RunProgram run,
                                                         std::shared_ptr<spdlog::logger> log);

// The pet disk's path for `hostname` in `disk_dir`.
std::filesystem::path pet_disk_path(const std::filesystem::path& disk_dir,
                                    const std::string& hostname);

// Removes the pet disk `disk` and its record (a disk made over bytes that failed their check, so
// that the next start makes it afresh). Missing files are not an error.
void discard_pet_disk(const std::filesystem::path& disk);

}  // namespace berth::drive
