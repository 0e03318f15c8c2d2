#include "net/nat.hpp"

#include <netinet/in.h>
#include <netinet/ip_icmp.h>

namespace berth::net {
namespace {

namespace ip = boost::asio::ip;
using namespace nft;

std::vector<std::uint16_t> port_numbers(
    const std::vector<const std::vector<ReservedPort>*>& lists) {
  std::vector<std::uint16_t> ports;
  for (const auto* list : lists)
    for (const ReservedPort& reserved : *list)
      ports.push_back(reserved.port);
  return ports;
}

std::string port_names(const std::vector<const std::vector<ReservedPort>*>& lists) {
  std::string names;
  for (const auto* list : lists)
    for (const ReservedPort& reserved : *list)
      names += (names.empty() ? "" : ", ") + reserved.name;
  return names;
}

}  // namespace

Table build_nat_table(const NatSpec& spec) {
  const ip::address_v4 loopback = ip::address_v4::loopback();
  const ip::network_v4 loopback_net(loopback, 8);
  const Final accept{Verdict::kAccept};

  Chain prerouting{"prerouting", ChainType::kNat, Hook::kPrerouting, -100, Verdict::kAccept, {}};
  if (!spec.reserved_tcp_ports.empty())
    prerouting.rules.push_back({{IifName{spec.pod_interface}, DestinationIn{{spec.pod_ip}},
                                 TcpPortIn{port_numbers({&spec.reserved_tcp_ports})}, accept},
                                "stays with the pod: " + port_names({&spec.reserved_tcp_ports})});
  prerouting.rules.push_back(
      {{IifName{spec.pod_interface}, DestinationIn{{spec.pod_ip}}, Counter{}, Dnat{spec.vm_ip}},
       "everything else reaches the VM"});

  Chain output{"output", ChainType::kNat, Hook::kOutput, -100, Verdict::kAccept, {}};
  const auto kept = port_numbers({&spec.reserved_tcp_ports, &spec.local_tcp_ports});
  if (!kept.empty())
    output.rules.push_back(
        {{DestinationIn{{loopback, spec.pod_ip}}, TcpPortIn{kept}, accept},
         "stays with the pod: " + port_names({&spec.reserved_tcp_ports, &spec.local_tcp_ports})});
  output.rules.push_back(
      {{DestinationIn{{loopback}}, ProtocolIn{{IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP}}, Counter{},
        Dnat{spec.vm_ip}},
       "localhost ports reach the VM (kubectl port-forward)"});
  output.rules.push_back({{DestinationIn{{spec.pod_ip}}, Counter{}, Dnat{spec.vm_ip}},
                          "the pod IP reaches the VM from inside the pod too"});

  Chain postrouting{"postrouting", ChainType::kNat, Hook::kPostrouting, 100, Verdict::kAccept, {}};
  postrouting.rules.push_back(
      {{OifName{spec.pod_interface}, SourceIn{ip::network_v4(spec.vm_ip, 32)}, Counter{},
        Snat{spec.pod_ip}},
       "the VM leaves as the pod IP"});
  postrouting.rules.push_back(
      {{OifName{spec.bridge}, SourceIn{loopback_net}, Counter{}, Snat{spec.vm_gw}},
       "localhost connections reach the VM from VM_GW"});

  Chain forward{"forward", ChainType::kFilter, Hook::kForward, 0, Verdict::kDrop, {}};
  forward.rules.push_back({{TcpSyn{}, ClampMss{}}, "clamp TCP MSS to the route MTU"});
  forward.rules.push_back({{CtStateIn{{CtState::kEstablished, CtState::kRelated}}, accept}, ""});
  forward.rules.push_back({{IifName{spec.bridge}, OifName{spec.pod_interface},
                            SourceIn{ip::network_v4(spec.vm_ip, 32)}, accept},
                           "the VM reaches the cluster"});
  forward.rules.push_back(
      {{IifName{spec.pod_interface}, OifName{spec.bridge}, CtStatusDnat{}, accept},
       "connections to the pod IP reach the VM"});

  // What the guest sends to the pod itself (VM_GW, the pod IP, 127.x: whatever reaches the input
  // hook from the bridge) is refused except DHCP, DNS and ICMP. Reject rather than drop: the guest
  // learns at once that the port is closed instead of waiting out its timeouts, and dropping hides
  // nothing (the guest knows its gateway is there).
  constexpr std::uint16_t kDhcpServer = 67;
  constexpr std::uint16_t kDns = 53;
  const IifName from_vm{spec.bridge};
  Chain input{"input", ChainType::kFilter, Hook::kInput, 0, Verdict::kAccept, {}};
  input.rules.push_back({{from_vm, CtStateIn{{CtState::kEstablished, CtState::kRelated}}, accept},
                         "answers to the pod's own connections to the VM"});
  input.rules.push_back({{from_vm, UdpPortIn{{kDhcpServer}}, accept}, "DHCP"});
  input.rules.push_back({{from_vm, DestinationIn{{spec.vm_gw}}, UdpPortIn{{kDns}}, accept}, "DNS"});
  input.rules.push_back(
      {{from_vm, DestinationIn{{spec.vm_gw}}, TcpPortIn{{kDns}}, accept}, "DNS over TCP"});
  input.rules.push_back(
      {{from_vm, IcmpTypeIn{{ICMP_ECHO, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB}},
        accept},
       "ping, and the errors path MTU discovery needs"});
  input.rules.push_back(
      {{from_vm, Reject{RejectWith::kTcpReset}}, "the rest of the pod is not the VM's"});
  input.rules.push_back(
      {{from_vm, Reject{RejectWith::kPortUnreachable}}, "the rest of the pod is not the VM's"});

  return Table{spec.table, {prerouting, output, postrouting, forward, input}};
}

}  // namespace berth::net
