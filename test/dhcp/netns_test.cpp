// Root tier: the DHCP server and the DNS forwarder on a real bridge in network namespaces, against
// real clients (busybox udhcpc, ISC dhclient, dig) and a real upstream (dnsmasq). See
// netns_lab.hpp.

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <sstream>

#include "dhcp/dhcp_server.hpp"
#include "dhcp/dns/dns_forwarder.hpp"
#include "netns_lab.hpp"
#include "test/dhcp/vm_config.hpp"

namespace asio = boost::asio;
using namespace berth::dhcp;
using namespace berth::dhcp::test;
using namespace std::chrono_literals;
using asio::ip::make_address_v4;

namespace {

std::shared_ptr<spdlog::logger> test_logger(const std::string& name) {
  auto log =
      std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::debug);
  return log;
}

// True when the last lease event left the VM holding the lease (bound or renewed).
bool holds_lease(const std::vector<LeaseEventKind>& events) {
  return !events.empty()
         && (events.back() == LeaseEventKind::kBound || events.back() == LeaseEventKind::kRenewed);
}

DhcpConfig vm_dhcp(std::chrono::seconds lease) {
  DhcpConfig config = vm_dhcp_config();
  config.lease_time = lease;
  return config;
}

DnsConfig vm_dns(std::vector<std::string> upstreams) {
  DnsConfig config;
  config.listen_address = make_address_v4("192.168.254.1");
  config.interface = "br0";
  config.allowed_clients = asio::ip::make_network_v4("192.168.254.0/30");
  for (const auto& u : upstreams)
    config.upstreams.emplace_back(asio::ip::make_address(u), 53);
  config.attempt_timeout = 1500ms;
  return config;
}

void write_script(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), 0755);
}

std::string last_env(const std::filesystem::path& dir, const std::string& client,
                     const std::string& event) {
  return slurp(dir / (client + "-" + event + ".env"));
}

}  // namespace

TEST_CASE(
    "busybox udhcpc gets the lease with router, DNS, search list and MTU, renews and "
    "releases",
    "[root][dhcp][udhcpc]") {
  NetnsLab lab;
  asio::io_context io;
  std::ostringstream server_log;
  const auto log = test_logger("dhcp");
  log->sinks().push_back(std::make_shared<spdlog::sinks::ostream_sink_st>(server_log));
  DhcpServer server(io, vm_dhcp(8s), log);
  std::vector<LeaseEventKind> lease_events;
  server.on_lease([&](const LeaseEvent& e) { lease_events.push_back(e.kind); });
  const auto started = server.start();
  REQUIRE(started);
  CHECK(server_log.str().find("replies as raw frames") != std::string::npos);

  const auto dir = lab.dir();
  write_script(dir / "udhcpc.sh", "#!/bin/sh\n"
                                  "env > " + dir.string() + "/udhcpc-$1.env\n"
                                  "echo $1 >> " + dir.string() + "/udhcpc.events\n"
                                  "case $1 in\n"
                                  "  bound|renew) ip addr replace $ip/$subnet dev $interface ;;\n"
                                  "  deconfig) ip addr flush dev $interface ;;\n"
                                  "esac\n");
  Child udhcpc = lab.spawn("vm", "udhcpc",
                           {"busybox", "udhcpc", "-f", "-R", "-i", "eth0", "-t", "5", "-T", "1",
                            "-s", (dir / "udhcpc.sh").string()});
  const auto has_event = [&](const std::string& event) {
    return slurp(dir / "udhcpc.events").find(event) != std::string::npos;
  };
  REQUIRE(lab.run_until(
      io, [&] { return has_event("bound"); }, 10s));
  const std::string bound = last_env(dir, "udhcpc", "bound");
  INFO(bound);
  CHECK(env_value(bound, "ip") == "192.168.254.2");
  CHECK(env_value(bound, "subnet") == "255.255.255.252");
  CHECK(env_value(bound, "router") == "192.168.254.1");
  CHECK(env_value(bound, "dns") == "192.168.254.1");
  CHECK(env_value(bound, "serverid") == "192.168.254.1");
  CHECK(env_value(bound, "domain") == "default.svc.cluster.local");
  CHECK(env_value(bound, "search") == "default.svc.cluster.local svc.cluster.local cluster.local");
  CHECK(env_value(bound, "mtu") == "1450");
  CHECK(env_value(bound, "hostname") == "vm-0");
  CHECK(env_value(bound, "lease") == "8");
  CHECK(holds_lease(lease_events));

  // udhcpc renews at T1 but never before 61 s; SIGUSR1 makes it renew now (unicast, RENEWING).
  ::kill(udhcpc.pid, SIGUSR1);
  REQUIRE(lab.run_until(
      io, [&] { return has_event("renew"); }, 10s));
  CHECK(env_value(last_env(dir, "udhcpc", "renew"), "ip") == "192.168.254.2");

  lab.stop(udhcpc);  // -R: a RELEASE on exit
  CHECK(lab.run_until(
      io, [&] { return server.counters().releases == 1; }, 3s));
  CHECK_FALSE(holds_lease(lease_events));
  const DhcpCounters c = server.counters();
  CHECK(c.offers >= 1);
  CHECK(c.acks >= 2);
  CHECK(c.naks == 0);
  CHECK(c.malformed == 0);
  CHECK(c.send_errors == 0);
  REQUIRE(lease_events.size() >= 3);
  CHECK(lease_events.front() == LeaseEventKind::kBound);
  CHECK(lease_events[1] == LeaseEventKind::kRenewed);
  CHECK(lease_events.back() == LeaseEventKind::kReleased);
}

