#pragma once
// Socket set-up shared by the DHCP server and the DNS forwarder.

#include <boost/system/error_code.hpp>
#include <string>

namespace berth::dhcp {

// SO_BINDTODEVICE: the socket only receives from, and sends through, `interface`.
boost::system::error_code bind_to_device(int fd, const std::string& interface);

}  // namespace berth::dhcp
