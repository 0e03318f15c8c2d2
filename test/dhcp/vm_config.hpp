#pragma once
// The VM's DHCP configuration as Berth sets it up in a pod, shared by the dhcp tests and the fuzz
// targets (no Catch here: the fuzz targets include it too).

#include <boost/asio/ip/address_v4.hpp>

#include "dhcp/dhcp_responder.hpp"

namespace berth::dhcp::test {

// VM_GW 192.168.254.1, VM_IP 192.168.254.2/30 for 52:54:00:12:34:56, the cluster's search list,
// hostname vm-0, MTU 1450, one-hour lease, no option 121.
inline DhcpConfig vm_dhcp_config() {
  DhcpConfig config;
  config.interface = "br0";
  config.server_address = boost::asio::ip::make_address_v4("192.168.254.1");
  config.client_address = boost::asio::ip::make_address_v4("192.168.254.2");
  config.prefix_length = 30;
  config.client_mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  config.router = config.server_address;
  config.dns_servers = {config.server_address};
  config.search_domains = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local"};
  config.hostname = "vm-0";
  config.mtu = 1450;
  config.lease_time = std::chrono::hours(1);
  return config;
}

}  // namespace berth::dhcp::test
