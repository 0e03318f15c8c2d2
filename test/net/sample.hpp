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

// The text of test/net/golden/<name>.
inline std::string golden(const std::string& name) {
  std::ifstream in(std::filesystem::path(BERTH_NET_GOLDEN_DIR) / name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace berth::net::test
