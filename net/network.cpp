#include "net/network.hpp"

#include "net/nftables.hpp"

namespace berth::net {

NetworkSpec network_spec(const Pod& pod, boost::asio::ip::address_v4 vm_ip,
                         boost::asio::ip::address_v4 vm_gw,
                         std::vector<ReservedPort> reserved_tcp_ports,
                         std::vector<ReservedPort> local_tcp_ports) {
  NetworkSpec spec;
  spec.pod_interface = pod.interface;
  spec.pod_ip = pod.address.address();
  spec.mtu = pod.mtu;
  spec.vm_ip = vm_ip;
  spec.vm_gw = vm_gw;
  spec.reserved_tcp_ports = std::move(reserved_tcp_ports);
  spec.local_tcp_ports = std::move(local_tcp_ports);
  return spec;
}

PlumbingSpec plumbing_spec(const NetworkSpec& spec) {
  return PlumbingSpec{spec.pod_interface, spec.bridge, spec.tap,
                      boost::asio::ip::network_v4(spec.vm_gw, 30), spec.mtu};
}

NatSpec nat_spec(const NetworkSpec& spec) {
  return NatSpec{spec.table, spec.pod_interface,      spec.pod_ip,         spec.bridge, spec.vm_ip,
                 spec.vm_gw, spec.reserved_tcp_ports, spec.local_tcp_ports};
}

Result<PodNetwork> PodNetwork::setup(const NetworkSpec& spec) {
  auto state = setup_plumbing(plumbing_spec(spec));
  if (!state) {
    (void)delete_table(spec.table);  // a crashed run's table must not outlive a failed setup
    return state.error();
  }
  if (auto committed = commit_table(build_nat_table(nat_spec(spec))); !committed) {
    (void)teardown_plumbing(plumbing_spec(spec), *state);  // the first error is the one to report
    (void)delete_table(spec.table);
    return committed.error();
  }
  return PodNetwork(spec, *state);
}

Result<void> PodNetwork::teardown() {
  auto deleted = delete_table(spec_.table);
  auto unplumbed = teardown_plumbing(plumbing_spec(spec_), state_);
  return deleted ? unplumbed : deleted;
}

}  // namespace berth::net
