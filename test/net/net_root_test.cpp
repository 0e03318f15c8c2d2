// The net module against the real kernel, in network namespaces (root). Three namespaces per
// test, named bnet-<pid>-<role>:
//
//   node ── cali0 ═══ eth0 ── pod ── br0 (+ tap0) ── vmport ═══ eth0 ── vm
//
// "node" is the Kubernetes node as a cluster client sees it; "pod" is the pod's namespace where
// Berth runs (Calico style: 10.77.0.5/32, default via 169.254.1.1 answered by proxy ARP, MTU
// 1450; or plain: 10.77.0.5/24 via 10.77.0.1, MTU 1500); "vm" stands in for the guest: a veth
// enslaved to br0 next to tap0, 192.168.254.2/30 via 192.168.254.1. The node's and the VM's links
// have MTU 1500 on purpose: a client and a guest that do not know the pod's smaller MTU, which
// only the MSS clamp saves.

#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <regex>

#include "net/network.hpp"
#include "net/nftables.hpp"
#include "net/pod.hpp"
#include "netns.hpp"
#include "sample.hpp"

using namespace berth::net;
using namespace berth::net::test;
using berth::Error;
using berth::Result;
using boost::asio::ip::make_address_v4;

namespace {

enum class PodStyle { kCalico, kPlain };
enum class Vnc { kOn, kOff };
enum class Stack { kIpv4, kDual };

const address_v4 kPodIp = make_address_v4("10.77.0.5");
const address_v4 kVmIp = make_address_v4("192.168.254.2");
const address_v4 kVmGw = make_address_v4("192.168.254.1");
const address_v4 kLoopback = make_address_v4("127.0.0.1");
const address_v4 kAny = make_address_v4("0.0.0.0");
// Dual stack: the pod's fd77::5 (Calico /128, plain /64), the VM's EUI-64 address of its MAC
// 52:54:00:12:34:56 in fd00:b:e:7::/64, the gateway fd00:b:e:7::1 on br0.
const auto kPodIp6 = boost::asio::ip::make_address_v6("fd77::5");
const auto kVmIp6 = boost::asio::ip::make_address_v6("fd00:b:e:7:5054:ff:fe12:3456");
const auto kVmGw6 = boost::asio::ip::make_address_v6("fd00:b:e:7::1");
const auto kAny6 = boost::asio::ip::address_v6::any();
const auto kLoopback6 = boost::asio::ip::address_v6::loopback();
constexpr std::uint16_t kVnc = 5900;
constexpr std::uint16_t kHealth = 9250;
constexpr std::uint16_t kControl = 9251;

// "ok", or the error as "<code>: <message>", for test output.
template <class T>
std::string outcome(const Result<T>& result) {
  if (result)
    return "ok";
  return std::string(to_string(result.error().kind)) + ": " + result.error().message;
}

std::string prefix() {
  return "bnet-" + std::to_string(::getpid()) + "-";
}

// The three namespaces and their wiring; all of it goes away with the object.
struct Topology {
  PodStyle style;
  Netns node{prefix() + "node"};
  Netns pod{prefix() + "pod"};
  Netns vm{prefix() + "vm"};
  address_v4 node_ip;
  unsigned mtu;
  std::string resolv_conf = "/tmp/" + prefix() + "resolv.conf";
  Stack stack;
  boost::asio::ip::address_v6 node_ip6;

  explicit Topology(PodStyle pod_style, Stack ip_stack = Stack::kIpv4)
      : style(pod_style),
        node_ip(make_address_v4(pod_style == PodStyle::kCalico ? "10.77.9.1" : "10.77.0.1")),
        mtu(pod_style == PodStyle::kCalico ? 1450 : 1500),
        stack(ip_stack),
        node_ip6(boost::asio::ip::make_address_v6(pod_style == PodStyle::kCalico ? "fd77:9::1"
                                                                                 : "fd77::1")) {
    const std::string n = "ip -n " + node.name() + " ";
    const std::string p = "ip -n " + pod.name() + " ";
    const std::string v = "ip -n " + vm.name() + " ";
    if (stack == Stack::kDual)  // no address of the test's own waits for duplicate detection
      for (const auto* ns : {&node, &vm})
        must(
            ns->exec("sysctl -qw net.ipv6.conf.all.accept_dad=0 "
                     "net.ipv6.conf.default.accept_dad=0"));
    must(n + "link add cali0 type veth peer name eth0 netns " + pod.name());
    if (stack == Stack::kDual) {
      must(pod.exec("sysctl -qw net.ipv6.conf.eth0.accept_dad=0"));
      if (style == PodStyle::kCalico)
        must(n + "link set cali0 address ee:ee:ee:ee:ee:ee");
    }
    must(n + "link set cali0 mtu 1500 up");
    must(p + "link set eth0 mtu " + std::to_string(mtu) + " up");
    if (style == PodStyle::kCalico) {
      // The node: its address on lo, a default route out of an "uplink" (so proxy ARP answers
      // for 169.254.1.1, which is routed elsewhere), a /32 route per pod, proxy ARP on cali0.
      must(n + "addr add 10.77.9.1/32 dev lo");
      must(n + "link add uplink type veth peer name uplink-peer");
      must(n + "link set uplink up");
      must(n + "link set uplink-peer up");
      must(n + "route add default dev uplink");
      must(n + "route add 10.77.0.5/32 dev cali0 src 10.77.9.1");
      must(
          node.exec("sysctl -qw net.ipv4.conf.cali0.proxy_arp=1 net.ipv4.conf.cali0.forwarding=1 "
                    "net.ipv4.neigh.cali0.proxy_delay=0"));
      must(p + "addr add 10.77.0.5/32 dev eth0");
      must(p + "route add 169.254.1.1 dev eth0 scope link");
      must(p + "route add default via 169.254.1.1 dev eth0");
    } else {
      must(n + "addr add 10.77.0.1/24 dev cali0");
      must(p + "addr add 10.77.0.5/24 dev eth0");
      must(p + "route add default via 10.77.0.1 dev eth0");
    }
    must(v + "link add eth0 type veth peer name vmport netns " + pod.name());
    if (stack == Stack::kDual) {
      add_ipv6();
      must(pod.exec("sysctl -qw net.ipv6.conf.vmport.accept_dad=0"));
      must(v + "link set eth0 address 52:54:00:12:34:56");
    }
    must(v + "link set eth0 mtu 1500 up");
    must(v + "addr add 192.168.254.2/30 dev eth0");
    must(v + "route add default via 192.168.254.1");
    must(p + "link set vmport mtu 1500 up");
    if (stack == Stack::kDual) {
      must(v + "-6 addr add fd00:b:e:7:5054:ff:fe12:3456/64 dev eth0 nodad");
      must(v + "-6 route add default via fd00:b:e:7::1");
    }
    std::ofstream(resolv_conf) << "search default.svc.cluster.local svc.cluster.local "
                                  "cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
                               << (stack == Stack::kDual ? "nameserver fd77:53::10\n" : "");
  }
  ~Topology() { std::remove(resolv_conf.c_str()); }

