#include "dhcp/socket_options.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace berth::dhcp {

boost::system::error_code bind_to_device(int fd, const std::string& interface) {
  if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
                   static_cast<socklen_t>(interface.size() + 1))
      != 0)
    return {errno, boost::system::system_category()};
  return {};
}

}  // namespace berth::dhcp
