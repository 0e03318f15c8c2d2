#pragma once
// Disk image formats as told by their bytes (never by the file name), the few qcow2 header
// fields the pet disk logic needs (drive/disk/qcow2 writes and reads the overlays), and ISO 9660
// images (installers) told by their bytes too. Pure, but for is_iso9660_file.

#include <cstdint>
#include <filesystem>
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

// An ISO 9660 image has its first volume descriptor at sector 16 (byte 0x8000): a type byte, then
// "CD001". Nothing else Berth caches has those bytes there (a qcow2 or MBR disk holds data or
// zeros at 32 KiB), and a hybrid ISO (an MBR too) is still an ISO.
inline constexpr std::uint64_t kIso9660MagicOffset = 0x8001;
inline constexpr std::string_view kIso9660Magic = "CD001";

// True when `at_magic`, the bytes of an image from kIso9660MagicOffset on, starts with "CD001".
bool is_iso9660(std::span<const char> at_magic);

// Whether the file at `path` is an ISO 9660 image (a file shorter than 32 KiB is not).
// Errors: kSystem (cannot open or read it).
Result<bool> is_iso9660_file(const std::filesystem::path& path);

}  // namespace berth::drive