  // IPv6 beside IPv4. Calico: the node's veth has MAC ee:ee:ee:ee:ee:ee, hence the link-local
  // fe80::ecee:eeff:feee:eeee the pod's default route points at, and a /128 route per pod.
  void add_ipv6() const {
    const std::string n = "ip -n " + node.name() + " ";
    const std::string p = "ip -n " + pod.name() + " ";
    if (style == PodStyle::kCalico) {
      must(n + "-6 addr add fd77:9::1/128 dev lo");
      must(n + "-6 route add fd77::5/128 dev cali0");
      must(n + "-6 route add default dev uplink");
      must(p + "-6 addr add fd77::5/128 dev eth0 nodad");
      must(p + "-6 route add default via fe80::ecee:eeff:feee:eeee dev eth0");
    } else {
      must(n + "-6 addr add fd77::1/64 dev cali0 nodad");
      must(p + "-6 addr add fd77::5/64 dev eth0 nodad");
      must(p + "-6 route add default via fd77::1 dev eth0");
    }
  }

  // Plugs the stand-in VM into the bridge, as QEMU's tap would be.
  void attach_vm() const { must("ip -n " + pod.name() + " link set vmport master br0"); }

  Result<Pod> try_discover() const {
    return pod.run([&] { return discover_pod({"eth0", resolv_conf}); });
  }

  Pod discover() const {
    auto discovered = try_discover();
    INFO(outcome(discovered));
    REQUIRE(discovered.has_value());
    return *discovered;
  }

  Error discover_error() const {
    auto discovered = try_discover();
    REQUIRE_FALSE(discovered.has_value());
    return discovered.error();
  }

  NetworkSpec spec(const Pod& discovered, Vnc vnc) const {
    std::vector<ReservedPort> reserved;
    if (vnc == Vnc::kOn)
      reserved.push_back({kVnc, "vnc"});
    reserved.push_back({kHealth, "health"});
    return network_spec(discovered, kVmIp, kVmGw, reserved, {{kControl, "control"}});
  }

  // `nft list table ip berth` in the pod with counters zeroed; "" when there is no such table.
  std::string listed_table() const {
    const auto listed = shell(pod.exec("nft list table ip berth"));
    if (listed.status != 0)
      return "";
    return std::regex_replace(listed.output, std::regex("packets [0-9]+ bytes [0-9]+"),
                              "packets 0 bytes 0");
  }

  bool pod_has_link(const std::string& name) const {
    return shell("ip -n " + pod.name() + " link show " + name).status == 0;
  }

  std::string pod_sysctl(const std::string& key) const {
    auto value = must(pod.exec("sysctl -n " + key));
    return value.substr(0, value.find('\n'));
  }

