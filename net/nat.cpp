#include "net/nat.hpp"

#include <netinet/icmp6.h>
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

// What differs between the ip and the ip6 table.
struct FamilyParts {
  Family family;
  std::optional<ip::address> pod_ip;  // none: an IPv6-only pod's ip table (no way in or out)
  ip::address vm_ip;
  ip::address vm_gw;
  // 127.0.0.1, whose connections reach the VM (kubectl port-forward); none for IPv6, where the
  // answers could not come back: the kernel routes ::1 only on lo, and has no route_localnet.
  std::optional<ip::address_v4> loopback;
  Prefix vm_source;              // what leaves as the pod: VM_IP/32, or the VM's /64
  std::vector<Rule> input_icmp;  // the ICMP the guest may send to the pod itself
  std::uint16_t dhcp_server_port;
  std::string dhcp_name;
};

// The rules that need the pod's address: from the pod interface to it, to the VM (but the
// reserved ports); the VM leaving as it.
void add_pod_ip_rules(const NatSpec& spec, const FamilyParts& parts, Chain& prerouting,
                      Chain& postrouting) {
  const Final accept{Verdict::kAccept};
  if (!spec.reserved_tcp_ports.empty())
    prerouting.rules.push_back({{IifName{spec.pod_interface}, DestinationIn{{*parts.pod_ip}},
                                 TcpPortIn{port_numbers({&spec.reserved_tcp_ports})}, accept},
                                "stays with the pod: " + port_names({&spec.reserved_tcp_ports})});
  prerouting.rules.push_back(
      {{IifName{spec.pod_interface}, DestinationIn{{*parts.pod_ip}}, Counter{}, Dnat{parts.vm_ip}},
       "everything else reaches the VM"});
  postrouting.rules.push_back(
      {{OifName{spec.pod_interface}, SourceIn{parts.vm_source}, Counter{}, Snat{*parts.pod_ip}},
       "the VM leaves as the pod IP"});
}

Table build_table(const NatSpec& spec, const FamilyParts& parts) {
  const Final accept{Verdict::kAccept};

  Chain prerouting{"prerouting", ChainType::kNat, Hook::kPrerouting, -100, Verdict::kAccept, {}};
  Chain output{"output", ChainType::kNat, Hook::kOutput, -100, Verdict::kAccept, {}};
  Chain postrouting{"postrouting", ChainType::kNat, Hook::kPostrouting, 100, Verdict::kAccept, {}};
  if (parts.pod_ip)
    add_pod_ip_rules(spec, parts, prerouting, postrouting);
  const auto kept = port_numbers({&spec.reserved_tcp_ports, &spec.local_tcp_ports});
  std::vector<ip::address> local_destinations;
  if (parts.pod_ip)
    local_destinations.push_back(*parts.pod_ip);
  if (parts.loopback)
    local_destinations.push_back(*parts.loopback);
  if (!kept.empty() && !local_destinations.empty())
    output.rules.push_back(
        {{DestinationIn{local_destinations}, TcpPortIn{kept}, accept},
         "stays with the pod: " + port_names({&spec.reserved_tcp_ports, &spec.local_tcp_ports})});
  if (parts.loopback)
    output.rules.push_back(
        {{DestinationIn{{*parts.loopback}}, ProtocolIn{{IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP}},
          Counter{}, Dnat{parts.vm_ip}},
         "localhost ports reach the VM (kubectl port-forward)"});
  if (parts.pod_ip)
    output.rules.push_back({{DestinationIn{{*parts.pod_ip}}, Counter{}, Dnat{parts.vm_ip}},
                            "the pod IP reaches the VM from inside the pod too"});
  if (parts.loopback)
    postrouting.rules.push_back(
        {{OifName{spec.bridge}, SourceIn{ip::network_v4(*parts.loopback, 8)}, Counter{},
          Snat{parts.vm_gw}},
         "localhost connections reach the VM from VM_GW"});

  Chain forward{"forward", ChainType::kFilter, Hook::kForward, 0, Verdict::kDrop, {}};
  forward.rules.push_back({{TcpSyn{}, ClampMss{}}, "clamp TCP MSS to the route MTU"});
  forward.rules.push_back({{CtStateIn{{CtState::kEstablished, CtState::kRelated}}, accept}, ""});
  if (parts.pod_ip)
    forward.rules.push_back(
        {{IifName{spec.bridge}, OifName{spec.pod_interface}, SourceIn{parts.vm_source}, accept},
         "the VM reaches the cluster"});
  forward.rules.push_back(
      {{IifName{spec.pod_interface}, OifName{spec.bridge}, CtStatusDnat{}, accept},
       "connections to the pod IP reach the VM"});
  if (!parts.pod_ip) {
    // An IPv6-only pod: the guest's IPv4 goes nowhere, and is refused at once so that its
    // programs fall back to IPv6 rather than wait out a timeout.
    const std::string why = "no IPv4 beyond the pod: the VM uses IPv6";
    forward.rules.push_back({{IifName{spec.bridge}, Reject{RejectWith::kTcpReset}}, why});
    forward.rules.push_back({{IifName{spec.bridge}, Reject{RejectWith::kPortUnreachable}}, why});
  }

  // What the guest sends to the pod itself (the gateway, the pod IP, loopback: whatever reaches
  // the input hook from the bridge) is refused except DHCP, DNS and ICMP. Reject rather than
  // drop: the guest learns at once that the port is closed instead of waiting out its timeouts,
  // and dropping hides nothing (the guest knows its gateway is there).
  constexpr std::uint16_t kDns = 53;
  const IifName from_vm{spec.bridge};
  Chain input{"input", ChainType::kFilter, Hook::kInput, 0, Verdict::kAccept, {}};
  input.rules.push_back({{from_vm, CtStateIn{{CtState::kEstablished, CtState::kRelated}}, accept},
                         "answers to the pod's own connections to the VM"});
  input.rules.push_back({{from_vm, UdpPortIn{{parts.dhcp_server_port}}, accept}, parts.dhcp_name});
  input.rules.push_back(
      {{from_vm, DestinationIn{{parts.vm_gw}}, UdpPortIn{{kDns}}, accept}, "DNS"});
  input.rules.push_back(
      {{from_vm, DestinationIn{{parts.vm_gw}}, TcpPortIn{{kDns}}, accept}, "DNS over TCP"});
  input.rules.insert(input.rules.end(), parts.input_icmp.begin(), parts.input_icmp.end());
  input.rules.push_back(
      {{from_vm, Reject{RejectWith::kTcpReset}}, "the rest of the pod is not the VM's"});
  input.rules.push_back(
      {{from_vm, Reject{RejectWith::kPortUnreachable}}, "the rest of the pod is not the VM's"});

  return Table{spec.table, {prerouting, output, postrouting, forward, input}, parts.family};
}

}  // namespace

