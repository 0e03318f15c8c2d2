#include "drive/result.hpp"

#include <fmt/format.h>

#include <cstring>
#include <ostream>
#include <stdexcept>

namespace berth::drive {

Error system_error(std::string_view what, int errno_value) {
  return {ErrorKind::kSystem, fmt::format("{}: {}", what, std::strerror(errno_value))};
}

Error system_error(std::string_view what, const std::error_code& ec) {
  return {ErrorKind::kSystem, fmt::format("{}: {}", what, ec.message())};
}

std::ostream& operator<<(std::ostream& out, const Error& error) {
  return out << error.message;
}

void throw_exception_from_error(const Error& error, const boost::source_location&) {
  throw std::runtime_error(error.message);
}

}  // namespace berth::drive
