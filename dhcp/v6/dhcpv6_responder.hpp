#pragma once
// What the DHCPv6 server answers, as a pure function of its configuration and one client message:
// the RFC 8415 §16 and §18.3 rules for a single stateful address (the VM's one IPv6 address, the
// one the NAT66 points at) plus DNS servers and the search list (RFC 3646). The VM is the only
// host on the bridge, so every client on it is the VM: any DUID and any IAID gets the same address
// (a guest's initramfs and its full system may use different DUIDs). No sockets and no clock.

#include <boost/asio/ip/address_v6.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "dhcp/v6/dhcpv6_message.hpp"

namespace berth::dhcp::v6 {

// Whether a SOLICIT with Rapid Commit gets the REPLY at once (§18.3.1).
enum class RapidCommit { kRefuse, kAllow };

struct Dhcpv6Config {
  std::string interface;                       // the bridge the VM's tap is on, e.g. "br0"
  Bytes server_duid;                           // e.g. DUID-LL of the bridge's MAC
  boost::asio::ip::address_v6 client_address;  // the one address
  boost::asio::ip::address_v6 prefix;          // the on-link prefix (for CONFIRM)
  unsigned prefix_length = 64;
  std::vector<boost::asio::ip::address_v6> dns_servers;  // option 23 (the gateway: the forwarder)
  std::vector<std::string> search_domains;               // option 24
  std::chrono::seconds preferred_lifetime{std::chrono::hours(1)};  // T1, T2 at 1/2 and 4/5
  std::chrono::seconds valid_lifetime{std::chrono::hours(2)};
  RapidCommit rapid_commit = RapidCommit::kAllow;
};

// Success when `config` is usable, else an invalid-input Error naming the bad value.
Result<void> validate_config(const Dhcpv6Config& config);

enum class Action {
  kAdvertise,          // SOLICIT
  kReplyRapidCommit,   // SOLICIT with Rapid Commit: the address is given at once
  kReplyLease,         // REQUEST, RENEW, REBIND: the address is given or extended
  kReplyConfirm,       // CONFIRM: whether the client's addresses are on-link
  kReplyRelease,       // RELEASE
  kReplyDecline,       // DECLINE (the one address is all there is: logged, not withdrawn)
  kReplyInformation,   // INFORMATION-REQUEST: DNS only
  kIgnoreOtherServer,  // a Server Identifier that is not ours
  kIgnoreInvalid,      // §16's discard rules: a Client Identifier or Server Identifier
                       // missing or present where it must not be, an IA in
                       // INFORMATION-REQUEST, a CONFIRM without addresses, a bad IA
  kIgnoreUnsupported,  // server-to-client types (ADVERTISE, REPLY, RECONFIGURE)
};

std::string_view to_string(Action action);

struct Decision {
  Action action = Action::kIgnoreUnsupported;
  bool address_given = false;  // the reply carries the address with non-zero lifetimes
  std::optional<Message> reply;
  std::string why;  // for the log
};

class Dhcpv6Responder {
 public:
  // `config` must pass validate_config.
  explicit Dhcpv6Responder(Dhcpv6Config config);

  Decision decide(const Message& request) const;

  const Dhcpv6Config& config() const { return config_; }

 private:
  // §16's discard rules; false (with decision.action and why set) when the message is dropped.
  bool screen(const Message& request, Decision& decision) const;
  void answer_solicit(const Message& request, Decision& decision) const;
  void answer_confirm(const Message& request, Decision& decision) const;
  Message reply_to(const Message& request, MessageType type) const;
  void add_dns(Message& reply) const;
  // The IAs of a reply that hands out (or confirms) the address; sets address_given.
  void add_leases(const Message& request, Message& reply, Decision& decision) const;

  Dhcpv6Config config_;
};

}  // namespace berth::dhcp::v6
