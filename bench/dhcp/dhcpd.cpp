// A stand-alone DHCP server and DNS forwarder for benchmarks and manual tests: the dhcp module's
// two servers on one io_context, as the supervisor runs them. On SIGTERM/SIGINT prints counters
// and peak RSS, then exits.
//
//   berth-dhcpd --interface br0 --server 192.168.254.1 --client 192.168.254.2
//               --mac 52:54:00:12:34:56 [--upstream 10.96.0.10 ...] [--lease 3600]
//               [--no-dhcp] [--no-dns] [--debug]

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "dhcp/dhcp_server.hpp"
#include "dhcp/dns/dns_forwarder.hpp"

namespace asio = boost::asio;
using namespace berth::dhcp;

namespace {

std::string peak_rss() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmHWM:"))
      return line.substr(6);
  return "?";
}

int usage(const char* problem) {
  std::fprintf(stderr, "berth-dhcpd: %s\n", problem);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  DhcpConfig dhcp;
  dhcp.interface = "br0";
  dhcp.server_address = asio::ip::make_address_v4("192.168.254.1");
  dhcp.client_address = asio::ip::make_address_v4("192.168.254.2");
  dhcp.client_mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  dhcp.search_domains = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local"};
  dhcp.hostname = "vm-0";
  std::vector<std::string> upstreams;
  bool run_dhcp = true;
  bool run_dns = true;
  bool debug = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--interface" && has_value) {
      dhcp.interface = argv[++i];
    } else if (arg == "--server" && has_value) {
      dhcp.server_address = asio::ip::make_address_v4(argv[++i]);
    } else if (arg == "--client" && has_value) {
      dhcp.client_address = asio::ip::make_address_v4(argv[++i]);
    } else if (arg == "--mac" && has_value) {
      unsigned m[6];
      if (std::sscanf(argv[++i], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5])
          != 6)
        return usage("--mac: expected aa:bb:cc:dd:ee:ff");
      for (int k = 0; k < 6; ++k)
        dhcp.client_mac[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(m[k]);
    } else if (arg == "--upstream" && has_value) {
      upstreams.emplace_back(argv[++i]);
    } else if (arg == "--lease" && has_value) {
      dhcp.lease_time = std::chrono::seconds(std::stoi(argv[++i]));
    } else if (arg == "--no-dhcp") {
      run_dhcp = false;
    } else if (arg == "--no-dns") {
      run_dns = false;
    } else if (arg == "--debug") {
      debug = true;
    } else {
      return usage(("unknown argument " + arg).c_str());
    }
  }
  dhcp.router = dhcp.server_address;
  dhcp.dns_servers = {dhcp.server_address};

  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto log = std::make_shared<spdlog::logger>("dhcpd", sink);
  log->set_level(debug ? spdlog::level::debug : spdlog::level::info);

  asio::io_context io;
  DhcpServer server(io, dhcp, log);
  DnsConfig dns;
  dns.listen_address = dhcp.server_address;
  dns.interface = dhcp.interface;
  dns.allowed_clients = asio::ip::network_v4(dhcp.server_address, dhcp.prefix_length).canonical();
  for (const auto& upstream : upstreams)
    dns.upstreams.emplace_back(asio::ip::make_address(upstream), 53);
  DnsForwarder forwarder(io, dns, log);

  if (run_dhcp) {
    if (auto started = server.start(); !started) {
      log->error("{}", started.error().message);
      return 1;
    }
  }
  if (run_dns) {
    if (auto started = forwarder.start(); !started) {
      log->error("{}", started.error().message);
      return 1;
    }
  }
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code, int) {
    server.stop();
    forwarder.stop();
    io.stop();
  });
  io.run();

  const DhcpCounters d = server.counters();
  const DnsCounters n = forwarder.counters();
  std::printf("dhcp: received=%lu offers=%lu acks=%lu naks=%lu ignored=%lu malformed=%lu\n",
              d.received, d.offers, d.acks, d.naks, d.ignored, d.malformed);
  std::printf(
      "dns: udp=%lu tcp=%lu answered=%lu truncated=%lu servfail=%lu duplicates=%lu "
      "overload=%lu timeouts=%lu mismatched=%lu\n",
      n.udp_queries, n.tcp_queries, n.answered, n.truncated, n.servfail, n.duplicates, n.overload,
      n.upstream_timeouts, n.mismatched);
  std::printf("peak RSS:%s\n", peak_rss().c_str());
  return 0;
}
