#include "drive/image/image_format.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
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

namespace {}  // namespace

bool is_iso9660(std::span<const char> at_magic) {
  return has_at(at_magic, 0, kIso9660Magic);
}

Result<bool> is_iso9660_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return system_error(fmt::format("cannot open {}", path), errno);
  std::array<char, kIso9660Magic.size()> bytes{};
  const ssize_t got = ::pread(fd, bytes.data(), bytes.size(), kIso9660MagicOffset);
  const int error = errno;
  ::close(fd);
  if (got < 0)
    return system_error(fmt::format("cannot read {}", path), error);
  return is_iso9660(std::span<const char>(bytes.data(), static_cast<std::size_t>(got)));
}

}  // namespace berth::drive