  // Nothing of Berth's left in the pod, and eth0's forwarding back to `forwarding`.
  void check_clean(const std::string& forwarding = "0") const {
    CHECK(listed_table().empty());
    CHECK_FALSE(pod_has_link("br0"));
    CHECK_FALSE(pod_has_link("tap0"));
    CHECK(pod_has_link("vmport"));  // the stand-in VM's port survives, unplugged
    CHECK(pod_sysctl("net.ipv4.conf.eth0.forwarding") == forwarding);
  }
};

PodNetwork set_up(const Topology& topology, const NetworkSpec& spec) {
  auto network = topology.pod.run([&] { return PodNetwork::setup(spec); });
  INFO(outcome(network));
  REQUIRE(network.has_value());
  topology.attach_vm();
  return std::move(*network);
}

void tear_down(const Topology& topology, PodNetwork& network, const std::string& forwarding = "0") {
  auto done = topology.pod.run([&] { return network.teardown(); });
  INFO(outcome(done));
  CHECK(done.has_value());
  topology.check_clean(forwarding);
  auto again = topology.pod.run([&] { return network.teardown(); });
  INFO(outcome(again));
  CHECK(again.has_value());  // idempotent
}

// Runs `body` (returning the answer as a string) in a forked child and returns what it answered.
// The child ends with _exit, so nothing of the test's state runs twice.
template <class Body>
std::string answer_of_child(Body body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    const std::string answer = body();
    (void)!::write(fds[1], answer.data(), answer.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string answer;
  char buffer[1024];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
    answer.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  return answer;
}

// "KIND MESSAGE" of a failed Result, as a child answers it.
template <class R>
std::string answer_of(const R& result) {
  return std::to_string(static_cast<int>(result.error().kind)) + " " + result.error().message;
}

// Runs `f` (returning Result<T>) in a child process inside `ns` whose capabilities lack
// CAP_NET_ADMIN, and returns its error, or nothing when it succeeded.
template <class F>
std::optional<Error> without_net_admin(const Netns& ns, F f) {
  const std::string answer = answer_of_child([&] {
    std::string said = "ok";
    try {
      __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
      ::syscall(SYS_capget, &header, data);
      auto& word = data[CAP_TO_INDEX(CAP_NET_ADMIN)];
      word.effective &= ~CAP_TO_MASK(CAP_NET_ADMIN);
      word.permitted &= ~CAP_TO_MASK(CAP_NET_ADMIN);
      ns.run([&] {
        if (::syscall(SYS_capset, &header, data) != 0)
          said = "capset failed";
        else if (auto result = f(); !result)
          said = answer_of(result);
        return 0;
      });
    } catch (...) {
      said = "exception";
    }
    return said;
  });
  INFO("child said: " << answer);
  REQUIRE(answer != "exception");
  REQUIRE(answer != "capset failed");
  if (answer == "ok")
    return std::nullopt;
  const auto space = answer.find(' ');
  return berth::Error{static_cast<berth::ErrorKind>(std::stoi(answer.substr(0, space))),
                      answer.substr(space + 1)};
}

// A connection from `from` to `to` is accepted by `listener` (and by nothing else); returns the
// accepted side.
Accepted expect_accepted(const Netns& from, Endpoint to, const Fd& listener) {
  INFO("TCP from " << from.name() << " to " << to_string(to));
  auto connected = tcp_connect(from, to);
  INFO("connect: " << std::strerror(connected.error));
  REQUIRE(connected.error == 0);
  auto accepted = tcp_accept(listener);
  REQUIRE(accepted);
  return std::move(*accepted);
}

// A datagram from port `from_port` in `from` to `to` reaches a socket bound to bind:to.port in
// `in`; returns both sockets and what arrived.
struct Exchange {
  Fd server;
  Fd client;
  Datagram received;
};
Exchange expect_datagram(const Netns& from, std::uint16_t from_port, const Netns& in, Address bind,
                         Endpoint to) {
  INFO("UDP from " << from.name() << " to " << to_string(to));
  const Address any = to.address.is_v6() ? Address(kAny6) : Address(kAny);
  Exchange exchange{udp_bind(in, bind, to.port), udp_bind(from, any, from_port), {}};
  udp_send(exchange.client, to, "hello");
  auto received = udp_receive(exchange.server);
  REQUIRE(received);
  CHECK(received->payload == "hello");
  exchange.received = *received;
  return exchange;
}

// The addresses of one family a check uses: the VM's listening address, the pod's, the node's.
struct Addresses {
  Address vm_any;
  Address pod;
  Address node;
};

// Large transfers both ways through the MSS clamp: node and VM both think the path is 1500
// bytes; the clamp makes them agree on the pod's (less `headers`: IP and TCP).
void check_large_transfers(const Topology& t, const Addresses& a, int headers, std::size_t bytes) {
  const auto port = random_port();
  auto vm_listener = tcp_listen(t.vm, a.vm_any, port);
  auto client = tcp_connect(t.node, {a.pod, port});
  REQUIRE(client.error == 0);
  auto server = tcp_accept(vm_listener);
  REQUIRE(server);
  CHECK(tcp_mss(server->socket) <= static_cast<int>(t.mtu) - headers);
  CHECK(tcp_mss(client.socket) <= static_cast<int>(t.mtu) - headers);
  CHECK(transfer(client.socket, server->socket, bytes));

  auto node_listener = tcp_listen(t.node, Address(a.vm_any), port);
  auto vm_client = tcp_connect(t.vm, {a.node, port});
  REQUIRE(vm_client.error == 0);
  auto node_server = tcp_accept(node_listener);
  REQUIRE(node_server);
  CHECK(transfer(vm_client.socket, node_server->socket, bytes));
}

// The control port stays with the pod for local clients (at `local`), from outside it is the VM's.
void check_control_port(const Topology& t, const Address& local, const Addresses& a) {
  auto pod_control = tcp_listen(t.pod, local, kControl);
  auto vm_control = tcp_listen(t.vm, a.vm_any, kControl);
  expect_accepted(t.pod, {local, kControl}, pod_control);
  CHECK_FALSE(tcp_accept(vm_control, 200ms));
  expect_accepted(t.node, {a.pod, kControl}, vm_control);
}

void check_vm_answers_on_the_pod_ip(const Topology& t, Vnc vnc) {
  {  // TCP to any port of the pod IP reaches the VM, from the client's address
    const auto port = random_port();
    auto vm_listener = tcp_listen(t.vm, kAny, port);
    auto accepted = expect_accepted(t.node, {kPodIp, port}, vm_listener);
    CHECK(accepted.peer.address == t.node_ip);  // DNAT keeps the client's address
  }
  {  // so does UDP, and the VM's answer comes back from the pod IP
    const auto port = random_port();
    auto vm_socket = udp_bind(t.vm, kAny, port);
    auto node_socket = udp_bind(t.node, kAny, 0);
    udp_send(node_socket, {kPodIp, port}, "hello VM");
    auto request = udp_receive(vm_socket);
    REQUIRE(request);
    CHECK(request->payload == "hello VM");
    CHECK(request->from.address == t.node_ip);
    udp_send(vm_socket, request->from, "hello node");
    auto reply = udp_receive(node_socket);
    REQUIRE(reply);
    CHECK(reply->payload == "hello node");
    CHECK(reply->from == Endpoint{kPodIp, port});
  }
  {  // and ICMP echo, at the full pod MTU with DF, both ways
    // The pod ignores echo requests, so an answer can only come from the VM, and a full-size
    // DF packet crosses eth0 and br0 both ways.
    must(t.pod.exec("sysctl -qw net.ipv4.icmp_echo_ignore_all=1"));
    CHECK(ping(t.node, kPodIp, t.mtu) == kPodIp);
    must(t.vm.exec("sysctl -qw net.ipv4.icmp_echo_ignore_all=1"));
    CHECK_FALSE(ping(t.node, kPodIp, 100, 500ms));  // proof: with the VM silent, nobody answers
    must(t.vm.exec("sysctl -qw net.ipv4.icmp_echo_ignore_all=0"));
    must(t.pod.exec("sysctl -qw net.ipv4.icmp_echo_ignore_all=0"));
    CHECK(ping(t.vm, t.node_ip, t.mtu) == t.node_ip);  // and from the VM out, full size
  }
  {  // TCP 5900 stays with the pod unless NO_VNC
    auto vm_listener = tcp_listen(t.vm, kAny, kVnc);
    if (vnc == Vnc::kOn) {
      auto connected = tcp_connect(t.node, {kPodIp, kVnc});
      CHECK(connected.error == ECONNREFUSED);  // the pod's own 5900 (nothing listens here)
      CHECK_FALSE(tcp_accept(vm_listener, 200ms));
    } else {
      expect_accepted(t.node, {kPodIp, kVnc}, vm_listener);
    }
  }
  {  // the health port is always the pod's
    auto pod_listener = tcp_listen(t.pod, kPodIp, kHealth);
    auto vm_listener = tcp_listen(t.vm, kAny, kHealth);
    expect_accepted(t.node, {kPodIp, kHealth}, pod_listener);
    CHECK_FALSE(tcp_accept(vm_listener, 200ms));
  }
  {  // the VM reaches the node as the pod IP
    const auto port = random_port();
    auto node_listener = tcp_listen(t.node, kAny, port);
    auto accepted = expect_accepted(t.vm, {t.node_ip, port}, node_listener);
    CHECK(accepted.peer.address == kPodIp);  // SNAT: the VM leaves as the pod IP
  }
  {  // inside the pod: 127.0.0.1 and the pod IP reach the VM (kubectl port-forward)
    const auto port = random_port();
    auto vm_listener = tcp_listen(t.vm, kAny, port);
    auto by_loopback = expect_accepted(t.pod, {kLoopback, port}, vm_listener);
    CHECK(by_loopback.peer.address == kVmGw);  // the loopback path is SNATed to VM_GW
    auto by_pod_ip = expect_accepted(t.pod, {kPodIp, port}, vm_listener);
    CHECK(by_pod_ip.peer.address == kPodIp);

    const auto udp_port = random_port();
    auto vm_socket = udp_bind(t.vm, kAny, udp_port);
    auto pod_socket = udp_bind(t.pod, kLoopback, 0);
    udp_send(pod_socket, {kLoopback, udp_port}, "port-forward");
    auto request = udp_receive(vm_socket);
    REQUIRE(request);
    udp_send(vm_socket, request->from, "back");
    auto reply = udp_receive(pod_socket);
    REQUIRE(reply);
    CHECK(reply->from == Endpoint{kLoopback, udp_port});

    check_control_port(t, kLoopback, {kAny, kPodIp, t.node_ip});
  }
  check_large_transfers(t, {kAny, kPodIp, t.node_ip}, 40, 4 << 20);
}

void check_pod(PodStyle style) {
  Topology t(style);
  const Pod discovered = t.discover();
  CHECK(discovered.address->address() == kPodIp);
  CHECK(discovered.address->prefix_length() == (style == PodStyle::kCalico ? 32 : 24));
  CHECK(discovered.mtu == t.mtu);
  CHECK(discovered.gateway
        == make_address_v4(style == PodStyle::kCalico ? "169.254.1.1" : "10.77.0.1"));
  CHECK(discovered.resolv_conf.nameservers.size() == 1);
  CHECK(discovered.resolv_conf.ndots == 5);
  REQUIRE(check_vm_subnet(discovered, kVmIp, kVmGw).has_value());

  auto network = set_up(t, t.spec(discovered, Vnc::kOn));
  CHECK(t.listed_table() == golden("berth-calico.nft"));  // the snapshot, read back from the kernel
  CHECK(t.pod_sysctl("net.ipv4.conf.eth0.forwarding") == "1");
  CHECK(t.pod_sysctl("net.ipv4.conf.br0.route_localnet") == "1");
  const auto tap = must("ip -n " + t.pod.name() + " -d link show tap0");
  CHECK_THAT(tap, Catch::Contains("mtu " + std::to_string(t.mtu)) && Catch::Contains("master br0")
                      && Catch::Contains("tun type tap") && Catch::Contains("persist on"));
  // The bridge keeps the pod MTU although the stand-in VM's port has 1500.
  CHECK_THAT(must("ip -n " + t.pod.name() + " link show br0"),
             Catch::Contains("mtu " + std::to_string(t.mtu) + " "));
  check_vm_answers_on_the_pod_ip(t, Vnc::kOn);
  tear_down(t, network);

  // NO_VNC: 5900 is the VM's like any port.
  auto no_vnc = set_up(t, t.spec(discovered, Vnc::kOff));
  CHECK(t.listed_table().find("5900") == std::string::npos);
  check_vm_answers_on_the_pod_ip(t, Vnc::kOff);
  tear_down(t, no_vnc);
}

}  // namespace

TEST_CASE("net: a Calico-style pod: the VM answers on the pod IP", "[root][calico]") {
  check_pod(PodStyle::kCalico);
}

TEST_CASE("net: a plain /24 pod: the VM answers on the pod IP", "[root][plain]") {
  check_pod(PodStyle::kPlain);
}

TEST_CASE("net: errors say what is wrong and leave nothing behind", "[root][errors]") {
  Topology t(PodStyle::kCalico);
  const auto spec = t.spec(t.discover(), Vnc::kOn);

  SECTION("no pod interface") {
    auto discovered = t.pod.run([&] { return discover_pod({"eth9", t.resolv_conf}); });
    REQUIRE_FALSE(discovered.has_value());
    CHECK(discovered.error().kind == berth::ErrorKind::kNoInterface);
    CHECK_THAT(discovered.error().message,
               Catch::StartsWith("pod interface eth9 does not exist")
                   && Catch::Contains("(interfaces: lo, eth0, vmport)"));
    auto other = spec;
    other.pod_interface = "eth9";
    auto network = t.pod.run([&] { return PodNetwork::setup(other); });
    REQUIRE_FALSE(network.has_value());
    CHECK(network.error().kind == berth::ErrorKind::kNoInterface);
    t.check_clean();
  }
  SECTION("no address of either family on the pod interface") {
    must("ip -n " + t.pod.name() + " addr flush dev eth0");
    auto discovered = t.discover_error();
    CHECK(discovered.kind == berth::ErrorKind::kNoIpv4);
    CHECK_THAT(discovered.message,
               Catch::StartsWith("pod interface eth0 has neither an IPv4 address nor a usable IPv6 "
                                 "one"));
  }
  SECTION("the VM /30 overlaps a pod route") {
    must("ip -n " + t.pod.name() + " route add 192.168.254.0/24 via 169.254.1.1 dev eth0");
    auto subnet = check_vm_subnet(t.discover(), kVmIp, kVmGw);
    REQUIRE_FALSE(subnet.has_value());
    CHECK(subnet.error().kind == berth::ErrorKind::kOverlap);
    CHECK_THAT(subnet.error().message,
               Catch::Contains("overlaps the pod route 192.168.254.0/24 via 169.254.1.1 dev eth0"));
  }
  SECTION("no NET_ADMIN") {
    auto setup = without_net_admin(t.pod, [&] { return PodNetwork::setup(spec); });
    REQUIRE(setup);
    CHECK(setup->kind == berth::ErrorKind::kPermission);
    CHECK_THAT(setup->message, Catch::Contains("NET_ADMIN"));
    // The kernel's own refusal is reported the same way (no capability pre-check on this path).
    auto commit =
        without_net_admin(t.pod, [&] { return commit_table(build_nat_table(nat_spec(spec))); });
    REQUIRE(commit);
    CHECK(commit->kind == berth::ErrorKind::kPermission);
    CHECK_THAT(commit->message, Catch::StartsWith("nftables: committing table ip berth: "
                                                  "Operation not permitted; berth needs the "
                                                  "NET_ADMIN capability"));
    // Discovery needs no privilege.
    CHECK_FALSE(without_net_admin(t.pod, [&] { return discover_pod({"eth0", t.resolv_conf}); }));
    t.check_clean();
  }
  SECTION("a name Berth needs is taken by another kind of interface") {
    must("ip -n " + t.pod.name() + " link add tap0 type veth peer name tap0-peer");
    auto network = t.pod.run([&] { return PodNetwork::setup(spec); });
    REQUIRE_FALSE(network.has_value());
    CHECK(network.error().kind == berth::ErrorKind::kConflict);
    CHECK_THAT(network.error().message, Catch::StartsWith("interface tap0 exists and is a veth"));
    CHECK(t.pod_has_link("tap0"));  // not Berth's: left alone
    CHECK_FALSE(t.pod_has_link("br0"));
    CHECK(t.listed_table().empty());
  }
  SECTION("a failure half-way through the plumbing undoes the first half") {
    auto too_big = spec;
    too_big.mtu = 65535;  // the bridge takes it, the tap (at most 65521) does not
    auto network = t.pod.run([&] { return PodNetwork::setup(too_big); });
    REQUIRE_FALSE(network.has_value());
    CHECK_THAT(network.error().message, Catch::StartsWith("enslaving tap0 to br0"));
    t.check_clean();
  }
  SECTION("a failed setup after a crash removes the crashed run's leftovers too") {
    auto crashed = set_up(t, spec);  // never torn down
    auto too_big = spec;
    too_big.mtu = 65535;
    auto network = t.pod.run([&] { return PodNetwork::setup(too_big); });
    REQUIRE_FALSE(network.has_value());
    t.check_clean("1");  // forwarding as the crashed run left it
  }
  SECTION("a refused nftables batch undoes the plumbing") {
    auto bad_table = spec;
    bad_table.table = std::string(300, 'x');  // longer than the kernel's 256
    auto network = t.pod.run([&] { return PodNetwork::setup(bad_table); });
    REQUIRE_FALSE(network.has_value());
    CHECK_THAT(network.error().message, Catch::StartsWith("nftables: committing table ip xxx"));
    t.check_clean();
    CHECK(must(t.pod.exec("nft list tables")).empty());
  }
}

TEST_CASE("net: setup after a crashed run replaces what the crash left", "[root][crash]") {
  Topology t(PodStyle::kCalico);
  auto crashed = set_up(t, t.spec(t.discover(), Vnc::kOn));  // never torn down

  // The restarted container finds its pod again; the old bridge's route is no overlap.
  const Pod again = t.discover();
  CHECK(std::any_of(again.routes.begin(), again.routes.end(),
                    [](const Route& route) { return route.interface == "br0"; }));
  REQUIRE(check_vm_subnet(again, kVmIp, kVmGw).has_value());
  auto network = set_up(t, t.spec(again, Vnc::kOn));
  CHECK(t.listed_table() == golden("berth-calico.nft"));  // one table, no rule twice

  const auto port = random_port();
  auto vm_listener = tcp_listen(t.vm, kAny, port);
  expect_accepted(t.node, {kPodIp, port}, vm_listener);
  // The crashed run had turned eth0's forwarding on; that is what the second run found.
  tear_down(t, network, "1");
}

TEST_CASE("net: the VM's address announced after its lease replaces a failed ARP entry",
          "[root][neighbor]") {
  Topology t(PodStyle::kCalico);
  auto network = set_up(t, t.spec(t.discover(), Vnc::kOn));
  // A VM that never answers ARP (as a guest without its address yet): the bridge's ARP for it
  // fails, and from then on only the announced entry can reach it. The VM knows the gateway's
  // MAC itself, so its replies do not depend on ARP either.
  const auto br0_mac = must(t.pod.exec("cat /sys/class/net/br0/address")).substr(0, 17);
  must(t.vm.exec("ip link set eth0 arp off"));
  must(t.vm.exec("ip neigh replace 192.168.254.1 lladdr " + br0_mac + " dev eth0 nud permanent"));
  shell(t.pod.exec("ping -c 1 -W 1 192.168.254.2"));
  const auto before = shell(t.pod.exec("ip neigh show 192.168.254.2 dev br0")).output;
  CHECK_THAT(before, Catch::Contains("FAILED") || Catch::Contains("INCOMPLETE"));

  const auto mac_text = must(t.vm.exec("cat /sys/class/net/eth0/address"));
  std::array<std::uint8_t, 6> mac{};
  unsigned parts[6];
  REQUIRE(std::sscanf(mac_text.c_str(), "%x:%x:%x:%x:%x:%x", &parts[0], &parts[1], &parts[2],
                      &parts[3], &parts[4], &parts[5])
          == 6);
  for (std::size_t i = 0; i < 6; ++i)
    mac[i] = static_cast<std::uint8_t>(parts[i]);
  auto told = t.pod.run([&] { return announce_neighbor("br0", kVmIp, mac); });
  INFO(outcome(told));
  REQUIRE(told.has_value());
  const auto after = must(t.pod.exec("ip neigh show 192.168.254.2 dev br0"));
  CHECK_THAT(after, Catch::Contains(mac_text.substr(0, 17)) && Catch::Contains("REACHABLE"));
  // And the first connection through the NAT goes straight to the VM.
  const auto port = random_port();
  auto vm_listener = tcp_listen(t.vm, kAny, port);
  expect_accepted(t.node, {kPodIp, port}, vm_listener);

  auto missing = t.pod.run([&] { return announce_neighbor("nosuch0", kVmIp, mac); });
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().kind == berth::ErrorKind::kNoInterface);
  tear_down(t, network);
}

