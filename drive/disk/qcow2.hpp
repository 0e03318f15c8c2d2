#pragma once
// The qcow2 side of the pet disk: the bytes of a new, empty overlay over a base image, writing
// them sparse, and reading back the two header fields Berth checks (virtual size, backing file).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "drive/image/image_format.hpp"

namespace berth::drive {

// A new, empty qcow2 overlay: version 3, 64 KiB clusters, 16-bit refcounts, laid out as
// `qemu-img create -f qcow2 -b <backing> -F <format>` lays it out (cluster 0: header, the
// backing-format extension and the backing file name; 1: the refcount table; 2: its one refcount
// block; 3 on: the empty L1 table), less the optional feature-name table. `chunks` are the only
// non-zero bytes; the rest of the file, up to `file_size`, is zero (write it sparse).
struct Qcow2Overlay {
  std::vector<std::pair<std::uint64_t, std::string>> chunks;  // (offset, bytes)
  std::uint64_t file_size = 0;
};

// Errors (kInvalidInput): a virtual size of 0, not a multiple of 512, or over 2 PiB (QEMU's L1
// limit); a backing file name that is empty or longer than 1023 bytes.
Result<Qcow2Overlay> qcow2_overlay(std::uint64_t virtual_size, std::string_view backing,
                                   ImageFormat backing_format);

// Creates `path` (which must not exist) with the overlay's bytes, sparse, and fsyncs it.
// Errors: kSystem (create, write, size or fsync failed; the caller removes `path`).
Result<void> write_overlay(const std::filesystem::path& path, const Qcow2Overlay& overlay);

struct Qcow2Info {
  std::uint64_t virtual_size = 0;
  std::optional<std::string> backing;
};

// The virtual size and backing file name of an existing pet disk. Errors: kSystem (cannot read),
// kIntegrity (not qcow2, or a backing file name that cannot be read).
Result<Qcow2Info> read_qcow2(const std::filesystem::path& path);

// The size the guest sees of a base image: a qcow2's virtual size, a raw file's length rounded up
// to 512. Errors: kSystem, kIntegrity (a qcow2 base that is not qcow2 any more).
Result<std::uint64_t> virtual_size_of(const std::filesystem::path& base, ImageFormat format);

}  // namespace berth::drive
