#pragma once
// The VM's Ethernet address, as every module spells it.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth {

using MacAddress = std::array<std::uint8_t, 6>;

// "52:54:00:ab:cd:ef" (lower-case hex, colons).
std::string format_mac(const MacAddress& mac);

// Parses six hex octets separated by ':' or '-'; nullopt for anything else.
std::optional<MacAddress> parse_mac(std::string_view text);

}  // namespace berth
