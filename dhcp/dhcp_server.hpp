#pragma once
// The DHCPv4 server on the bridge: one static lease (VM_IP) for the VM's MAC, everything else
// ignored and counted. Receives on UDP 0.0.0.0:67 bound to the bridge; replies leave as raw
// frames with computed checksums (no ARP for an unconfigured client, no partial checksums), or as
// UDP broadcasts when packet sockets are not permitted. Single-threaded: call everything from the
// io_context's thread.

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/error.hpp"
#include "common/metrics.hpp"
#include "dhcp/dhcp_responder.hpp"

namespace berth::dhcp {

struct DhcpCounters {
  std::uint64_t received = 0;   // datagrams on port 67
  std::uint64_t malformed = 0;  // not parseable as DHCP
  std::uint64_t offers = 0;
  std::uint64_t acks = 0;     // leases given or extended
  std::uint64_t informs = 0;  // DHCPACKs to INFORM
  std::uint64_t naks = 0;
  std::uint64_t releases = 0;
  std::uint64_t declines = 0;
  std::uint64_t ignored = 0;      // other clients, other servers' REQUESTs, unsupported messages
  std::uint64_t send_errors = 0;  // replies that could not be encoded or sent
};

// kNaked: the VM asked for an address or lease that is not its own and was refused; whatever it
// held before is gone until it binds again.
enum class LeaseEventKind { kBound, kRenewed, kReleased, kDeclined, kNaked };

struct LeaseEvent {
  LeaseEventKind kind = LeaseEventKind::kBound;
  boost::asio::ip::address_v4 address;
  MacAddress mac{};
  std::chrono::seconds lease_time{0};
};

class DhcpServer {
 public:
  DhcpServer(boost::asio::io_context& io, DhcpConfig config, std::shared_ptr<spdlog::logger> log);
  ~DhcpServer();
  DhcpServer(const DhcpServer&) = delete;
  DhcpServer& operator=(const DhcpServer&) = delete;

  // Validates the configuration, opens the sockets on config.interface and starts serving.
  // Errors: invalid configuration, no such interface, port 67 taken, missing privilege.
  Result<void> start();

  // Closes the sockets; pending work ends quietly. Idempotent; also done by the destructor.
  void stop();

  // Called for every lease event (bound, renewed, released, declined, NAKed): the supervisor's
  // readiness.
  void on_lease(std::function<void(const LeaseEvent&)> callback);

  DhcpCounters counters() const;

  // Registers every DhcpCounters field as a berth_dhcp_*_total counter read from this server;
  // the registry must not be rendered after the server is destroyed.
  void register_metrics(MetricsRegistry& registry) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the receive coroutine, which may outlive a stop()
};

}  // namespace berth::dhcp
