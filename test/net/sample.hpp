#pragma once
// The sample configuration of the snapshot files in golden/: a Calico pod 10.77.0.5/32 on eth0,
// the default /30, VNC and health reserved, control on 9251.

#include <boost/asio/ip/address_v4.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "net/network.hpp"

namespace berth::net::test {

inline NetworkSpec sample_spec() {
  NetworkSpec spec;
  spec.pod_interface = "eth0";
  spec.pod_ip = boost::asio::ip::make_address_v4("10.77.0.5");
  spec.mtu = 1450;
  spec.vm_ip = boost::asio::ip::make_address_v4("192.168.254.2");
  spec.vm_gw = boost::asio::ip::make_address_v4("192.168.254.1");
  spec.reserved_tcp_ports = {{5900, "vnc"}, {9250, "health"}};
  spec.local_tcp_ports = {{9251, "control"}};
  return spec;
}

// The sample pod dual-stack: Calico's fd77::5/128, the VM's EUI-64 address of 52:54:00:12:34:56
// in fd00:b:e:7::/64, the gateway ::1 of that prefix.
inline NetworkSpec sample_spec6() {
  NetworkSpec spec = sample_spec();
  spec.ipv6 = NatSpec6{boost::asio::ip::make_address_v6("fd77::5"),
                       boost::asio::ip::make_address_v6("fd00:b:e:7:5054:ff:fe12:3456"),
                       boost::asio::ip::make_address_v6("fd00:b:e:7::1")};
  return spec;
}

// The text of test/net/golden/<name>.
inline std::string golden(const std::string& name) {
  std::ifstream in(std::filesystem::path(BERTH_NET_GOLDEN_DIR) / name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace berth::net::test
