// Start-up failures say what was wrong, with the value (unprivileged: nothing binds here).

#include <spdlog/sinks/null_sink.h>

#include <catch2/catch.hpp>

#include "dhcp/dhcp_server.hpp"
#include "dhcp/dns/dns_forwarder.hpp"
#include "test_util.hpp"

namespace asio = boost::asio;
using namespace berth::dhcp;

namespace {

std::shared_ptr<spdlog::logger> quiet() {
  return std::make_shared<spdlog::logger>("quiet", std::make_shared<spdlog::sinks::null_sink_mt>());
}

DhcpConfig config_on(const std::string& interface) {
  DhcpConfig config;
  config.interface = interface;
  config.server_address = asio::ip::make_address_v4("192.168.254.1");
  config.client_address = asio::ip::make_address_v4("192.168.254.2");
  config.client_mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  config.router = config.server_address;
  return config;
}

}  // namespace

TEST_CASE("dhcp: the server does not start without its bridge, or with a bad configuration",
          "[dhcp][server]") {
  asio::io_context io;
  DhcpServer missing(io, config_on("bdhcp-none0"), quiet());
  const auto no_bridge = missing.start();
  REQUIRE_FALSE(no_bridge.has_value());
  CHECK(no_bridge.error().message
        == "DHCP: interface bdhcp-none0 not found; the bridge must exist before the DHCP server "
           "starts");

  DhcpConfig bad = config_on("lo");
  bad.prefix_length = 31;
  DhcpServer invalid(io, bad, quiet());
  const auto started = invalid.start();
  REQUIRE_FALSE(started.has_value());
  CHECK(started.error().message == "DHCP: prefix length 31 is not in 1..30");
  CHECK(invalid.counters().received == 0);
}

TEST_CASE("dhcp/dns: the forwarder does not start on an address this host does not have",
          "[dns][server]") {
  asio::io_context io;
  DnsConfig config;
  config.listen_address = asio::ip::make_address_v4("198.51.100.254");  // TEST-NET-2
  config.listen_port = 5353;
  config.allowed_clients = asio::ip::make_network_v4("198.51.100.252/30");
  config.upstreams = {asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 53)};
  DnsForwarder forwarder(io, config, quiet());
  const auto started = forwarder.start();
  REQUIRE_FALSE(started.has_value());
  CHECK(started.error().message.starts_with("DNS: cannot bind UDP 198.51.100.254:5353: "));
  CHECK(started.error().cause == std::errc::address_not_available);
}
