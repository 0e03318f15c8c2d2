#pragma once
// What the DHCP server answers, as a pure function of its configuration and one request: the
// RFC 2131 state rules for a single static lease (VM_IP for the VM's MAC) and the reply's options
// and destination. No sockets and no clock, so whole exchanges run in unit tests.

#include <boost/asio/ip/address_v4.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "dhcp/dhcp_packet.hpp"

namespace berth::dhcp {

// Whether replies carry option 121. Clients that take 121 ignore option 3, so when sent it holds
// the on-link subnet (when asked for) and 0.0.0.0/0 via the router, last.
enum class ClasslessRoutes { kOmit, kSend };

struct DhcpConfig {
  std::string interface;                       // the bridge the VM's tap is on, e.g. "br0"
  boost::asio::ip::address_v4 server_address;  // VM_GW: server identifier and reply source
  boost::asio::ip::address_v4 client_address;  // VM_IP: the one lease
  unsigned prefix_length = 30;                 // option 1
  MacAddress client_mac{};                     // the only client served
  boost::asio::ip::address_v4 router;          // option 3 (VM_GW)
  std::vector<boost::asio::ip::address_v4> dns_servers;    // option 6 (VM_GW: the forwarder)
  std::vector<std::string> search_domains;                 // option 119, first one as option 15
  std::string hostname;                                    // option 12; not sent when empty
  std::uint16_t mtu = 1500;                                // option 26 (the pod's eth0 MTU)
  std::chrono::seconds lease_time{std::chrono::hours(1)};  // option 51; 58/59 at 1/2 and 7/8
  ClasslessRoutes classless_routes = ClasslessRoutes::kOmit;
};

// Success when `config` is usable, else an invalid-input Error naming the bad value.
Result<void> validate_config(const DhcpConfig& config);

// What the server does with a request.
enum class Action {
  kOffer,                // DISCOVER from the VM
  kAck,                  // REQUEST for VM_IP: the lease is given (bound or extended)
  kAckInform,            // INFORM: configuration without a lease
  kNak,                  // REQUEST for another address
  kRelease,              // RELEASE: no reply
  kDecline,              // DECLINE: VM_IP is in use by someone else; no reply
  kIgnoreForeignClient,  // not the VM's MAC
  kIgnoreOtherServer,    // REQUEST selecting another server (option 54 not ours)
  kIgnoreUnsupported,    // BOOTREPLY, BOOTP without option 53, server-only types, odd REQUEST,
                         // relayed (giaddr set: the VM is directly attached, no relay serves it)
};

std::string_view to_string(Action action);

// How an ACK changes the lease, for the readiness callback.
enum class LeaseTransition { kNone, kBound, kRenewed };

// Where a reply goes (RFC 2131 §4.1).
enum class DestinationKind {
  kClient,              // to ciaddr:68; the client has its address and answers ARP
  kClientUnconfigured,  // to yiaddr:68 at chaddr: needs a raw frame (the client cannot ARP yet)
  kBroadcast,           // to 255.255.255.255:68 at ff:ff:ff:ff:ff:ff
};

struct ReplyDestination {
  DestinationKind kind = DestinationKind::kBroadcast;
  boost::asio::ip::address_v4 address = boost::asio::ip::address_v4::broadcast();
  std::uint16_t port = 68;
  MacAddress mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
};

struct Decision {
  Action action = Action::kIgnoreUnsupported;
  LeaseTransition transition = LeaseTransition::kNone;
  std::optional<DhcpPacket> reply;  // set for kOffer, kAck, kAckInform, kNak
  ReplyDestination destination;
  std::size_t max_payload = kDefaultMaxMessage - kIpUdpHeaderSize;  // what the client accepts
  std::string why;  // for the log, e.g. "requested 10.0.0.9, the lease is 192.168.254.2"
};

// An encoded reply; `trimmed` says options were dropped to fit the client's size limit.
struct EncodedReply {
  Bytes payload;
  bool trimmed = false;
};

class DhcpResponder {
 public:
  // `config` must pass validate_config.
  explicit DhcpResponder(DhcpConfig config);

  // Decides what to do with `request` (already parsed).
  Decision decide(const DhcpPacket& request) const;

  // Serializes decision.reply within decision.max_payload. When it does not fit it drops domains
  // from the end of option 119, then options 121, 15 and 12, and says so; nullopt when even that
  // does not fit (or there is no reply).
  std::optional<EncodedReply> encode(const Decision& decision) const;

  const DhcpConfig& config() const { return config_; }

 private:
  DhcpConfig config_;
};

}  // namespace berth::dhcp
