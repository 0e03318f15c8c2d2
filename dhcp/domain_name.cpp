#include "dhcp/domain_name.hpp"

#include <optional>

namespace berth::dhcp {
namespace {

constexpr std::size_t kMaxPointerHops = 127;  // a 255-byte name has at most 127 labels

}  // namespace

ParseResult<std::size_t> read_wire_name(ByteView bytes, std::size_t offset, Bytes* out,
                                        std::size_t lowest_target, int option) {
  std::size_t pos = offset;
  std::size_t limit = offset;  // a pointer must point before this
  std::optional<std::size_t> end;
  std::size_t wire_length = 1;
  std::size_t hops = 0;
  while (true) {
    if (pos >= bytes.size())
      return ParseError{"name runs past the end", pos, option};
    const std::uint8_t length = bytes[pos];
    if ((length & 0xC0) == 0xC0) {
      if (pos + 1 >= bytes.size())
        return ParseError{"truncated compression pointer", pos, option};
      const std::size_t target = (std::size_t{length} & 0x3F) << 8 | bytes[pos + 1];
      if (target >= limit || ++hops > kMaxPointerHops)
        return ParseError{"compression pointer does not point backwards", pos, option};
      if (target < lowest_target)
        return ParseError{"compression pointer into the header", pos, option};
      if (!end)
        end = pos + 2;
      limit = target;
      pos = target;
      continue;
    }
    if ((length & 0xC0) != 0)
      return ParseError{"unsupported label type", pos, option};
    if (length == 0) {
      if (out)
        out->push_back(0);
      return end.value_or(pos + 1);
    }
    if (pos + 1 + length > bytes.size())
      return ParseError{"label runs past the end", pos, option};
    wire_length += length + 1u;
    if (wire_length > 255)
      return ParseError{"name longer than 255 bytes", pos, option};
    if (out)
      out->insert(out->end(), bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                  bytes.begin() + static_cast<std::ptrdiff_t>(pos + 1 + length));
    pos += 1 + length;
    if (!end)
      limit = pos;
  }
}

}  // namespace berth::dhcp