TEST_CASE("net: the guest reaches only DHCP, DNS and ICMP of the pod itself", "[root][guest]") {
  Topology t(PodStyle::kCalico);
  auto network = set_up(t, t.spec(t.discover(), Vnc::kOn));

  // The pod's own sockets, on every address (a non-loopback control listener included): from the
  // guest, every one of them is refused at once, on VM_GW and on the pod IP alike.
  const auto other = random_port();
  for (const std::uint16_t port : {kHealth, kVnc, kControl, other}) {
    auto pod_listener = tcp_listen(t.pod, kAny, port);
    for (const address_v4& address : {kVmGw, kPodIp}) {
      INFO("TCP from the guest to the pod's own " << to_string(Endpoint{address, port}));
      auto connected = tcp_connect(t.vm, {address, port});
      CHECK(connected.error == ECONNREFUSED);
      CHECK_FALSE(tcp_accept(pod_listener, 100ms));
    }
  }
  {  // UDP to any other port of the pod is refused too
    auto pod_socket = udp_bind(t.pod, kAny, other);
    auto vm_socket = udp_bind(t.vm, kAny, 0);
    const Endpoint to{kVmGw, other};
    udp_send(vm_socket, to, "not for the guest");
    CHECK_FALSE(udp_receive(pod_socket, 300ms));
  }

  // DHCP: the server's port takes the guest's datagrams.
  expect_datagram(t.vm, 68, t.pod, kAny, {kVmGw, 67});
  {  // DNS on VM_GW:53, UDP (with the answer back) and TCP
    const Endpoint to{kVmGw, 53};
    auto dns = expect_datagram(t.vm, 0, t.pod, kVmGw, to);
    udp_send(dns.server, dns.received.from, "answer");
    auto answer = udp_receive(dns.client);
    REQUIRE(answer);
    CHECK(answer->payload == "answer");
    auto tcp_server = tcp_listen(t.pod, kVmGw, 53);
    expect_accepted(t.vm, to, tcp_server);
  }
  CHECK(ping(t.vm, kVmGw, 100) == kVmGw);            // ping of the gateway
  CHECK(ping(t.vm, kVmGw, t.mtu) == kVmGw);          // at the full MTU with DF
  CHECK(ping(t.vm, t.node_ip, t.mtu) == t.node_ip);  // the guest's own traffic still leaves
  {  // and the pod's own connections to the guest still get their answers
    const auto port = random_port();
    auto vm_listener = tcp_listen(t.vm, kAny, port);
    auto by_loopback = expect_accepted(t.pod, {kLoopback, port}, vm_listener);
    CHECK(by_loopback.peer.address == kVmGw);
    auto by_gw = expect_accepted(t.pod, {kVmIp, port}, vm_listener);
    CHECK(by_gw.peer.address == kVmGw);
  }
  tear_down(t, network);
}

