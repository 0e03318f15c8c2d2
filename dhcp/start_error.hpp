#pragma once
// Why a server could not start (bad configuration, missing interface, port taken, no privilege).

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <ostream>
#include <string>

namespace berth::dhcp {

struct StartError {
  std::string message;              // complete, e.g. "DHCP: cannot bind 0.0.0.0:67 on br0: ..."
  boost::system::error_code error;  // the system error, when there was one
};

using StartResult = boost::system::result<void, StartError>;

inline std::ostream& operator<<(std::ostream& out, const StartError& error) {
  return out << error.message;
}

// Called only by StartResult::value() on an error (a caller bug: check has_value() first).
[[noreturn]] void throw_exception_from_error(const StartError& error,
                                             const boost::source_location& location);

}  // namespace berth::dhcp
