#include "drive/disk/qcow2.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "drive/files.hpp"

namespace berth::drive {

namespace fs = std::filesystem;

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

Result<void> write_overlay(const fs::path& path, const Qcow2Overlay& overlay) {
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

}  // namespace berth::drive
