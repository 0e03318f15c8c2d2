#include "drive/image/image_format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace berth::drive {

namespace {

bool has_at(std::span<const char> head, std::size_t offset, std::string_view magic) {
  return head.size() >= offset + magic.size()
         && std::memcmp(head.data() + offset, magic.data(), magic.size()) == 0;
}

std::uint64_t be(std::span<const char> bytes, std::size_t offset, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

}  // namespace

std::string_view image_format_name(ImageFormat format) {
  return format == ImageFormat::kQcow2 ? "qcow2" : "raw";
}

std::optional<ImageFormat> parse_image_format(std::string_view name) {
  if (name == "qcow2")
    return ImageFormat::kQcow2;
  if (name == "raw")
    return ImageFormat::kRaw;
  return std::nullopt;
}

Result<ImageFormat> detect_image_format(std::span<const char> head) {
  using namespace std::string_view_literals;
  if (has_at(head, 0, "QFI\xfb"sv))
    return ImageFormat::kQcow2;
  struct Other {
    std::size_t offset;
    std::string_view magic;
    std::string_view name;
    std::string_view qemu_name;
  };
  static constexpr Other kOthers[] = {
      {0, "KDMV"sv, "VMDK", "vmdk"},
      {0, "# Disk DescriptorFile"sv, "VMDK (descriptor)", "vmdk"},
      {0x40, "\x7f\x10\xda\xbe"sv, "VDI", "vdi"},
      {0, "vhdxfile"sv, "VHDX", "vhdx"},
      {0, "conectix"sv, "VHD", "vpc"},
      {0, "QED\0"sv, "QED", "qed"},
  };
  for (const auto& other : kOthers) {
    if (has_at(head, other.offset, other.magic))
      return Error{
          ErrorKind::kIntegrity,
          fmt::format("the image is in {} format; Berth boots qcow2 or raw images: convert "
                      "it with `qemu-img convert -f {} -O qcow2 <in> <out>.qcow2`",
                      other.name, other.qemu_name)};
  }
  return ImageFormat::kRaw;
}

Result<Qcow2Header> parse_qcow2_header(std::span<const char> head) {
  using namespace std::string_view_literals;
  if (head.size() < 32 || !has_at(head, 0, "QFI\xfb"sv))
    return Error{ErrorKind::kIntegrity, "not a qcow2 image (no QFI\\xfb magic)"};
  Qcow2Header header;
  header.version = static_cast<std::uint32_t>(be(head, 4, 4));
  header.backing_file_offset = be(head, 8, 8);
  header.backing_file_size = static_cast<std::uint32_t>(be(head, 16, 4));
  header.virtual_size = be(head, 24, 8);
  return header;
}

namespace {

void put_be(std::string& out, std::size_t offset, std::uint64_t value, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i)
    out[offset + i] = static_cast<char>(value >> (8 * (width - 1 - i)));
}

}  // namespace

Result<Qcow2Overlay> qcow2_overlay(std::uint64_t virtual_size, std::string_view backing,
                                   ImageFormat backing_format) {
  constexpr std::uint64_t kClusterBits = 16;
  constexpr std::uint64_t kCluster = 1ULL << kClusterBits;
  constexpr std::uint64_t kL2Span = kCluster * (kCluster / 8);  // what one L2 table maps: 512 MiB
  constexpr std::uint64_t kMaxL1Bytes = 32ULL << 20;            // QEMU's QCOW_MAX_L1_SIZE
  constexpr std::size_t kHeaderLength = 112;                    // v3 with the compression type
  constexpr std::uint32_t kBackingFormatExtension = 0xE2792ACA;
  if (virtual_size == 0 || virtual_size % 512 != 0 || virtual_size / kL2Span + 1 > kMaxL1Bytes / 8)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("a qcow2 overlay of {} bytes: the size must be a positive multiple "
                             "of 512 and at most 2 PiB",
                             virtual_size)};
  if (backing.empty() || backing.size() > 1023)
    return Error{
        ErrorKind::kInvalidInput,
        fmt::format("a qcow2 backing file name must be 1 to 1023 bytes, not {}", backing.size())};
  const std::uint64_t l1_entries = (virtual_size + kL2Span - 1) / kL2Span;
  const std::uint64_t l1_clusters =
      std::max<std::uint64_t>(1, (l1_entries * 8 + kCluster - 1) / kCluster);
  const std::uint64_t clusters = 3 + l1_clusters;  // header, refcount table, block, L1

  const std::string_view format = image_format_name(backing_format);
  const std::size_t format_padded = (format.size() + 7) / 8 * 8;
  const std::size_t backing_offset = kHeaderLength + 8 + format_padded + 8;
  std::string head(backing_offset + backing.size(), '\0');
  head.replace(0, 4, "QFI\xfb");
  put_be(head, 4, 3, 4);                // version
  put_be(head, 8, backing_offset, 8);   // backing_file_offset
  put_be(head, 16, backing.size(), 4);  // backing_file_size
  put_be(head, 20, kClusterBits, 4);    // cluster_bits
  put_be(head, 24, virtual_size, 8);    // size
  put_be(head, 36, l1_entries, 4);      // l1_size
  put_be(head, 40, 3 * kCluster, 8);    // l1_table_offset
  put_be(head, 48, kCluster, 8);        // refcount_table_offset
  put_be(head, 56, 1, 4);               // refcount_table_clusters
  put_be(head, 96, 4, 4);               // refcount_order: 16-bit refcounts
  put_be(head, 100, kHeaderLength, 4);  // header_length (compression type 0: zlib)
  put_be(head, kHeaderLength, kBackingFormatExtension, 4);
  put_be(head, kHeaderLength + 4, format.size(), 4);
  head.replace(kHeaderLength + 8, format.size(), format);
  // The end-of-extensions marker (type 0, length 0) is already zero.
  head.replace(backing_offset, backing.size(), backing);

  std::string table(8, '\0');
  put_be(table, 0, 2 * kCluster, 8);  // the refcount block is cluster 2
  std::string block(clusters * 2, '\0');
  for (std::uint64_t i = 0; i < clusters; ++i)
    put_be(block, i * 2, 1, 2);  // every cluster of the file is used once
  Qcow2Overlay overlay;
  overlay.chunks = {
      {0, std::move(head)}, {kCluster, std::move(table)}, {2 * kCluster, std::move(block)}};
  overlay.file_size = clusters * kCluster;
  return overlay;
}

}  // namespace berth::drive
