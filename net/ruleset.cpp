#include "net/ruleset.hpp"

#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <type_traits>

namespace berth::net::nft {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// nft prints a set's elements in ascending order of value.
template <class T, class Format>
std::string one_or_set(std::vector<T> values, Format format) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  if (values.size() == 1)
    return format(values.front());
  std::string text = "{ ";
  for (std::size_t i = 0; i < values.size(); ++i)
    text += (i ? ", " : "") + format(values[i]);
  return text + " }";
}

std::string protocol_name(std::uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_SCTP:
      return "sctp";
    default:
      return std::to_string(protocol);
  }
}

std::string icmp_type_name(std::uint8_t type) {
  switch (type) {
    case 0:
      return "echo-reply";
    case 3:
      return "destination-unreachable";
    case 8:
      return "echo-request";
    case 11:
      return "time-exceeded";
    case 12:
      return "parameter-problem";
    default:
      return std::to_string(type);
  }
}

std::string icmpv6_type_name(std::uint8_t type) {
  switch (type) {
    case 1:
      return "destination-unreachable";
    case 2:
      return "packet-too-big";
    case 3:
      return "time-exceeded";
    case 4:
      return "parameter-problem";
    case 128:
      return "echo-request";
    case 129:
      return "echo-reply";
    case 133:
      return "nd-router-solicit";
    case 134:
      return "nd-router-advert";
    case 135:
      return "nd-neighbor-solicit";
    case 136:
      return "nd-neighbor-advert";
    case 137:
      return "nd-redirect";
    default:
      return std::to_string(type);
  }
}

// "ip" before an IPv4 address match, "ip6" before an IPv6 one.
std::string family_of(bool v6) {
  return v6 ? "ip6" : "ip";
}

// A prefix as nft prints it: a full-length one as the bare address.
std::string prefix_text(const Prefix& prefix) {
  return std::visit(
      [](const auto& network) {
        constexpr unsigned kBits =
            std::is_same_v<std::decay_t<decltype(network)>, boost::asio::ip::network_v4> ? 32 : 128;
        return network.prefix_length() == kBits ? network.address().to_string()
                                                : network.canonical().to_string();
      },
      prefix);
}

std::string verdict_name(Verdict verdict) {
  return verdict == Verdict::kAccept ? "accept" : "drop";
}

std::string hook_name(Hook hook) {
  switch (hook) {
    case Hook::kPrerouting:
      return "prerouting";
    case Hook::kInput:
      return "input";
    case Hook::kForward:
      return "forward";
    case Hook::kOutput:
      return "output";
    case Hook::kPostrouting:
      return "postrouting";
  }
  return "?";
}

// nft names the standard priorities where they apply to the hook (nft's std_prio table).
std::string priority_name(const Chain& chain) {
  if (chain.type == ChainType::kFilter && chain.priority == 0)
    return "filter";
  if (chain.hook == Hook::kPrerouting && chain.priority == -100)
    return "dstnat";
  if (chain.hook == Hook::kPostrouting && chain.priority == 100)
    return "srcnat";
  return std::to_string(chain.priority);
}

std::string render_expression(const Expression& expression) {
  return std::visit(
      Overloaded{
          [](const IifName& m) { return fmt::format("iifname \"{}\"", m.name); },
          [](const OifName& m) { return fmt::format("oifname \"{}\"", m.name); },
          [](const SourceIn& m) {
            return family_of(m.prefix.index() == 1) + " saddr " + prefix_text(m.prefix);
          },
          [](const DestinationIn& m) {
            const bool v6 = !m.addresses.empty() && m.addresses.front().is_v6();
            return family_of(v6) + " daddr "
                   + one_or_set(m.addresses, [](const boost::asio::ip::address& address) {
                       return address.to_string();
                     });
          },
          [](const ProtocolIn& m) {
            return "meta l4proto " + one_or_set(m.protocols, protocol_name);
          },
          [](const TcpPortIn& m) {
            return "tcp dport "
                   + one_or_set(m.ports, [](std::uint16_t port) { return std::to_string(port); });
          },
          [](const UdpPortIn& m) {
            return "udp dport "
                   + one_or_set(m.ports, [](std::uint16_t port) { return std::to_string(port); });
          },
          [](const IcmpTypeIn& m) { return "icmp type " + one_or_set(m.types, icmp_type_name); },
          [](const Icmpv6TypeIn& m) {
            return "icmpv6 type " + one_or_set(m.types, icmpv6_type_name);
          },
          [](const TcpSyn&) { return std::string("tcp flags syn"); },
          [](const CtStateIn& m) {
            // nft lists the states in bit order: established (2) before related (4).
            std::string text = "ct state ";
            bool any = false;
            for (CtState state : {CtState::kEstablished, CtState::kRelated}) {
              if (std::find(m.states.begin(), m.states.end(), state) == m.states.end())
                continue;
              text += any ? "," : "";
              text += state == CtState::kEstablished ? "established" : "related";
              any = true;
            }
            return text;
          },
          [](const CtStatusDnat&) { return std::string("ct status dnat"); },
          [](const Counter&) { return std::string("counter packets 0 bytes 0"); },
          [](const Dnat& s) { return "dnat to " + s.to.to_string(); },
          [](const Snat& s) { return "snat to " + s.to.to_string(); },
          [](const ClampMss&) { return std::string("tcp option maxseg size set rt mtu"); },
          [](const Reject& s) {
            // nft hides the `meta l4proto tcp` a TCP reset needs, and the default ICMP code.
            return std::string(s.with == RejectWith::kTcpReset ? "reject with tcp reset"
                                                               : "reject");
          },
          [](const Final& s) { return verdict_name(s.verdict); },
      },
      expression);
}

}  // namespace

std::string family_name(Family family) {
  return family == Family::kIp6 ? "ip6" : "ip";
}

std::string render(const Rule& rule) {
  std::string text;
  for (const Expression& expression : rule.expressions)
    text += (text.empty() ? "" : " ") + render_expression(expression);
  if (!rule.comment.empty())
    text += fmt::format(" comment \"{}\"", rule.comment);
  return text;
}

std::string render(const Table& table) {
  std::string text = fmt::format("table {} {} {{\n", family_name(table.family), table.name);
  for (std::size_t i = 0; i < table.chains.size(); ++i) {
    const Chain& chain = table.chains[i];
    if (i > 0)
      text += "\n";
    text += fmt::format("\tchain {} {{\n", chain.name);
    text += fmt::format("\t\ttype {} hook {} priority {}; policy {};\n",
                        chain.type == ChainType::kNat ? "nat" : "filter", hook_name(chain.hook),
                        priority_name(chain), verdict_name(chain.policy));
    for (const Rule& rule : chain.rules)
      text += "\t\t" + render(rule) + "\n";
    text += "\t}\n";
  }
  return text + "}\n";
}

}  // namespace berth::net::nft
