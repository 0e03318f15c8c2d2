#pragma once
// Disk image formats as told by their bytes (never by the file name), and the few qcow2 header
// fields the pet disk logic needs (drive/disk/qcow2 writes and reads the overlays). Pure.

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

}  // namespace berth::drive
