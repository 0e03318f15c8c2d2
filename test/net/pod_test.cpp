#include "net/pod.hpp"

#include <linux/if_addr.h>

#include <catch2/catch.hpp>

using namespace berth::net;
using boost::asio::ip::make_address_v4;
using boost::asio::ip::make_network_v4;

namespace {

Route route(const char* destination, const char* gateway, const char* interface) {
  Route r;
  r.destination = make_network_v4(destination);
  if (gateway)
    r.gateway = make_address_v4(gateway);
  r.interface = interface;
  return r;
}

Pod calico_pod() {
  Pod pod;
  pod.interface = "eth0";
  pod.address = make_network_v4("10.77.0.5/32");
  pod.mtu = 1450;
  pod.gateway = make_address_v4("169.254.1.1");
  pod.routes = {route("0.0.0.0/0", "169.254.1.1", "eth0"),
                route("169.254.1.1/32", nullptr, "eth0")};
  return pod;
}

Pod plain_pod() {
  Pod pod;
  pod.interface = "eth0";
  pod.address = make_network_v4("10.0.0.5/24");
  pod.mtu = 1500;
  pod.gateway = make_address_v4("10.0.0.1");
  pod.routes = {route("0.0.0.0/0", "10.0.0.1", "eth0"), route("10.0.0.0/24", nullptr, "eth0")};
  return pod;
}

const auto kVmIp = make_address_v4("192.168.254.2");
const auto kVmGw = make_address_v4("192.168.254.1");

}  // namespace

TEST_CASE("net: the default /30 fits a Calico pod and a plain /24 pod", "[pod]") {
  for (const Pod& pod : {calico_pod(), plain_pod()}) {
    const auto subnet = check_vm_subnet(pod, kVmIp, kVmGw);
    REQUIRE(subnet);
    CHECK(subnet->to_string() == "192.168.254.0/30");
  }
}

TEST_CASE("net: VM_IP and VM_GW must be the two hosts of one /30", "[pod]") {
  const std::pair<const char*, const char*> bad[] = {
      {"192.168.254.2", "192.168.254.2"},  // the same address
      {"192.168.254.6", "192.168.254.1"},  // another /30
      {"192.168.254.0", "192.168.254.1"},  // the network address
      {"192.168.254.3", "192.168.254.1"},  // the broadcast address
  };
  for (auto [vm_ip, vm_gw] : bad) {
    const auto subnet =
        check_vm_subnet(calico_pod(), make_address_v4(vm_ip), make_address_v4(vm_gw));
    REQUIRE_FALSE(subnet);
    CHECK(subnet.error().kind == berth::ErrorKind::kInvalidInput);
    CHECK_THAT(subnet.error().message, Catch::Contains(vm_ip) && Catch::Contains(vm_gw));
  }
  CHECK(check_vm_subnet(calico_pod(), kVmGw, kVmIp));  // either host may be the gateway
}

TEST_CASE("net: a /30 overlapping a pod route is refused, naming the route", "[pod]") {
  auto pod = plain_pod();
  pod.routes.push_back(route("192.168.0.0/16", "10.0.0.1", "eth0"));
  const auto subnet = check_vm_subnet(pod, kVmIp, kVmGw);
  REQUIRE_FALSE(subnet);
  CHECK(subnet.error().kind == berth::ErrorKind::kOverlap);
  CHECK(subnet.error().message
        == "the VM subnet 192.168.254.0/30 (VM_IP 192.168.254.2, VM_GW 192.168.254.1) overlaps the "
           "pod route 192.168.0.0/16 via 10.0.0.1 dev eth0; choose VM_IP and VM_GW in a /30 the "
           "pod network does not use");

  pod = calico_pod();
  pod.routes.push_back(route("192.168.254.1/32", nullptr, "net1"));  // inside the /30
  REQUIRE_FALSE(check_vm_subnet(pod, kVmIp, kVmGw));
  CHECK(check_vm_subnet(pod, kVmIp, kVmGw).error().kind == berth::ErrorKind::kOverlap);

  pod = calico_pod();
  pod.routes.push_back(route("192.168.254.4/30", nullptr, "eth0"));  // the neighbouring /30
  CHECK(check_vm_subnet(pod, kVmIp, kVmGw));
}

TEST_CASE("net: a /30 holding the pod address or gateway is refused", "[pod]") {
  auto pod = plain_pod();
  pod.address = make_network_v4("192.168.254.2/32");
  pod.routes.clear();
  auto subnet = check_vm_subnet(pod, kVmIp, kVmGw);
  REQUIRE_FALSE(subnet);
  CHECK(subnet.error().kind == berth::ErrorKind::kOverlap);
  CHECK_THAT(subnet.error().message, Catch::Contains("pod address 192.168.254.2/32 on eth0"));

  pod = calico_pod();
  pod.gateway = make_address_v4("192.168.254.1");
  pod.routes.clear();
  subnet = check_vm_subnet(pod, kVmIp, kVmGw);
  REQUIRE_FALSE(subnet);
  CHECK_THAT(subnet.error().message, Catch::Contains("gateway 192.168.254.1"));
}

TEST_CASE("net: the route of Berth's own bridge, left by a crashed run, does not count", "[pod]") {
  auto pod = calico_pod();
  pod.routes.push_back(route("192.168.254.0/30", nullptr, "br0"));
  CHECK(check_vm_subnet(pod, kVmIp, kVmGw, "br0"));
  CHECK_FALSE(check_vm_subnet(pod, kVmIp, kVmGw, "vmbr"));
}

