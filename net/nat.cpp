#include "net/nat.hpp"

#include <netinet/in.h>

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

  return Table{spec.table, {prerouting, output, postrouting, forward}};
}

}  // namespace berth::net
