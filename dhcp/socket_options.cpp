#include "dhcp/socket_options.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>

#include "dhcp/start_error.hpp"

namespace berth::dhcp {

boost::system::error_code bind_to_device(int fd, const std::string& interface) {
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                   static_cast<socklen_t>(interface.size() + 1))
      != 0)
    return {errno, boost::system::system_category()};
  return {};
}

void throw_exception_from_error(const StartError& error, const boost::source_location&) {
  throw std::logic_error("StartResult::value() on an error: " + error.message);
}

}  // namespace berth::dhcp
