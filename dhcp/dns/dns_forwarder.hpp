#pragma once
// The DNS forwarder the VM uses (option 6 → VM_GW): UDP and TCP on VM_GW:53, bound to the bridge,
// answering the VM's subnet only; each query goes to the pod's upstreams (resolv.conf) with a
// fresh random ID from a random source port (a rotating pool of connected sockets on ports the
// kernel picked at random), a per-try timeout and failover (over UDP; over TCP as well for
// a guest TCP query whose UDP answer came back truncated). Replies are accepted only when
// ID, question and upstream match (RFC 5452); EDNS0 is handled hop by hop and UDP answers are cut
// to what the guest accepts (TC set). Single-threaded: call everything from the io_context's
// thread.

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/metrics.hpp"

namespace berth::dhcp {

struct DnsConfig {
  boost::asio::ip::address listen_address;  // VM_GW, or the bridge's address in VM_IP6
  std::uint16_t listen_port = 53;
  std::string interface;                        // the bridge; empty: not bound to a device
  boost::asio::ip::network_v4 allowed_clients;  // the VM's subnet; other sources get nothing
  // With an IPv6 listen_address: the VM's /64, the only IPv6 clients answered.
  boost::asio::ip::network_v6 allowed_clients6;
  std::vector<boost::asio::ip::udp::endpoint> upstreams;  // 1 to 3, tried in order (same port
                                                          // for TCP)
  std::chrono::milliseconds attempt_timeout{1500};        // per try; below the guest's 5 s
  unsigned attempts = 3;                                  // tries per query, over the upstreams
  std::chrono::milliseconds tcp_idle_timeout{10000};      // RFC 7766 §6.2.3
  std::size_t max_in_flight = 512;       // queries being resolved (UDP and TCP together)
  std::size_t max_tcp_connections = 32;  // guest connections open at once
};

struct DnsCounters {
  std::uint64_t udp_queries = 0;        // datagrams received on the listen socket
  std::uint64_t tcp_queries = 0;        // messages received over TCP
  std::uint64_t tcp_connections = 0;    // connections accepted
  std::uint64_t answered = 0;           // upstream answers passed to the guest
  std::uint64_t truncated = 0;          // of which cut to fit the guest's UDP size (TC set)
  std::uint64_t servfail = 0;           // every try failed: SERVFAIL to the guest
  std::uint64_t refused_clients = 0;    // sources outside the allowed subnet (nothing sent)
  std::uint64_t malformed = 0;          // not a DNS message, or a response: dropped
  std::uint64_t not_implemented = 0;    // opcodes other than QUERY, or qdcount != 1: NOTIMP/FORMERR
  std::uint64_t duplicates = 0;         // guest retransmits of a query still in flight: dropped
  std::uint64_t overload = 0;           // dropped because max_in_flight was reached
  std::uint64_t upstream_timeouts = 0;  // tries that timed out
  std::uint64_t upstream_errors = 0;    // tries that failed (refused, unreachable, reset)
  std::uint64_t mismatched = 0;         // upstream datagrams rejected (ID/question/source)
};

// Success when `config` is usable, else an invalid-input Error naming the bad value.
Result<void> validate_config(const DnsConfig& config);

class DnsForwarder {
 public:
  DnsForwarder(boost::asio::io_context& io, DnsConfig config, std::shared_ptr<spdlog::logger> log);
  ~DnsForwarder();
  DnsForwarder(const DnsForwarder&) = delete;
  DnsForwarder& operator=(const DnsForwarder&) = delete;

  // Validates the configuration, binds UDP and TCP on listen_address:listen_port (on `interface`
  // when given) and starts serving. Errors: invalid configuration, address not on this host,
  // port taken, missing privilege.
  Result<void> start();

  // Closes every socket; queries in flight end without an answer. Idempotent; also done by the
  // destructor.
  void stop();

  DnsCounters counters() const;

  // One forwarder per address family the guest asks on (its gateway's IPv4 and IPv6 addresses).
  struct Listener {
    std::string family;  // the `family` label: "ipv4" or "ipv6"
    const DnsForwarder* forwarder = nullptr;
  };
  // Registers every DnsCounters field as a berth_dns_*_total counter with one sample per listener,
  // labelled by its family; the registry must not be rendered after a forwarder is destroyed.
  static void register_metrics(MetricsRegistry& registry, std::vector<Listener> listeners);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the coroutines, which may outlive a stop()
};

}  // namespace berth::dhcp
