#pragma once
// The one error type of the pure codecs: why untrusted bytes were rejected, and where.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>

namespace berth::dhcp {

// Which protocol's option table `option` refers to.
enum class Family : unsigned char { kV4, kV6 };

struct ParseError {
  std::string_view reason;  // static text, e.g. "option runs past the end of the packet"
  std::size_t offset = 0;   // byte offset in the input where the problem was seen
  int option = -1;          // the DHCP option code concerned, or -1
  Family family = Family::kV4;
  friend bool operator==(const ParseError&, const ParseError&) = default;
};

template <class T>
using ParseResult = boost::system::result<T, ParseError>;

// "option 50 (requested-address): bad length at byte 243", for debug logs and test failures;
// DHCPv6 errors say "DHCPv6 option 3 (ia-na): ...".
std::string to_string(const ParseError& error);

inline std::ostream& operator<<(std::ostream& out, const ParseError& error) {
  return out << to_string(error);
}

// Called only by ParseResult::value() on an error (a caller bug: check has_value() first).
[[noreturn]] void throw_exception_from_error(const ParseError& error,
                                             const boost::source_location& location);

}  // namespace berth::dhcp
