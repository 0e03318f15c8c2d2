// End to end: busybox's DHCPv6 client against berth's stateful DHCPv6 server. The dhcpv6 guest
// variant (test/guest/build-guest-dhcpv6.sh: the built-in guest plus a udhcpc6 built from Debian's
// busybox source) turns the kernel's SLAAC off on eth0 and runs udhcpc6 (dhcpv6_userdata.sh) in a
// Calico-style dual-stack pod; it must end with exactly the EUI-64 address berth hands out (as a
// /128: no SLAAC /64 beside it) and berth's forwarder as its DNS server, and the node must reach
// it over TCP at the pod's IPv6 address.

#include <algorithm>
#include <boost/asio/ip/address_v6.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "test/support/pod_cluster.hpp"

using namespace berth::test;

namespace {

constexpr const char* kVmGw6 = "fd62:6572:7468::1";  // VM_IP6's default prefix, ::1

// udhcpc6 writes addresses uncompressed (fd62:6572:7468:0000:...): they are compared as addresses.
std::string canonical6(const std::string& text) {
  boost::system::error_code error;
  const auto address = boost::asio::ip::make_address_v6(text, error);
  return error ? "not an IPv6 address: " + text : address.to_string();
}

// The canonical IPv6 addresses in the lines of `text` that start with `prefix`, one or more each,
// separated by spaces.
std::vector<std::string> addresses_after(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(prefix))
      continue;
    std::istringstream words(line.substr(prefix.size()));
    for (std::string word; words >> word;)
      out.push_back(canonical6(word));
  }
  return out;
}

bool holds(const std::vector<std::string>& all, const std::string& one) {
  return std::find(all.begin(), all.end(), one) != all.end();
}

std::string userdata() {
  return slurp(std::string(BERTH_SOURCE_DIR) + "/test/e2e/dhcpv6_userdata.sh");
}

struct Cluster : PodCluster {
  Cluster()
      : PodCluster([] {
          PodClusterOptions opts(test_guest_dhcpv6(), userdata());
          opts.style = "calico6";
          return opts;
        }()) {}

  // GET http://[fd77::5]/<path> from the node.
  std::string guest_http6(const std::string& path) const {
    return in_ns(net.node(), "curl -g -s -m 10 http://[fd77::5]" + path);
  }
};

}  // namespace

TEST_CASE("e2e: DHCPv6: busybox udhcpc6 without SLAAC takes berth's address and DNS server",
          "[e2e][ipv6][dhcpv6]") {
  Cluster cluster;
  // BERTH_TEST_PCAP_DIR: the pod namespace's IPv6 traffic (bridge and tap included) as a pcap.
  std::unique_ptr<Background> capture;
  if (const char* pcap_dir = std::getenv("BERTH_TEST_PCAP_DIR"))
    capture = std::make_unique<Background>(
        cluster.net.pod(), std::vector<std::string>{"tcpdump", "-i", "any", "-U", "-w",
                                                    std::string(pcap_dir) + "/udhcpc6-"
                                                        + std::to_string(::time(nullptr)) + ".pcap",
                                                    "ip6"});
  // Debug: berth logs every DHCPv6 message it saw and what it answered.
  auto berth = cluster.start({"NO_VNC=1", "BERTH_VNC_PASSWORD_FILE=", "BERTH_LOG_LEVEL=debug"});
  const auto address = berth->wait_log("IPv6: dual-stack: the VM is (\\S+) in VM_IP6", 30s);
  REQUIRE(address);
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  // Published over IPv4 (the guest's IPv6 is what is under test); then over IPv6 from the node.
  const auto over4 = [&](const std::string& path) {
    return in_ns(cluster.net.node(), "curl -s -m 5 http://10.77.0.5" + path);
  };
  std::string done;
  for (int i = 0; i < 120 && done != "done"; ++i) {
    done = over4("/dhcpv6-done");
    if (done != "done")
      std::this_thread::sleep_for(1s);
  }
  REQUIRE(done == "done");
  // What eth0 held when udhcpc6 started, and what udhcpc6 said: the first things to read when
  // the lease below is missing.
  INFO("eth0 before udhcpc6:\n" << over4("/before"));
  INFO("udhcpc6 (exit " << over4("/udhcpc6.rc") << "):\n" << over4("/udhcpc6.log"));
  // udhcpc6's REQUEST, as berth saw it, and the lease as the guest's script applied it.
  const auto leased = berth->wait_log("the guest took its IPv6 address (\\S+) \\(DHCPv6\\)", 10s);
  REQUIRE(leased);
  CHECK(*leased == *address);
  const auto console = berth->wait_console("berth-guest: dhcpv6 lease (\\S+) dns", 10s);
  REQUIRE(console);
  CHECK(canonical6(*console) == *address);
  // SLAAC's address was gone before udhcpc6 ran; udhcpc6 took a lease and quit (-q) with 0.
  CHECK(over4("/flushed").empty());
  CHECK(over4("/udhcpc6.rc") == "0");
  // Exactly berth's EUI-64 address, as a /128 from DHCPv6 and no SLAAC /64.
  const std::string ip6 = over4("/ip6");
  INFO(ip6);
  CHECK_THAT(ip6, Catch::Contains(*address + "/128"));
  CHECK_THAT(ip6, !Catch::Contains(*address + "/64"));
  CHECK_THAT(ip6, !Catch::Contains("dynamic"));  // no address from a router advertisement
  // The DNS server (option 23): berth's forwarder, written to resolv.conf and answering AAAA.
  const std::string lease = over4("/lease");
  INFO(lease);
  CHECK(holds(addresses_after(lease, "dns="), kVmGw6));
  const std::string resolv = over4("/resolv");
  INFO(resolv);
  CHECK(holds(addresses_after(resolv, "nameserver "), kVmGw6));
  CHECK_THAT(over4("/aaaa6"), Catch::Contains(PodCluster::kNodeIp6));
  // TCP from the node to the pod's IPv6 address reaches the guest (NAT66 to the leased address).
  CHECK(cluster.guest_http6("/dhcpv6-done") == "done");
  CHECK(cluster.guest_http6("/ip6") == ip6);
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(60s) == 0);
}
