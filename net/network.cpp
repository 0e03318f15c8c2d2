#include "net/network.hpp"

#include "net/nftables.hpp"

namespace berth::net {
namespace {

// Deletes `ip <table>` and `ip6 <table>` (a dual-stack run's, even when this run is IPv4 only);
// the first error.
Result<void> delete_tables(const std::string& table) {
  auto deleted6 = delete_table(table, nft::Family::kIp6);
  auto deleted = delete_table(table);
  return deleted ? deleted6 : deleted;
}

}  // namespace

NetworkSpec network_spec(const Pod& pod, boost::asio::ip::address_v4 vm_ip,
                         boost::asio::ip::address_v4 vm_gw,
                         std::vector<ReservedPort> reserved_tcp_ports,
                         std::vector<ReservedPort> local_tcp_ports) {
  NetworkSpec spec;
  spec.pod_interface = pod.interface;
  if (pod.address)
    spec.pod_ip = pod.address->address();
  spec.mtu = pod.mtu;
  spec.vm_ip = vm_ip;
  spec.vm_gw = vm_gw;
  spec.reserved_tcp_ports = std::move(reserved_tcp_ports);
  spec.local_tcp_ports = std::move(local_tcp_ports);
  return spec;
}

PlumbingSpec plumbing_spec(const NetworkSpec& spec) {
  PlumbingSpec plumbing{spec.pod_interface, spec.bridge,
                        spec.tap,           boost::asio::ip::network_v4(spec.vm_gw, 30),
                        spec.mtu,           std::nullopt};
  if (spec.ipv6)
    plumbing.gateway6 = boost::asio::ip::network_v6(spec.ipv6->vm_gw, 64);
  return plumbing;
}

NatSpec nat_spec(const NetworkSpec& spec) {
  return NatSpec{spec.table, spec.pod_interface,      spec.pod_ip,          spec.bridge, spec.vm_ip,
                 spec.vm_gw, spec.reserved_tcp_ports, spec.local_tcp_ports, spec.ipv6};
}

Result<PodNetwork> PodNetwork::setup(const NetworkSpec& spec) {
  auto state = setup_plumbing(plumbing_spec(spec));
  if (!state) {
    (void)delete_tables(spec.table);  // a crashed run's tables must not outlive a failed setup
    return state.error();
  }
  if (auto committed = commit_tables(build_nat_tables(nat_spec(spec))); !committed) {
    (void)teardown_plumbing(plumbing_spec(spec), *state);  // the first error is the one to report
    (void)delete_tables(spec.table);
    return committed.error();
  }
  return PodNetwork(spec, *state);
}

Result<void> PodNetwork::teardown() {
  auto deleted = delete_tables(spec_.table);
  auto unplumbed = teardown_plumbing(plumbing_spec(spec_), state_);
  return deleted ? unplumbed : deleted;
}

}  // namespace berth::net
