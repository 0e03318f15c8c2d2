#include "common/mac.hpp"

#include <fmt/format.h>

#include <charconv>

namespace berth {

std::string format_mac(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

std::optional<MacAddress> parse_mac(std::string_view text) {
  if (text.size() != 17)
    return std::nullopt;
  MacAddress mac{};
  for (std::size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':' && text[i * 3 - 1] != '-')
      return std::nullopt;
    const std::string_view octet = text.substr(i * 3, 2);
    const auto [end, ec] = std::from_chars(octet.data(), octet.data() + 2, mac[i], 16);
    if (ec != std::errc() || end != octet.data() + 2)
      return std::nullopt;
  }
  return mac;
}

}  // namespace berth