namespace {

// `ping` (iputils) of `to` from `ns`: one echo request of `bytes` ICMP payload; true when answered.
bool ping6(const Netns& ns, const boost::asio::ip::address_v6& to, std::size_t bytes = 56) {
  return shell(ns.exec("ping -6 -n -c 1 -W 2 -s " + std::to_string(bytes) + " " + to.to_string()))
             .status
         == 0;
}

// Waits (up to 5 s) until no IPv6 address on br0 is tentative: the kernel's own link-local waits
// out duplicate address detection, and until then the pod cannot solicit the VM's neighbours.
void wait_for_bridge_ipv6(const Topology& t) {
  for (int i = 0; i < 50; ++i) {
    if (shell("ip -n " + t.pod.name() + " -6 addr show dev br0 tentative").output.empty())
      return;
    ::usleep(100 * 1000);
  }
  FAIL("br0's IPv6 addresses stayed tentative");
}

NetworkSpec dual_spec(const Topology& t, const Pod& discovered) {
  auto spec = t.spec(discovered, Vnc::kOn);
  REQUIRE(discovered.ipv6);
  spec.ipv6 = NatSpec6{discovered.ipv6->address().address(), kVmIp6, kVmGw6};
  return spec;
}

void check_vm_answers_on_the_pod_ipv6(const Topology& t) {
  {  // TCP to any port of the pod's IPv6 address reaches the VM's EUI-64 address
    const auto port = random_port();
    auto vm_listener = tcp_listen(t.vm, kVmIp6, port);
    auto accepted = expect_accepted(t.node, {kPodIp6, port}, vm_listener);
    CHECK(accepted.peer.address == Address(t.node_ip6));  // DNAT keeps the client's address
  }
  {  // so does UDP, and the VM's answer comes back from the pod's address
    const auto port = random_port();
    auto vm_socket = udp_bind(t.vm, kVmIp6, port);
    auto node_socket = udp_bind(t.node, kAny6, 0);
    udp_send(node_socket, {kPodIp6, port}, "hello VM");
    auto request = udp_receive(vm_socket);
    REQUIRE(request);
    CHECK(request->from.address == Address(t.node_ip6));
    udp_send(vm_socket, request->from, "hello node");
    auto reply = udp_receive(node_socket);
    REQUIRE(reply);
    CHECK(reply->from == Endpoint{kPodIp6, port});
  }
  {  // and ICMPv6 echo: with the pod silent the VM answers; with the VM silent nobody does
    must(t.pod.exec("sysctl -qw net.ipv6.icmp.echo_ignore_all=1"));
    CHECK(ping6(t.node, kPodIp6, t.mtu - 48));  // the full pod MTU
    must(t.vm.exec("sysctl -qw net.ipv6.icmp.echo_ignore_all=1"));
    CHECK_FALSE(ping6(t.node, kPodIp6));
    must(t.vm.exec("sysctl -qw net.ipv6.icmp.echo_ignore_all=0"));
    must(t.pod.exec("sysctl -qw net.ipv6.icmp.echo_ignore_all=0"));
    CHECK(ping6(t.vm, t.node_ip6));
  }
  {  // the reserved ports stay with the pod
    auto pod_listener = tcp_listen(t.pod, kPodIp6, kHealth);
    auto vm_listener = tcp_listen(t.vm, kAny6, kHealth);
    expect_accepted(t.node, {kPodIp6, kHealth}, pod_listener);
    CHECK_FALSE(tcp_accept(vm_listener, 200ms));
    auto vm_vnc = tcp_listen(t.vm, kAny6, kVnc);
    CHECK(tcp_connect(t.node, {kPodIp6, kVnc}).error == ECONNREFUSED);
    CHECK_FALSE(tcp_accept(vm_vnc, 200ms));
  }
  {  // the VM reaches the node as the pod's address, from any address of its /64
    const auto port = random_port();
    auto node_listener = tcp_listen(t.node, kAny6, port);
    auto accepted = expect_accepted(t.vm, {t.node_ip6, port}, node_listener);
    CHECK(accepted.peer.address == Address(kPodIp6));
    must("ip -n " + t.vm.name() + " -6 addr add fd00:b:e:7:1234:5678:9abc:def0/64 dev eth0 nodad");
    auto node_socket = udp_bind(t.node, kAny6, port);
    auto privacy =
        udp_bind(t.vm, boost::asio::ip::make_address_v6("fd00:b:e:7:1234:5678:9abc:def0"), 0);
    udp_send(privacy, {t.node_ip6, port}, "from a privacy address");
    auto received = udp_receive(node_socket);
    REQUIRE(received);
    CHECK(received->from.address == Address(kPodIp6));
  }
  {  // inside the pod: the pod's address reaches the VM; [::1] stays the pod's (no route back)
    const auto port = random_port();
    auto vm_listener = tcp_listen(t.vm, kAny6, port);
    auto by_pod_ip = expect_accepted(t.pod, {kPodIp6, port}, vm_listener);
    CHECK(by_pod_ip.peer.address == Address(kPodIp6));
    auto pod_listener = tcp_listen(t.pod, kLoopback6, port);
    expect_accepted(t.pod, {kLoopback6, port}, pod_listener);
    CHECK_FALSE(tcp_accept(vm_listener, 200ms));
    check_control_port(t, kPodIp6, {kAny6, kPodIp6, t.node_ip6});
  }
  check_large_transfers(t, {kAny6, kPodIp6, t.node_ip6}, 60, 1 << 20);
}

// A router beyond the node with a 1280-byte link: its Packet Too Big, sent to the pod's address,
// reaches the guest (conntrack relates it to the guest's flow and undoes the NAT inside it).
void check_packet_too_big_reaches_the_guest(const Topology& t) {
  const std::string n = "ip -n " + t.node.name() + " ";
  must(n + "link add far type veth peer name far-peer");
  must(n + "link set far mtu 1280 up");
  must(n + "link set far-peer mtu 1280 up");
  must(n + "-6 route add fd77:ff::/64 dev far");
  must(t.node.exec("sysctl -qw net.ipv6.conf.all.forwarding=1"));
  const auto far = boost::asio::ip::make_address_v6("fd77:ff::1");
  auto vm_socket = udp_bind(t.vm, kAny6, 0);
  udp_send(vm_socket, {far, 9}, std::string(1300, 'x'));  // 1348 bytes: fits 1450, not 1280
  std::string route;
  for (int i = 0; i < 20 && route.find("mtu 1280") == std::string::npos; ++i) {
    ::usleep(100 * 1000);
    route = must("ip -n " + t.vm.name() + " -6 route get fd77:ff::1");
  }
  INFO("the guest's route: " << route);
  CHECK_THAT(route, Catch::Contains("mtu 1280"));
}

// What the guest may send to the pod itself over IPv6.
void check_guest_side_ipv6(const Topology& t) {
  const auto other = random_port();
  for (const std::uint16_t port : {kHealth, kControl, other}) {
    auto pod_listener = tcp_listen(t.pod, kAny6, port);
    for (const auto& address : {kVmGw6, kPodIp6}) {
      INFO("TCP from the guest to the pod's own " << to_string(Endpoint{address, port}));
      CHECK(tcp_connect(t.vm, {address, port}).error == ECONNREFUSED);
      CHECK_FALSE(tcp_accept(pod_listener, 100ms));
    }
  }
  {  // UDP to another port is refused
    auto pod_socket = udp_bind(t.pod, kAny6, other);
    auto vm_socket = udp_bind(t.vm, kAny6, 0);
    udp_send(vm_socket, {kVmGw6, other}, "not for the guest");
    CHECK_FALSE(udp_receive(pod_socket, 300ms));
  }
  expect_datagram(t.vm, 546, t.pod, kAny6, {kVmGw6, 547});  // DHCPv6
  {
    const Endpoint to{kVmGw6, 53};
    auto dns = expect_datagram(t.vm, 0, t.pod, kVmGw6, to);
    udp_send(dns.server, dns.received.from, "answer");
    auto answer = udp_receive(dns.client);
    REQUIRE(answer);
    auto tcp_server = tcp_listen(t.pod, kVmGw6, 53);
    expect_accepted(t.vm, to, tcp_server);
  }
  CHECK(ping6(t.vm, kVmGw6));
  CHECK(ping6(t.vm, kVmGw6, t.mtu - 48));
}

void check_dual_stack_pod(PodStyle style) {
  Topology t(style, Stack::kDual);
  const Pod discovered = t.discover();
  REQUIRE(discovered.ipv6);
  CHECK(discovered.ipv6->addresses
        == std::vector{boost::asio::ip::make_network_v6(
            style == PodStyle::kCalico ? "fd77::5/128" : "fd77::5/64")});
  CHECK(discovered.ipv6->gateway
        == boost::asio::ip::make_address_v6(style == PodStyle::kCalico ? "fe80::ecee:eeff:feee:eeee"
                                                                       : "fd77::1"));
  REQUIRE(discovered.resolv_conf.nameservers.size() == 2);
  CHECK(discovered.resolv_conf.nameservers[1] == boost::asio::ip::make_address("fd77:53::10"));
  const auto vm_prefix = boost::asio::ip::make_network_v6("fd00:b:e:7::/64");
  CHECK(check_vm_prefix6(discovered, vm_prefix).has_value());
  CHECK_FALSE(check_vm_prefix6(discovered, boost::asio::ip::make_network_v6("fd77::/64")));
  auto network = set_up(t, dual_spec(t, discovered));
  wait_for_bridge_ipv6(t);
  CHECK(t.listed_table() == golden("berth-calico.nft"));  // IPv4 exactly as before
  const auto listed6 =
      std::regex_replace(shell(t.pod.exec("nft list table ip6 berth")).output,
                         std::regex("packets [0-9]+ bytes [0-9]+"), "packets 0 bytes 0");
  CHECK(listed6 == golden("berth-calico6.nft"));
  CHECK(t.pod_sysctl("net.ipv6.conf.all.forwarding") == "1");
  CHECK(t.pod_sysctl("net.ipv6.conf.eth0.accept_ra") == "2");
  check_vm_answers_on_the_pod_ipv6(t);
  check_vm_answers_on_the_pod_ip(t, Vnc::kOn);  // IPv4 beside it, unchanged
  check_guest_side_ipv6(t);
  check_packet_too_big_reaches_the_guest(t);
  tear_down(t, network);
  CHECK(shell(t.pod.exec("nft list table ip6 berth")).status != 0);
  CHECK(t.pod_sysctl("net.ipv6.conf.all.forwarding") == "0");
  CHECK(t.pod_sysctl("net.ipv6.conf.eth0.accept_ra") == "1");
}

}  // namespace