TEST_CASE("net: routes read as `ip route` prints them", "[pod]") {
  CHECK(to_string(route("0.0.0.0/0", "169.254.1.1", "eth0")) == "default via 169.254.1.1 dev eth0");
  CHECK(to_string(route("169.254.1.1/32", nullptr, "eth0")) == "169.254.1.1/32 dev eth0");
  auto in_table = route("10.0.0.0/8", "10.0.0.1", "");
  in_table.table = 100;
  CHECK(to_string(in_table) == "10.0.0.0/8 via 10.0.0.1 table 100");
}

namespace {

using boost::asio::ip::make_address_v6;
using boost::asio::ip::make_network_v6;

Route6 route6(const char* destination, const char* gateway, const char* interface) {
  Route6 r;
  r.destination = make_network_v6(destination);
  if (gateway)
    r.gateway = make_address_v6(gateway);
  r.interface = interface;
  return r;
}

// Calico dual stack: a /128, the default route via the host veth's fixed link-local address.
Pod calico_pod6() {
  Pod pod = calico_pod();
  pod.ipv6 = PodIpv6{{make_network_v6("fd77::5/128")},
                     make_address_v6("fe80::ecee:eeff:feee:eeee"),
                     {route6("fd77::5/128", nullptr, "eth0"), route6("fe80::/64", nullptr, "eth0"),
                      route6("::/0", "fe80::ecee:eeff:feee:eeee", "eth0")}};
  return pod;
}

std::string prefix_error(const Pod& pod, const char* prefix) {
  auto checked = check_vm_prefix6(pod, make_network_v6(prefix));
  REQUIRE_FALSE(checked.has_value());
  return checked.error().message;
}

}  // namespace

TEST_CASE("net: the pod's own IPv6 addresses: permanent first, no link-local or privacy ones",
          "[pod]") {
  const std::vector<Ipv6AddressInfo> listed{
      {make_network_v6("fe80::a84e:f1ff:fecb:46bc/64"), IFA_F_PERMANENT},
      {make_network_v6("2001:db8:1:0:a84e:f1ff:fecb:46bc/64"), IFA_F_MANAGETEMPADDR},  // SLAAC
      {make_network_v6("2001:db8:1::1234/64"), IFA_F_TEMPORARY},                       // privacy
      {make_network_v6("2001:db8:1::dead/64"), IFA_F_TENTATIVE | IFA_F_PERMANENT},
      {make_network_v6("2001:db8:1::beef/64"), IFA_F_DEPRECATED},
      {make_network_v6("2001:db8:1::5/64"), IFA_F_PERMANENT},  // what the CNI assigned
  };
  const auto usable = usable_pod_ipv6(listed);
  REQUIRE(usable.size() == 2);
  CHECK(usable[0] == make_network_v6("2001:db8:1::5/64"));
  CHECK(usable[1] == make_network_v6("2001:db8:1:0:a84e:f1ff:fecb:46bc/64"));
  CHECK(usable_pod_ipv6({{make_network_v6("fe80::1/64"), IFA_F_PERMANENT}}).empty());
}

TEST_CASE("net: VM_IP6 fits a Calico dual-stack pod, a plain one and an IPv4-only one", "[pod]") {
  CHECK(check_vm_prefix6(calico_pod6(), make_network_v6("fd00:b:e:7::/64")).has_value());
  Pod plain = plain_pod();
  plain.ipv6 = PodIpv6{
      {make_network_v6("2001:db8:1::5/64")},
      make_address_v6("2001:db8:1::1"),
      {route6("2001:db8:1::/64", nullptr, "eth0"), route6("::/0", "2001:db8:1::1", "eth0")}};
  CHECK(check_vm_prefix6(plain, make_network_v6("fd00:b:e:7::/64")).has_value());
  CHECK(check_vm_prefix6(plain_pod(), make_network_v6("fd00:b:e:7::/64")).has_value());
  // Berth's own bridge route, left by a crashed run, does not count.
  Pod crashed = calico_pod6();
  crashed.ipv6->routes.push_back(route6("fd00:b:e:7::/64", nullptr, "br0"));
  CHECK(check_vm_prefix6(crashed, make_network_v6("fd00:b:e:7::/64")).has_value());
}

TEST_CASE("net: VM_IP6 must be a /64 of unicast addresses", "[pod]") {
  for (const char* bad : {"fd00:b:e::/48", "fd00:b:e:7::/80", "fd00:b:e:7::1/64", "fe80::/64",
                          "ff02::/64", "::/64"}) {
    INFO(bad);
    CHECK_THAT(prefix_error(calico_pod6(), bad),
               Catch::StartsWith(std::string("VM_IP6 ") + bad + " is not a /64 prefix"));
  }
}

TEST_CASE("net: VM_IP6 overlapping the pod's address, gateway or a route is refused", "[pod]") {
  CHECK_THAT(prefix_error(calico_pod6(), "fd77::/64"),
             Catch::Contains("overlaps the pod address fd77::5/128 on eth0"));
  Pod routed = calico_pod6();
  routed.ipv6->routes.push_back(route6("fd00:b::/32", "fe80::ecee:eeff:feee:eeee", "eth0"));
  CHECK_THAT(prefix_error(routed, "fd00:b:e:7::/64"),
             Catch::Contains("overlaps the pod route fd00:b::/32 via fe80::ecee:eeff:feee:eeee "
                             "dev eth0"));
  Pod plain = plain_pod();
  plain.ipv6 =
      PodIpv6{{make_network_v6("2001:db8:1::5/128")}, make_address_v6("2001:db8:2::1"), {}};
  CHECK_THAT(prefix_error(plain, "2001:db8:2::/64"),
             Catch::Contains("contains the pod's gateway 2001:db8:2::1"));
}
