#include "net/nat.hpp"

#include <catch2/catch.hpp>

#include "net/network.hpp"
#include "sample.hpp"

using namespace berth::net;
using boost::asio::ip::make_address_v4;

namespace {

std::string rendered(const NetworkSpec& spec) {
  return nft::render(build_nat_table(nat_spec(spec)));
}

}  // namespace

TEST_CASE("net: the NAT table of the sample pod reads as the snapshot", "[nat]") {
  // golden/berth-calico.nft is also what `nft list table ip berth` prints for it (root test).
  CHECK(rendered(test::sample_spec()) == test::golden("berth-calico.nft"));
}

TEST_CASE("net: NO_VNC leaves only the health port with the pod", "[nat]") {
  auto spec = test::sample_spec();
  spec.reserved_tcp_ports = {{9250, "health"}};
  const auto text = rendered(spec);
  CHECK_THAT(text, Catch::Contains("iifname \"eth0\" ip daddr 10.77.0.5 tcp dport 9250 accept "
                                   "comment \"stays with the pod: health\""));
  CHECK_THAT(text, Catch::Contains("ip daddr { 10.77.0.5, 127.0.0.1 } tcp dport { 9250, 9251 } "
                                   "accept comment \"stays with the pod: health, control\""));
  CHECK(text.find("5900") == std::string::npos);
}

TEST_CASE("net: with no reserved port every port of the pod IP reaches the VM", "[nat]") {
  auto spec = test::sample_spec();
  spec.reserved_tcp_ports.clear();
  spec.local_tcp_ports.clear();
  const auto table = build_nat_table(nat_spec(spec));
  REQUIRE(table.chains.size() == 5);
  const auto& prerouting = table.chains[0];
  REQUIRE(prerouting.rules.size() == 1);
  CHECK(nft::render(prerouting.rules[0])
        == "iifname \"eth0\" ip daddr 10.77.0.5 counter packets 0 bytes 0 dnat to 192.168.254.2 "
           "comment \"everything else reaches the VM\"");
  auto nat_only = table;
  nat_only.chains.pop_back();  // the input chain's DNS rule has its own `tcp dport 53`
  const auto text = nft::render(nat_only);
  CHECK(text.find("tcp dport") == std::string::npos);
  CHECK(text.find(" accept comment \"stays") == std::string::npos);
}

TEST_CASE("net: the rules use the spec's interfaces and addresses, nothing built in", "[nat]") {
  auto spec = test::sample_spec();
  spec.pod_interface = "net1";
  spec.bridge = "vmbr";
  spec.table = "vm";
  spec.pod_ip = make_address_v4("10.1.2.3");
  spec.vm_ip = make_address_v4("172.31.255.254");
  spec.vm_gw = make_address_v4("172.31.255.253");
  const auto text = rendered(spec);
  CHECK(text.starts_with("table ip vm {\n"));
  for (const char* absent : {"eth0", "br0", "10.77.0.5", "192.168.254"})
    CHECK(text.find(absent) == std::string::npos);
  CHECK_THAT(text, Catch::Contains("iifname \"net1\" ip daddr 10.1.2.3 counter packets 0 bytes 0 "
                                   "dnat to 172.31.255.254"));
  CHECK_THAT(text, Catch::Contains("oifname \"net1\" ip saddr 172.31.255.254 counter packets 0 "
                                   "bytes 0 snat to 10.1.2.3"));
  CHECK_THAT(text, Catch::Contains("oifname \"vmbr\" ip saddr 127.0.0.0/8 counter packets 0 bytes "
                                   "0 snat to 172.31.255.253"));
  CHECK_THAT(text, Catch::Contains("iifname \"vmbr\" oifname \"net1\" ip saddr 172.31.255.254 "
                                   "accept"));
}

TEST_CASE("net: forwarding is closed except for the VM's own traffic", "[nat]") {
  const auto table = build_nat_table(nat_spec(test::sample_spec()));
  const auto& forward = table.chains[3];
  CHECK(forward.name == "forward");
  CHECK(forward.policy == nft::Verdict::kDrop);
  // The MSS clamp must come first: an accept before it would let SYNs through unclamped.
  REQUIRE_FALSE(forward.rules.empty());
  CHECK(
      nft::render(forward.rules[0]).starts_with("tcp flags syn tcp option maxseg size set rt mtu"));
}

TEST_CASE("net: from the bridge the pod itself answers only DHCP, DNS and ICMP", "[nat]") {
  auto spec = test::sample_spec();
  spec.bridge = "vmbr";
  spec.vm_gw = make_address_v4("172.31.255.253");
  const auto table = build_nat_table(nat_spec(spec));
  const auto& input = table.chains.back();
  CHECK(input.name == "input");
  CHECK(input.hook == nft::Hook::kInput);
  CHECK(input.policy == nft::Verdict::kAccept);
  REQUIRE(input.rules.size() == 7);
  for (const auto& rule : input.rules)  // traffic from eth0 and lo is none of this chain's business
    CHECK(nft::render(rule).starts_with("iifname \"vmbr\" "));
  CHECK_THAT(nft::render(input.rules[2]), Catch::Contains("ip daddr 172.31.255.253 udp dport 53"));
  CHECK_THAT(nft::render(input.rules[3]), Catch::Contains("ip daddr 172.31.255.253 tcp dport 53"));
  // The rejects come last: nothing accepted after them, every port the rules above left refused.
  CHECK_THAT(nft::render(input.rules[5]),
             Catch::StartsWith("iifname \"vmbr\" reject with tcp reset"));
  CHECK_THAT(nft::render(input.rules[6]), Catch::StartsWith("iifname \"vmbr\" reject comment"));
}

