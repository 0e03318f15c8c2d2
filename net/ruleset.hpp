#pragma once
// An nftables table as plain data: the few matches and statements Berth uses, each a value type.
// nat.hpp builds one from a NatSpec, render() prints it exactly as `nft list table` does (so tests
// and operators compare like with like) and nftables.hpp encodes it for the kernel.

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace berth::net::nft {

enum class Family { kIp, kIp6 };  // table ip | table ip6
enum class Hook { kPrerouting, kInput, kForward, kOutput, kPostrouting };
enum class ChainType { kFilter, kNat };
enum class Verdict { kAccept, kDrop };
enum class CtState { kEstablished, kRelated };

// Matches. A list of more than one value becomes an anonymous set (`{ a, b }`).
struct IifName {
  std::string name;  // iifname "eth0"
};
struct OifName {
  std::string name;  // oifname "br0"
};
// The family of the address is the table's: ip saddr 192.168.254.2 | ip6 saddr fd00::/64.
using Prefix = std::variant<boost::asio::ip::network_v4, boost::asio::ip::network_v6>;
struct SourceIn {
  Prefix prefix;  // ip saddr 192.168.254.2 | ip saddr 127.0.0.0/8 | ip6 saddr fd00::/64
};
struct DestinationIn {
  std::vector<boost::asio::ip::address> addresses;  // ip daddr { 127.0.0.1, 10.0.0.5 } (one family)
};
struct ProtocolIn {
  std::vector<std::uint8_t> protocols;  // meta l4proto { tcp, udp, sctp } (IPPROTO_* numbers)
};
struct TcpPortIn {
  std::vector<std::uint16_t> ports;  // tcp dport { 5900, 9250 }
};
struct UdpPortIn {
  std::vector<std::uint16_t> ports;  // udp dport 67
};
struct IcmpTypeIn {
  std::vector<std::uint8_t> types;  // icmp type { destination-unreachable, echo-request } (ICMP_*)
};
struct Icmpv6TypeIn {
  std::vector<std::uint8_t>
      types;  // icmpv6 type { packet-too-big, nd-neighbor-solicit } (RFC 4443)
};
struct TcpSyn {};  // tcp flags syn: SYN and SYN/ACK
struct CtStateIn {
  std::vector<CtState> states;  // ct state established,related
};
struct CtStatusDnat {};  // ct status dnat: the connection was destination-NATed

// Statements.
struct Counter {};  // counter packets N bytes M
struct Dnat {
  boost::asio::ip::address to;  // dnat to 192.168.254.2 | dnat to fd00::2 (the table's family)
};
struct Snat {
  boost::asio::ip::address to;  // snat to 10.0.0.5
};
struct ClampMss {};  // tcp option maxseg size set rt mtu
// reject with tcp reset (TCP only: the rule matches TCP) | reject (ICMP or ICMPv6 port
// unreachable, by the table's family).
enum class RejectWith { kTcpReset, kPortUnreachable };
struct Reject {
  RejectWith with;
};
struct Final {
  Verdict verdict;  // accept | drop
};

using Expression = std::variant<IifName, OifName, SourceIn, DestinationIn, ProtocolIn, TcpPortIn,
                                UdpPortIn, IcmpTypeIn, Icmpv6TypeIn, TcpSyn, CtStateIn,
                                CtStatusDnat, Counter, Dnat, Snat, ClampMss, Reject, Final>;

struct Rule {
  std::vector<Expression> expressions;  // in order: matches first, then statements
  std::string comment;                  // shown by `nft list`; empty: none
};

struct Chain {
  std::string name;
  ChainType type = ChainType::kFilter;
  Hook hook = Hook::kForward;
  int priority = 0;
  Verdict policy = Verdict::kAccept;
  std::vector<Rule> rules;
};

struct Table {
  std::string name;
  std::vector<Chain> chains;
  Family family = Family::kIp;
};

// "ip" or "ip6", as nft names the family.
std::string family_name(Family family);

// The table as `nft list table <family> <name>` prints it with nft 1.0 (tabs, counters as given:
// zero).
std::string render(const Table& table);

// One rule as it appears in that listing, without indentation or newline.
std::string render(const Rule& rule);

}  // namespace berth::net::nft