TEST_CASE("ISC dhclient (which checks UDP checksums) gets the lease and renews",
          "[root][dhcp][dhclient]") {
  NetnsLab lab;
  asio::io_context io;
  DhcpServer server(io, vm_dhcp(8s), test_logger("dhcp"));
  REQUIRE(server.start());
  const auto dir = lab.dir();
  write_script(dir / "dhclient.sh", "#!/bin/sh\n"
                                    "env > " + dir.string() + "/dhclient-$reason.env\n"
                                    "echo $reason >> " + dir.string() + "/dhclient.events\n"
                                    "case $reason in\n"
                                    "  PREINIT) ip link set $interface up ;;\n"
                                    "  BOUND|RENEW|REBIND|REBOOT)\n"
                                    "    ip addr replace $new_ip_address/$new_subnet_mask dev "
                                    "$interface ;;\n"
                                    "esac\n");
  std::ofstream(dir / "dhclient.conf")
      << "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,\n"
         "        host-name, domain-search, interface-mtu;\n";
  SECTION("DORA, then a renewal at T1") {
    Child dhclient =
        lab.spawn("vm", "dhclient",
                  {"dhclient", "-d", "-v", "-cf", (dir / "dhclient.conf").string(), "-lf",
                   (dir / "dhclient.leases").string(), "-pf", (dir / "dhclient.pid").string(),
                   "-sf", (dir / "dhclient.sh").string(), "eth0"});
    const auto has_event = [&](const std::string& event) {
      return slurp(dir / "dhclient.events").find(event) != std::string::npos;
    };
    REQUIRE(lab.run_until(
        io, [&] { return has_event("BOUND"); }, 15s));
    const std::string bound = last_env(dir, "dhclient", "BOUND");
    INFO(bound);
    CHECK(env_value(bound, "new_ip_address") == "192.168.254.2");
    CHECK(env_value(bound, "new_subnet_mask") == "255.255.255.252");
    CHECK(env_value(bound, "new_routers") == "192.168.254.1");
    CHECK(env_value(bound, "new_domain_name_servers") == "192.168.254.1");
    CHECK(env_value(bound, "new_domain_name") == "default.svc.cluster.local");
    CHECK(env_value(bound, "new_domain_search")
          == "default.svc.cluster.local. svc.cluster.local. cluster.local.");
    CHECK(env_value(bound, "new_interface_mtu") == "1450");
    CHECK(env_value(bound, "new_host_name") == "vm-0");
    CHECK(env_value(bound, "new_dhcp_lease_time") == "8");
    REQUIRE(lab.run_until(
        io, [&] { return has_event("RENEW"); }, 10s));
    CHECK(env_value(last_env(dir, "dhclient", "RENEW"), "new_ip_address") == "192.168.254.2");
    lab.stop(dhclient);
    const std::string output = slurp(dhclient.output);
    INFO(output);
    CHECK(output.find("bad udp checksums") == std::string::npos);
    CHECK(server.counters().acks >= 2);
  }
  SECTION("INIT-REBOOT with a lease from elsewhere: NAK, then a fresh DORA") {
    std::ofstream(dir / "dhclient.leases") << "lease {\n"
                                              "  interface \"eth0\";\n"
                                              "  fixed-address 10.0.0.9;\n"
                                              "  option subnet-mask 255.255.255.0;\n"
                                              "  option dhcp-server-identifier 10.0.0.1;\n"
                                              "  renew 4 2099/01/01 00:00:00;\n"
                                              "  rebind 4 2099/01/01 00:00:00;\n"
                                              "  expire 4 2099/01/01 00:00:00;\n"
                                              "}\n";
    Child dhclient =
        lab.spawn("vm", "dhclient",
                  {"dhclient", "-d", "-v", "-1", "-cf", (dir / "dhclient.conf").string(), "-lf",
                   (dir / "dhclient.leases").string(), "-pf", (dir / "dhclient.pid").string(),
                   "-sf", (dir / "dhclient.sh").string(), "eth0"});
    REQUIRE(lab.run_until(
        io, [&] { return slurp(dir / "dhclient.events").find("BOUND") != std::string::npos; },
        20s));
    INFO(slurp(dhclient.output));
    CHECK(env_value(last_env(dir, "dhclient", "BOUND"), "new_ip_address") == "192.168.254.2");
    CHECK(server.counters().naks == 1);
  }
}