TEST_CASE("net: the supervisor's spec maps onto plumbing and NAT", "[nat]") {
  Pod pod;
  pod.interface = "eth0";
  pod.address = boost::asio::ip::network_v4(make_address_v4("10.77.0.5"), 32);
  pod.mtu = 1450;
  const auto spec =
      network_spec(pod, make_address_v4("192.168.254.2"), make_address_v4("192.168.254.1"),
                   {{5900, "vnc"}, {9250, "health"}}, {{9251, "control"}});
  CHECK(rendered(spec) == test::golden("berth-calico.nft"));
  const auto plumbing = plumbing_spec(spec);
  CHECK(plumbing.gateway.to_string() == "192.168.254.1/30");
  CHECK(plumbing.mtu == 1450);
  CHECK(plumbing.bridge == "br0");
  CHECK(plumbing.tap == "tap0");
  CHECK(plumbing.pod_interface == "eth0");
}

TEST_CASE("net: the IPv6 table of the sample dual-stack pod reads as the snapshot", "[nat]") {
  // golden/berth-calico6.nft is also what `nft list table ip6 berth` prints (root test).
  const auto spec = nat_spec(test::sample_spec6());
  CHECK(nft::render(build_nat6_table(spec)) == test::golden("berth-calico6.nft"));
  const auto tables = build_nat_tables(spec);
  REQUIRE(tables.size() == 2);
  CHECK(nft::render(tables[0]) == test::golden("berth-calico.nft"));  // IPv4 unchanged
  CHECK(tables[1].family == nft::Family::kIp6);
  CHECK(tables[1].name == "berth");
}

TEST_CASE("net: an IPv4-only pod gets the ip table alone", "[nat]") {
  const auto tables = build_nat_tables(nat_spec(test::sample_spec()));
  REQUIRE(tables.size() == 1);
  CHECK(tables[0].family == nft::Family::kIp);
}

TEST_CASE("net: IPv6: the VM's whole /64 leaves as the pod, one address is reached", "[nat]") {
  auto spec = test::sample_spec6();
  spec.ipv6->vm_ip = boost::asio::ip::make_address_v6("fd12:3456:789a:1:5054:ff:fe00:1");
  spec.ipv6->vm_gw = boost::asio::ip::make_address_v6("fd12:3456:789a:1::1");
  spec.ipv6->pod_ip = boost::asio::ip::make_address_v6("2001:db8:42::17");
  const auto text = nft::render(build_nat6_table(nat_spec(spec)));
  for (const char* absent : {"fd77::5", "fd00:b:e:7", " ip "})
    CHECK(text.find(absent) == std::string::npos);
  CHECK_THAT(text,
             Catch::Contains("oifname \"eth0\" ip6 saddr fd12:3456:789a:1::/64 counter packets "
                             "0 bytes 0 snat to 2001:db8:42::17"));
  CHECK_THAT(text, Catch::Contains("iifname \"eth0\" ip6 daddr 2001:db8:42::17 counter packets 0 "
                                   "bytes 0 dnat to fd12:3456:789a:1:5054:ff:fe00:1"));
  CHECK_THAT(text,
             Catch::Contains("iifname \"br0\" oifname \"eth0\" ip6 saddr fd12:3456:789a:1::/64 "
                             "accept"));
  CHECK_THAT(text, Catch::Contains("ip6 daddr fd12:3456:789a:1::1 udp dport 53 accept"));
}

TEST_CASE("net: IPv6: the guest's neighbour discovery and Packet Too Big reach the pod", "[nat]") {
  const auto table = build_nat6_table(nat_spec(test::sample_spec6()));
  const auto& input = table.chains[4];
  REQUIRE(input.name == "input");
  std::vector<std::uint8_t> accepted;
  for (const auto& rule : input.rules)
    for (const auto& expression : rule.expressions)
      if (const auto* types = std::get_if<nft::Icmpv6TypeIn>(&expression))
        accepted.insert(accepted.end(), types->types.begin(), types->types.end());
  std::sort(accepted.begin(), accepted.end());
  // destination unreachable, packet too big, time exceeded, parameter problem, echo request,
  // router solicitation, neighbour solicitation and advertisement; not 134 (RA) nor 137 (redirect).
  CHECK(accepted == std::vector<std::uint8_t>{1, 2, 3, 4, 128, 133, 135, 136});
  // Reject last: nothing the guest is allowed comes after it.
  CHECK(std::holds_alternative<nft::Reject>(input.rules.back().expressions.back()));
}

TEST_CASE("net: an IPv6-only pod's ip table forwards nothing and refuses the guest's IPv4",
          "[nat]") {
  auto spec = test::sample_spec6();
  spec.pod_ip.reset();
  const auto tables = build_nat_tables(nat_spec(spec));
  REQUIRE(tables.size() == 2);
  const auto text = nft::render(tables[0]);
  INFO(text);
  CHECK_THAT(text, !Catch::Contains("10.77.0.5"));
  CHECK_THAT(text, !Catch::Contains("iifname \"eth0\" ip daddr"));  // nothing DNATed from eth0
  CHECK_THAT(text, !Catch::Contains("oifname \"eth0\""));
  // 127.0.0.1 still reaches the VM (kubectl port-forward), the control port stays the pod's.
  CHECK_THAT(text, Catch::Contains("ip daddr 127.0.0.1 tcp dport { 5900, 9250, 9251 } accept"));
  CHECK_THAT(text, Catch::Contains("dnat to 192.168.254.2"));
  // The guest's DHCP and DNS to the bridge stay; IPv4 beyond the pod is refused at once.
  CHECK_THAT(text, Catch::Contains("udp dport 67 accept"));
  CHECK_THAT(text, Catch::Contains("iifname \"br0\" reject with tcp reset"));
  CHECK(nft::render(tables[1]) == test::golden("berth-calico6.nft"));  // IPv6 unchanged
}
