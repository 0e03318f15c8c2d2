// Root tier: the IPv6 server (router advertisements and DHCPv6) on the lab's bridge, against the
// Linux kernel's own SLAAC and router discovery and ISC dhclient -6 in the VM namespace.

#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "dhcp/v6/ipv6_server.hpp"
#include "netns_lab.hpp"

namespace asio = boost::asio;
using namespace berth::dhcp;
using namespace berth::dhcp::v6;
using namespace berth::dhcp::test;
using namespace std::chrono_literals;
using asio::ip::make_address_v6;

namespace {

const berth::MacAddress kVmMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

Ipv6ServerConfig lab_config() {
  Ipv6ServerConfig config;
  Dhcpv6Config& dhcp = config.dhcp;
  dhcp.interface = "br0";
  dhcp.server_duid = {0x00, 0x03, 0x00, 0x01, 0x02, 0xb3, 0x00, 0x00, 0x00, 0x01};
  dhcp.prefix = make_address_v6("fd00:b3::");
  dhcp.prefix_length = 64;
  dhcp.client_address = eui64_address(dhcp.prefix, kVmMac);
  dhcp.dns_servers = {make_address_v6("fd00:b3::1")};
  dhcp.search_domains = {"default.svc.cluster.local", "cluster.local"};
  RouterAdvertisement& advert = config.advert;
  advert.managed = true;
  advert.other = true;
  advert.router_lifetime = 1800;
  advert.mtu = 1450;
  advert.prefixes.push_back({dhcp.prefix, 64, true, true, 7200, 3600});
  advert.dns_servers = dhcp.dns_servers;
  advert.dns_lifetime = 1800;
  advert.search_domains = dhcp.search_domains;
  advert.search_lifetime = 1800;
  config.initial_interval = 2s;
  return config;
}

// The output of `argv` run in the VM namespace (each run its own output file: the lab appends).
std::string in_vm(NetnsLab& lab, asio::io_context& io, const std::string& name,
                  std::vector<std::string> argv) {
  static int runs = 0;
  Child child = lab.spawn("vm", name + "-" + std::to_string(++runs), std::move(argv));
  lab.wait(io, child, 10s);
  return slurp(child.output);
}

}  // namespace

TEST_CASE("the kernel's SLAAC and dhclient -6 end on the same address, with DNS and the MTU",
          "[root][dhcp][ipv6]") {
  NetnsLab lab;
  asio::io_context io;
  const std::filesystem::path dir = lab.dir();
  // The pod side: the gateway's ULA on the bridge (its link-local comes with the link).
  Child add =
      lab.spawn("pod", "addr", {"ip", "addr", "add", "fd00:b3::1/64", "dev", "br0", "nodad"});
  REQUIRE(lab.wait(io, add, 10s) == 0);
  // The VM side without duplicate address detection: the lab changed eth0's MAC while it was up,
  // and on a loaded machine its link-local address stayed tentative (dhclient -6 cannot bind to
  // one) for over 30 s once. A flap makes the addresses afresh from the VM's MAC.
  for (std::vector<std::string> step :
       {std::vector<std::string>{"sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"},
        {"ip", "link", "set", "eth0", "down"},
        {"ip", "link", "set", "eth0", "up"}}) {
    Child child = lab.spawn("vm", "prepare", step);
    REQUIRE(lab.wait(io, child, 10s) == 0);
  }
  auto log =
      std::make_shared<spdlog::logger>("ipv6", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::debug);
  const Ipv6ServerConfig config = lab_config();
  const std::string address = config.dhcp.client_address.to_string();
  Ipv6Server server(io, config, log);
  std::vector<std::string> leases;
  server.on_lease([&](const asio::ip::address_v6& a) { leases.push_back(a.to_string()); });
  REQUIRE(server.start());

  // Router discovery and SLAAC by the kernel: the EUI-64 address, a default route through the
  // bridge's link-local address, the advertised MTU.
  std::string addresses, routes;
  const bool configured = lab.run_until(
      io,
      [&] {
        addresses = in_vm(lab, io, "addr", {"ip", "-6", "addr", "show", "dev", "eth0"});
        routes = in_vm(lab, io, "route", {"ip", "-6", "route", "show", "default"});
        return addresses.find(address + "/64") != std::string::npos
               && addresses.find("tentative") == std::string::npos
               && routes.find("via fe80::") != std::string::npos;
      },
      30s);
  INFO(addresses);
  INFO(routes);
  REQUIRE(configured);
  CHECK(routes.find("mtu 1450") != std::string::npos);
  CHECK(in_vm(lab, io, "mtu", {"sysctl", "-n", "net.ipv6.conf.eth0.mtu"}) == "1450\n");
  CHECK(server.counters().adverts >= 1);

  // dhclient -6: SOLICIT, ADVERTISE, REQUEST, REPLY with the same address and the DNS options.
  const std::string script = (dir / "dhclient6.sh").string();
  std::ofstream(script) << "#!/bin/sh\nenv > " << (dir / "dhclient6-$reason.env").string() << "\n";
  ::chmod(script.c_str(), 0755);
  Child dhclient =
      lab.spawn("vm", "dhclient6",
                {"dhclient", "-6", "-d", "-1", "-v", "-lf", (dir / "dhclient6.leases").string(),
                 "-pf", (dir / "dhclient6.pid").string(), "-sf", script, "eth0"});
  const bool bound_in_time = lab.run_until(
      io,
      [&] {  // the whole environment written, not just the file made
        return slurp(dir / "dhclient6-BOUND6.env").find("new_dhcp6_domain_search=")
               != std::string::npos;
      },
      30s);
  INFO(slurp(dhclient.output));
  REQUIRE(bound_in_time);
  const std::string bound = slurp(dir / "dhclient6-BOUND6.env");
  INFO(bound);
  CHECK(env_value(bound, "new_ip6_address") == address);
  CHECK(env_value(bound, "new_dhcp6_name_servers") == "fd00:b3::1");
  CHECK(env_value(bound, "new_dhcp6_domain_search") == "default.svc.cluster.local. cluster.local.");
  CHECK(leases == std::vector{address});
  CHECK(server.counters().advertises == 1);
  CHECK(server.counters().leases == 1);
  CHECK(server.counters().malformed == 0);
  lab.stop(dhclient);

  // Leaving: an advertisement with router lifetime 0 takes the default route away at once.
  const auto adverts = server.counters().adverts;
  server.stop();
  CHECK(server.counters().adverts == adverts + 1);
  CHECK(lab.run_until(
      io,
      [&] {
        routes = in_vm(lab, io, "route", {"ip", "-6", "route", "show", "default"});
        return routes.find("via fe80::") == std::string::npos;
      },
      10s));
}
