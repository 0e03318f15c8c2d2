// End to end over IPv6: berth in a Calico-style dual-stack pod namespace and in an IPv6-only one
// boots the built-in guest, whose kernel configures IPv6 by itself (SLAAC from berth's router
// advertisements: no guest configuration); from the node, TCP, UDP and ICMPv6 to the pod's IPv6
// address reach the guest, a 1 MiB transfer crosses the 1450-byte MTU, the guest's connections
// arrive from the pod's IPv6 address, and its AAAA lookups go through berth's forwarder.

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "test/support/pod_cluster.hpp"

using namespace berth::test;

namespace {

constexpr const char* kPodIp6 = "fd77::5";
constexpr const char* kVmGw6 = "fd62:6572:7468::1";  // VM_IP6's default prefix, ::1

// The guest publishes on its httpd (/www, busybox httpd on [::]:80): a 1 MiB file and its MD5,
// then, once the kernel has a global address and a default route, its IPv6 addresses and routes,
// a connection to the node's port 9999, AAAA lookups through berth's forwarder over IPv6 and
// over IPv4. A second inetd answers UDP echo (port 7) over IPv6. Not a file the host runs.
const char* kUserdata = R"(#!/bin/sh
head -c 1048576 /dev/urandom > /www/big
md5sum /www/big | cut -d " " -f 1 > /www/big.md5
printf "echo\tdgram\tudp6\twait\troot\tinternal\n" > /tmp/inetd6.conf
/usr/sbin/inetutils-inetd --pidfile=/tmp/inetd6.pid /tmp/inetd6.conf
(
  for i in $(seq 1 120); do
    ip -6 addr show dev eth0 scope global > /tmp/addr
    if grep -q inet6 /tmp/addr && ! grep -q tentative /tmp/addr \
      && ip -6 route show default | grep -q via; then break; fi
    sleep 1
  done
  { ip -6 addr show dev eth0; ip -6 route show; } > /www/ip6
  for i in $(seq 1 30); do echo from-guest | nc fd77:9::1 9999 && break; sleep 1; done
  for i in $(seq 1 30); do
    nslookup -type=aaaa e2e.berth.test fd62:6572:7468::1 > /www/aaaa6 2>&1 && break
    sleep 1
  done
  nslookup -type=aaaa e2e.berth.test 192.168.254.1 > /www/aaaa4 2>&1
  echo done > /www/ipv6-done
) > /dev/null 2>&1 &
)";

struct Cluster6 : PodCluster {
  std::unique_ptr<Background> peers;
  explicit Cluster6(const std::string& style)
      : PodCluster([&] {
          PodClusterOptions opts(test_guest(), kUserdata);
          opts.style = style;
          return opts;
        }()) {
    peers = std::make_unique<Background>(net.node(), peer_logger(dir.path / "peers"));
  }

  // GET http://[fd77::5]/<path> from the node.
  std::string guest_http6(const std::string& path) const {
    return in_ns(net.node(), std::string("curl -g -s -m 10 http://[") + kPodIp6 + "]" + path);
  }

  // Waits (up to `seconds`) for the guest to publish ipv6-done.
  bool wait_guest_done(int seconds) const {
    for (int i = 0; i < seconds; ++i) {
      if (guest_http6("/ipv6-done") == "done")
        return true;
      std::this_thread::sleep_for(1s);
    }
    return false;
  }
};

