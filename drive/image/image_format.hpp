#pragma once
// Disk image formats as told by their bytes (never by the file name), and the few qcow2 header
// fields the pet disk logic needs. Pure.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"

namespace berth::drive {

enum class ImageFormat { kRaw, kQcow2 };

// QEMU's name for the format: "raw" or "qcow2".
std::string_view image_format_name(ImageFormat format);
// The inverse of image_format_name; nullopt for other names.
std::optional<ImageFormat> parse_image_format(std::string_view name);

// How many leading bytes detect_image_format looks at.
inline constexpr std::size_t kFormatProbeBytes = 512;

// The format of an image from its first bytes: qcow2 by its magic; other formats QEMU knows
// (VMDK, VDI, VHDX, VHD, QED) are refused with a message saying how to convert them (kIntegrity),
// because booting them as raw would hand the guest garbage; anything else is raw.
Result<ImageFormat> detect_image_format(std::span<const char> head);

struct Qcow2Header {
  std::uint32_t version = 0;
  std::uint64_t virtual_size = 0;
  std::uint64_t backing_file_offset = 0;  // 0: no backing file
  std::uint32_t backing_file_size = 0;
};

// Parses the fixed part of a qcow2 header (the first 32 bytes at least). Errors: not qcow2.
Result<Qcow2Header> parse_qcow2_header(std::span<const char> head);

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

}  // namespace berth::drive
