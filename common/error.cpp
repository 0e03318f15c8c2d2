#include "common/error.hpp"

#include <fmt/format.h>

#include <ostream>
#include <stdexcept>

namespace berth {

Error system_error(std::string_view what, int errno_value) {
  const std::error_code ec(errno_value, std::generic_category());
  return {ErrorKind::kSystem, fmt::format("{}: {}", what, ec.message()), ec};
}

Error system_error(std::string_view what, const std::error_code& ec) {
  return {ErrorKind::kSystem, fmt::format("{}: {}", what, ec.message()), ec};
}

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidInput:
      return "invalid-input";
    case ErrorKind::kTransient:
      return "transient";
    case ErrorKind::kHttp:
      return "http";
    case ErrorKind::kIntegrity:
      return "integrity";
    case ErrorKind::kConflict:
      return "conflict";
    case ErrorKind::kPermission:
      return "permission";
    case ErrorKind::kNoInterface:
      return "no-interface";
    case ErrorKind::kNoIpv4:
      return "no-ipv4";
    case ErrorKind::kOverlap:
      return "overlap";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kProgram:
      return "program";
    case ErrorKind::kSystem:
      return "system";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& out, const Error& error) {
  return out << error.message;
}

void throw_exception_from_error(const Error& error, const boost::source_location&) {
  throw std::logic_error("Result::value() on an error: " + error.message);
}

}  // namespace berth