Table build_nat_table(const NatSpec& spec) {
  const ip::address_v4 loopback = ip::address_v4::loopback();
  const Rule icmp{
      {IifName{spec.bridge},
       IcmpTypeIn{{ICMP_ECHO, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB}},
       Final{Verdict::kAccept}},
      "ping, and the errors path MTU discovery needs"};
  constexpr std::uint16_t kDhcpServer = 67;
  std::optional<ip::address> pod_ip;
  if (spec.pod_ip)
    pod_ip = *spec.pod_ip;
  return build_table(spec, FamilyParts{Family::kIp,
                                       pod_ip,
                                       spec.vm_ip,
                                       spec.vm_gw,
                                       loopback,
                                       ip::network_v4(spec.vm_ip, 32),
                                       {icmp},
                                       kDhcpServer,
                                       "DHCP"});
}

Table build_nat6_table(const NatSpec& spec) {
  const NatSpec6& v6 = spec.ipv6.value();
  const Final accept{Verdict::kAccept};
  // Neighbour discovery is how the pod and the guest find each other at all; the errors are
  // what path MTU discovery needs (IPv6 routers never fragment: Packet Too Big is the only way
  // a guest learns a smaller path).
  const std::vector<Rule> icmp{
      {{IifName{spec.bridge},
        Icmpv6TypeIn{{ND_ROUTER_SOLICIT, ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT}}, accept},
       "neighbour discovery"},
      {{IifName{spec.bridge},
        Icmpv6TypeIn{{ICMP6_ECHO_REQUEST, ICMP6_DST_UNREACH, ICMP6_PACKET_TOO_BIG,
                      ICMP6_TIME_EXCEEDED, ICMP6_PARAM_PROB}},
        accept},
       "ping, and the errors path MTU discovery needs"}};
  constexpr std::uint16_t kDhcpv6Server = 547;
  return build_table(
      spec, FamilyParts{Family::kIp6, v6.pod_ip, v6.vm_ip, v6.vm_gw, std::nullopt,
                        ip::network_v6(v6.vm_ip, 64).canonical(), icmp, kDhcpv6Server, "DHCPv6"});
}

std::vector<Table> build_nat_tables(const NatSpec& spec) {
  std::vector<Table> tables{build_nat_table(spec)};
  if (spec.ipv6)
    tables.push_back(build_nat6_table(spec));
  return tables;
}

}  // namespace berth::net
