#pragma once
// The VM's IPv6 configuration, served on the bridge: Router Advertisements (unsolicited, a quick
// burst at start then every `advert_interval`, and in answer to a Router Solicitation) and a
// stateful DHCPv6 server for the one address. Receives DHCPv6 on UDP [::]:547 bound to the bridge
// (joined to ff02::1:2) and solicitations on a raw ICMPv6 socket (joined to ff02::2, filtered to
// type 133); sends from the bridge's link-local address with hop limit 255 (RFC 4861 §6.1.2).
// Single-threaded: call everything from the io_context's thread.

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/error.hpp"
#include "common/metrics.hpp"
#include "dhcp/v6/dhcpv6_responder.hpp"
#include "dhcp/v6/ndp.hpp"

namespace berth::dhcp::v6 {

struct Ipv6ServerConfig {
  Dhcpv6Config dhcp;           // dhcp.interface is the bridge for both
  RouterAdvertisement advert;  // what every advertisement says
  std::chrono::milliseconds initial_interval{std::chrono::seconds(4)};  // the first 3
  std::chrono::milliseconds advert_interval{std::chrono::seconds(200)};
};

struct Ipv6Counters {
  std::uint64_t solicitations = 0;  // router solicitations received
  std::uint64_t adverts = 0;        // router advertisements sent
  std::uint64_t received = 0;       // DHCPv6 datagrams on port 547
  std::uint64_t malformed = 0;
  std::uint64_t advertises = 0;  // DHCPv6 ADVERTISE
  std::uint64_t leases = 0;      // REPLYs that gave or extended the address
  std::uint64_t replies = 0;     // other REPLYs (confirm, release, decline, information)
  std::uint64_t ignored = 0;
  std::uint64_t send_errors = 0;
};

class Ipv6Server {
 public:
  Ipv6Server(boost::asio::io_context& io, Ipv6ServerConfig config,
             std::shared_ptr<spdlog::logger> log);
  ~Ipv6Server();
  Ipv6Server(const Ipv6Server&) = delete;
  Ipv6Server& operator=(const Ipv6Server&) = delete;

  // Validates the configuration, opens the sockets and starts advertising and serving. Errors:
  // invalid configuration, no such interface, port 547 taken, missing privilege (CAP_NET_RAW).
  Result<void> start();
  // Sends a last advertisement with router lifetime 0 (the guest drops the default route at once,
  // RFC 4861 §6.2.5) and closes the sockets. Idempotent; the destructor closes without it.
  void stop();

  // Called when a REPLY gives or extends the address: the supervisor's readiness.
  void on_lease(std::function<void(const boost::asio::ip::address_v6&)> callback);

  Ipv6Counters counters() const;
  // berth_ipv6_*_total counters read from this server.
  void register_metrics(MetricsRegistry& registry) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace berth::dhcp::v6