// Everything both pods check once the guest is up; `address` is the VM's address berth logged.
void check_guest_over_ipv6(Cluster6& cluster, BerthProcess& berth, const std::string& address) {
  REQUIRE(cluster.wait_guest_done(120));
  // The kernel's SLAAC made the EUI-64 address berth chose (the NAT66 target), with the
  // default route through the bridge's fe80::1.
  const std::string ip6 = cluster.guest_http6("/ip6");
  INFO(ip6);
  CHECK_THAT(ip6, Catch::Contains(address + "/64"));
  CHECK_THAT(ip6, Catch::Contains("default via fe80::1 dev eth0"));
  // TCP: the guest's httpd, reached at the pod's IPv6 address; 1 MiB across the 1450-byte MTU.
  CHECK(cluster.guest_http6("/ipv6-done") == "done");
  const std::string md5 = in_ns(
      cluster.net.node(), "curl -g -s -m 60 http://[fd77::5]/big | md5sum | cut -d \" \" -f 1");
  CHECK(md5.size() == 32);
  CHECK(md5 == cluster.guest_http6("/big.md5"));
  // UDP (echo, inetd on udp6) and ICMPv6 at the full MTU.
  CHECK(in_ns(cluster.net.node(),
              "python3 -c \"import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
              "s.settimeout(3); s.sendto(b\\\"udp6-ping\\\", (\\\"fd77::5\\\", 7)); "
              "print(s.recv(64).decode())\"")
        == "udp6-ping");
  CHECK(in_ns(cluster.net.node(), "ping -6 -c 1 -W 3 -M do -s 1402 fd77::5 >/dev/null && echo ok")
        == "ok");
  // The guest's own connection to the node arrives from the pod's IPv6 address.
  CHECK(slurp(cluster.dir.path / "peers") == std::string(kPodIp6) + "\n");
  // AAAA through berth's forwarder, over IPv6 and over IPv4.
  const std::string aaaa6 = cluster.guest_http6("/aaaa6");
  INFO(aaaa6);
  CHECK_THAT(aaaa6, Catch::Contains("fd77:9::1"));
  CHECK_THAT(aaaa6, Catch::Contains(kVmGw6));
  CHECK_THAT(cluster.guest_http6("/aaaa4"), Catch::Contains("fd77:9::1"));
  // The kubelet's probe over IPv6.
  CHECK(in_ns(cluster.net.node(),
              "curl -g -s -o /dev/null -w %{http_code} http://[fd77::5]:9250/readyz")
        == "200");
  // Leaving: the guest powers off, berth exits 0 and its ip6 table is gone with the namespace's
  // bridge.
  berth.signal(SIGTERM);
  CHECK(berth.wait_exit(60s) == 0);
  CHECK(in_ns(cluster.net.pod(), "nft list table ip6 berth >/dev/null 2>&1 || echo gone")
        == "gone");
}

}  // namespace

TEST_CASE("e2e: IPv6: a dual-stack Calico pod: the guest is reached and leaves on the pod's IPv6",
          "[e2e][ipv6]") {
  Cluster6 cluster("calico6");
  auto berth = cluster.start({"NO_VNC=1", "BERTH_VNC_PASSWORD_FILE="});
  const auto address = berth->wait_log("IPv6: dual-stack: the VM is (\\S+) in VM_IP6", 30s);
  REQUIRE(address);
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  // IPv4 beside it, unchanged.
  CHECK(berth->wait_log("the guest took its lease 192\\.168\\.254\\.2", 10s));
  CHECK(in_ns(cluster.net.node(), "curl -s -m 5 http://10.77.0.5/big.md5").size() == 32);
  check_guest_over_ipv6(cluster, *berth, *address);
}

TEST_CASE("e2e: IPv6: an IPv6-only pod: the guest is reached on IPv6, its IPv4 stays inside",
          "[e2e][ipv6]") {
  Cluster6 cluster("ipv6only");
  // The node serves the image over IPv4 only; this pod has none, so the image is a local file.
  auto berth = cluster.start(
      {"NO_VNC=1", "BERTH_VNC_PASSWORD_FILE=", "IMG_SOURCE=" + test_guest(), "IMG_CHECKSUM="});
  const auto address = berth->wait_log("IPv6: IPv6-only: the VM is (\\S+) in VM_IP6", 30s);
  REQUIRE(address);
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  // The guest still gets its private IPv4 (DHCP, DNS through berth), but nothing beyond.
  CHECK(berth->wait_log("the guest took its lease 192\\.168\\.254\\.2", 10s));
  CHECK(berth->wait_log("NAT none \\(IPv6-only pod\\)", 0ms));
  check_guest_over_ipv6(cluster, *berth, *address);
}