TEST_CASE("net: a Calico-style dual-stack pod: the VM answers on the pod's IPv6 address too",
          "[root][calico6]") {
  check_dual_stack_pod(PodStyle::kCalico);
}

TEST_CASE("net: a plain dual-stack pod: the VM answers on the pod's IPv6 address too",
          "[root][plain6]") {
  check_dual_stack_pod(PodStyle::kPlain);
}

TEST_CASE("net: a read-only /proc/sys: the IPv6 setup says which sysctl to set in the pod spec",
          "[root][sysctl6]") {
  Topology t(PodStyle::kCalico, Stack::kDual);
  const auto spec = dual_spec(t, t.discover());
  // A child process with its own mount namespace where /proc/sys is read-only, as in a pod.
  const std::string answer = answer_of_child([&]() -> std::string {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)
        || ::mount("/proc/sys", "/proc/sys", nullptr, MS_BIND, nullptr)
        || ::mount(nullptr, "/proc/sys", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr))
      return std::string("mount: ") + std::strerror(errno);
    auto network = t.pod.run([&] { return PodNetwork::setup(spec); });
    return network ? std::string("ok") : answer_of(network);
  });
  INFO("child said: " << answer);
  CHECK(answer.starts_with(std::to_string(static_cast<int>(berth::ErrorKind::kPermission)) + " "));
  CHECK_THAT(answer, Catch::Contains("setting net.ipv6.conf.eth0.accept_ra=2 for the VM's IPv6: "
                                     "Read-only file system: /proc/sys is read-only")
                         && Catch::Contains("securityContext.sysctls"));
  t.check_clean();  // the failed setup removed what it had made
  CHECK(t.pod_sysctl("net.ipv6.conf.all.forwarding") == "0");
}