TEST_CASE("another client on the bridge gets nothing", "[root][dhcp][stranger]") {
  NetnsLab lab;
  asio::io_context io;
  DhcpServer server(io, vm_dhcp(60s), test_logger("dhcp"));
  std::vector<LeaseEventKind> lease_events;
  server.on_lease([&](const LeaseEvent& e) { lease_events.push_back(e.kind); });
  REQUIRE(server.start());
  Child udhcpc = lab.spawn("stranger", "udhcpc",
                           {"busybox", "udhcpc", "-f", "-n", "-q", "-i", "eth0", "-t", "2", "-T",
                            "1", "-s", "/bin/true"});
  CHECK(lab.wait(io, udhcpc, 10s) != 0);  // no lease
  const DhcpCounters c = server.counters();
  CHECK(c.ignored >= 2);
  CHECK(c.offers == 0);
  CHECK(lease_events.empty());
}

TEST_CASE("dig and dig +tcp from the VM resolve through the forwarder", "[root][dns]") {
  NetnsLab lab;
  asio::io_context io;
  lab.start_upstream_dns(io);
  // The VM's address is static here: DNS does not depend on the DHCP tests.
  Child addr = lab.spawn("vm", "addr", {"ip", "addr", "add", "192.168.254.2/30", "dev", "eth0"});
  REQUIRE(lab.wait(io, addr, 5s) == 0);

  auto dig = [&](const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), {"dig", "@192.168.254.1", "+time=4", "+tries=1"});
    Child child = lab.spawn("vm", name, args);
    const int status = lab.wait(io, child, 15s);
    return std::make_pair(status, slurp(child.output));
  };

  SECTION("UDP and TCP, the guest's ID back, the answer from the node's server") {
    DnsForwarder forwarder(io, vm_dns({"10.77.0.1"}), test_logger("dns"));
    REQUIRE(forwarder.start());
    const auto [udp_status, udp] = dig("dig-udp", {"vm.test", "A", "+short"});
    CHECK(udp_status == 0);
    CHECK(udp == "10.1.2.3\n");
    const auto [tcp_status, tcp] = dig("dig-tcp", {"+tcp", "vm.test", "A", "+short"});
    CHECK(tcp_status == 0);
    CHECK(tcp == "10.1.2.3\n");
    const DnsCounters c = forwarder.counters();
    CHECK(c.udp_queries == 1);
    CHECK(c.tcp_queries == 1);
    CHECK(c.answered == 2);
  }
  SECTION("the first upstream is dead: the second answers before dig gives up") {
    DnsForwarder forwarder(io, vm_dns({"10.77.0.9", "10.77.0.1"}), test_logger("dns"));
    REQUIRE(forwarder.start());
    const auto [status, out] = dig("dig-failover", {"vm.test", "A", "+short"});
    CHECK(status == 0);
    CHECK(out == "10.1.2.3\n");
    CHECK(forwarder.counters().upstream_timeouts + forwarder.counters().upstream_errors >= 1);
  }
  SECTION("a truncated UDP answer, then a working TCP retry") {
    DnsForwarder forwarder(io, vm_dns({"10.77.0.1"}), test_logger("dns"));
    REQUIRE(forwarder.start());
    const auto [status_tc, truncated] = dig("dig-tc", {"+noedns", "+ignore", "big.test", "TXT"});
    INFO(truncated);
    CHECK(status_tc == 0);
    CHECK(truncated.find(" tc rd ra; QUERY: 1, ANSWER: 0,") != std::string::npos);
    const auto [status, retried] = dig("dig-retry", {"+noedns", "big.test", "TXT"});
    INFO(retried);
    CHECK(status == 0);
    CHECK(retried.find("Truncated, retrying in TCP mode") != std::string::npos);
    CHECK(retried.find("ANSWER: 8") != std::string::npos);
    CHECK(forwarder.counters().truncated == 2);
  }
  SECTION("not an open resolver: other sources and other addresses get nothing") {
    DnsForwarder forwarder(io, vm_dns({"10.77.0.1"}), test_logger("dns"));
    REQUIRE(forwarder.start());
    Child stranger = lab.spawn("stranger", "dig-stranger",
                               {"dig", "@192.168.254.1", "+time=1", "+tries=1", "vm.test"});
    CHECK(lab.wait(io, stranger, 10s) != 0);
    CHECK(slurp(stranger.output).find("10.1.2.3") == std::string::npos);
    CHECK(forwarder.counters().refused_clients == 1);
    // The pod's uplink address (eth0 in a real pod) has no DNS listener.
    Child node =
        lab.spawn("node", "dig-node", {"dig", "@10.77.0.2", "+time=1", "+tries=1", "vm.test"});
    CHECK(lab.wait(io, node, 10s) != 0);
    CHECK(forwarder.counters().udp_queries == 1);
  }
}
