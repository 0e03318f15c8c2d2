#include "dhcp/parse_error.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "dhcp/dhcp_options.hpp"
#include "dhcp/v6/dhcpv6_message.hpp"

namespace berth::dhcp {

std::string to_string(const ParseError& error) {
  if (error.option < 0)
    return fmt::format("{} at byte {}", error.reason, error.offset);
  if (error.family == Family::kV6) {
    const v6::OptionDef* def = v6::find_option_def(static_cast<std::uint16_t>(error.option));
    return fmt::format("DHCPv6 option {} ({}): {} at byte {}", error.option,
                       def ? def->name : "unknown", error.reason, error.offset);
  }
  const OptionDef* def = find_option_def(static_cast<std::uint8_t>(error.option));
  return fmt::format("option {} ({}): {} at byte {}", error.option, def ? def->name : "unknown",
                     error.reason, error.offset);
}

void throw_exception_from_error(const ParseError& error, const boost::source_location&) {
  throw std::logic_error("ParseResult::value() on an error: " + to_string(error));
}

}  // namespace berth::dhcp
