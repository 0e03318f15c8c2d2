#include "dhcp/v6/dhcpv6_responder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace berth::dhcp::v6 {
namespace {

using boost::asio::ip::address_v6;

constexpr std::uint8_t kMaxPreference = 255;  // §18.2.1: the client takes it without waiting

bool in_prefix(const address_v6& address, const address_v6& prefix, unsigned length) {
  const auto a = address.to_bytes();
  const auto p = prefix.to_bytes();
  for (unsigned bit = 0; bit < length; ++bit) {
    const unsigned byte = bit / 8;
    const auto mask = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    if ((a[byte] & mask) != (p[byte] & mask))
      return false;
  }
  return true;
}

std::uint32_t seconds(std::chrono::seconds value) {
  return static_cast<std::uint32_t>(value.count());
}

// Every IA Address inside the IA_NA values of `message` (malformed IAs make it nullopt).
std::optional<std::vector<address_v6>> requested_addresses(const Message& message) {
  std::vector<address_v6> addresses;
  for (const ByteView value : message.options.find_all(Option::kIaNa)) {
    const auto ia = decode_ia(value);
    if (!ia)
      return std::nullopt;
    for (const ByteView inner : ia->options.find_all(Option::kIaAddress)) {
      const auto address = decode_ia_address(inner);
      if (!address)
        return std::nullopt;
      addresses.push_back(address->address);
    }
  }
  return addresses;
}

// Every IA_NA (with its addresses), IA_TA and IA_PD of `message` decodes.
bool all_ias_decode(const Message& message) {
  for (const ByteView value : message.options.find_all(Option::kIaTa))
    if (!decode_ia_ta(value))
      return false;
  for (const ByteView value : message.options.find_all(Option::kIaPd))
    if (!decode_ia(value))
      return false;
  return requested_addresses(message).has_value();
}

struct Rules {
  bool server_id_required;  // must carry our Server Identifier
  bool server_id_allowed;   // may carry one (then it must be ours)
  bool client_id_required;
};

Rules rules_for(MessageType type) {
  switch (type) {
    case MessageType::kRequest:
    case MessageType::kRenew:
    case MessageType::kRelease:
    case MessageType::kDecline:
      return {true, true, true};
    case MessageType::kSolicit:
    case MessageType::kConfirm:
    case MessageType::kRebind:
      return {false, false, true};
    default:  // INFORMATION-REQUEST
      return {false, true, false};
  }
}

}  // namespace

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kAdvertise:
      return "advertise";
    case Action::kReplyRapidCommit:
      return "reply (rapid commit)";
    case Action::kReplyLease:
      return "reply (lease)";
    case Action::kReplyConfirm:
      return "reply (confirm)";
    case Action::kReplyRelease:
      return "reply (release)";
    case Action::kReplyDecline:
      return "reply (decline)";
    case Action::kReplyInformation:
      return "reply (information)";
    case Action::kIgnoreOtherServer:
      return "ignored: for another server";
    case Action::kIgnoreInvalid:
      return "ignored: invalid";
    case Action::kIgnoreUnsupported:
      return "ignored: unsupported";
  }
  return "unknown";
}

Result<void> validate_config(const Dhcpv6Config& config) {
  if (config.interface.empty())
    return invalid_input("DHCPv6: no interface (the bridge) given");
  if (config.server_duid.size() < 3 || config.server_duid.size() > 130)
    return invalid_input("DHCPv6: the server DUID is not 3 to 130 bytes");
  if (config.prefix_length < 1 || config.prefix_length > 128)
    return invalid_input(
        fmt::format("DHCPv6: prefix length {} is not in 1..128", config.prefix_length));
  if (!in_prefix(config.client_address, config.prefix, config.prefix_length))
    return invalid_input(fmt::format("DHCPv6: client address {} is not in {}/{}",
                                     config.client_address.to_string(), config.prefix.to_string(),
                                     config.prefix_length));
  if (config.client_address.is_multicast() || config.client_address.is_unspecified()
      || config.client_address.is_link_local())
    return invalid_input(fmt::format("DHCPv6: client address {} is not a unicast global or ULA",
                                     config.client_address.to_string()));
  if (config.valid_lifetime < config.preferred_lifetime
      || config.preferred_lifetime < std::chrono::seconds(4))
    return invalid_input(
        fmt::format("DHCPv6: lifetimes preferred {}s, valid {}s (need 4s <= preferred <= valid)",
                    config.preferred_lifetime.count(), config.valid_lifetime.count()));
  if (config.valid_lifetime > std::chrono::seconds(0xFFFFFFFE))
    return invalid_input("DHCPv6: valid lifetime over 2^32 - 2 s");
  if (config.dns_servers.size() > 8)
    return invalid_input("DHCPv6: more than 8 DNS servers");
  for (const auto& domain : config.search_domains) {
    const std::string one[] = {domain};
    if (!encode_domain_list(one))
      return invalid_input(
          fmt::format("DHCPv6: search domain \"{}\" is not a valid domain name", domain));
  }
  return {};
}

Dhcpv6Responder::Dhcpv6Responder(Dhcpv6Config config) : config_(std::move(config)) {}

Message Dhcpv6Responder::reply_to(const Message& request, MessageType type) const {
  Message reply;
  reply.type = type;
  reply.transaction_id = request.transaction_id;
  reply.options.add(Option::kServerId, config_.server_duid);
  if (const Bytes* client_id = request.options.find(Option::kClientId))
    reply.options.add(Option::kClientId, *client_id);
  return reply;
}

void Dhcpv6Responder::add_dns(Message& reply) const {
  if (!config_.dns_servers.empty())
    reply.options.add(Option::kDnsServers, encode_addresses(config_.dns_servers));
  if (!config_.search_domains.empty())
    if (auto list = encode_domain_list(config_.search_domains))
      reply.options.add(Option::kDomainList, std::move(*list));
}

void Dhcpv6Responder::add_leases(const Message& request, Message& reply, Decision& decision) const {
  const std::uint32_t preferred = seconds(config_.preferred_lifetime);
  for (const ByteView value : request.options.find_all(Option::kIaNa)) {
    const auto asked = decode_ia(value);
    IdentityAssociation ia{asked->iaid, 0, 0, {}};
    if (decision.address_given) {
      // One address, one IA: a second IA_NA in the same message gets none.
      ia.options.add(Option::kStatusCode,
                     encode_status(StatusCode::kNoAddrsAvail, "the VM has one address"));
      reply.options.add(Option::kIaNa, encode_ia(ia));
      continue;
    }
    ia.t1 = preferred / 2;
    ia.t2 = preferred / 5 * 4;
    // Addresses the client holds that are not the VM's: returned with lifetimes 0 (§18.3.4).
    for (const ByteView inner : asked->options.find_all(Option::kIaAddress)) {
      const auto held = decode_ia_address(inner);
      if (held->address != config_.client_address)
        ia.options.add(Option::kIaAddress, encode_ia_address({held->address, 0, 0, {}}));
    }
    ia.options.add(Option::kIaAddress,
                   encode_ia_address(
                       {config_.client_address, preferred, seconds(config_.valid_lifetime), {}}));
    reply.options.add(Option::kIaNa, encode_ia(ia));
    decision.address_given = true;
  }
  // Temporary addresses and delegated prefixes are not offered.
  for (const ByteView value : request.options.find_all(Option::kIaTa)) {
    IdentityAssociation ia{decode_ia_ta(value)->iaid, 0, 0, {}};
    ia.options.add(Option::kStatusCode,
                   encode_status(StatusCode::kNoAddrsAvail, "no temporary addresses"));
    reply.options.add(Option::kIaTa, encode_ia_ta(ia));
  }
  for (const ByteView value : request.options.find_all(Option::kIaPd)) {
    IdentityAssociation ia{decode_ia(value)->iaid, 0, 0, {}};
    ia.options.add(Option::kStatusCode,
                   encode_status(StatusCode::kNoPrefixAvail, "no prefix delegation"));
    reply.options.add(Option::kIaPd, encode_ia(ia));
  }
  if (!decision.address_given)
    reply.options.add(Option::kStatusCode,
                      encode_status(StatusCode::kNoAddrsAvail, "ask for an IA_NA"));
}

bool Dhcpv6Responder::screen(const Message& request, Decision& decision) const {
  const MessageType type = request.type;
  if (type == MessageType::kAdvertise || type == MessageType::kReply
      || type == MessageType::kReconfigure || type == MessageType::kRelayForward
      || type == MessageType::kRelayReply) {
    decision.why = fmt::format("{} is not for a server", to_string(type));
    return false;
  }
  const Rules rules = rules_for(type);
  const Bytes* server_id = request.options.find(Option::kServerId);
  decision.action = Action::kIgnoreInvalid;
  if (rules.client_id_required && !request.options.contains(Option::kClientId))
    decision.why = fmt::format("{} without a Client Identifier", to_string(type));
  else if (server_id && !rules.server_id_allowed)
    decision.why = fmt::format("{} with a Server Identifier", to_string(type));
  else if (!server_id && rules.server_id_required)
    decision.why = fmt::format("{} without a Server Identifier", to_string(type));
  else if (server_id && *server_id != config_.server_duid) {
    decision.action = Action::kIgnoreOtherServer;
    decision.why = fmt::format("{} for another server", to_string(type));
  } else if (!all_ias_decode(request))
    decision.why = fmt::format("{} with a malformed IA", to_string(type));
  return decision.why.empty();
}

void Dhcpv6Responder::answer_solicit(const Message& request, Decision& decision) const {
  const bool rapid =
      config_.rapid_commit == RapidCommit::kAllow && request.options.contains(Option::kRapidCommit);
  Message reply = reply_to(request, rapid ? MessageType::kReply : MessageType::kAdvertise);
  if (rapid)
    reply.options.add(Option::kRapidCommit, {});
  else
    reply.options.add(Option::kPreference, {kMaxPreference});
  add_leases(request, reply, decision);
  add_dns(reply);
  decision.action = rapid ? Action::kReplyRapidCommit : Action::kAdvertise;
  decision.address_given = rapid && decision.address_given;  // an ADVERTISE only offers
  decision.reply = std::move(reply);
}

void Dhcpv6Responder::answer_confirm(const Message& request, Decision& decision) const {
  const auto addresses = requested_addresses(request);
  if (addresses->empty()) {
    decision.why = "CONFIRM without addresses";
    return;
  }
  const bool on_link = std::all_of(addresses->begin(), addresses->end(), [&](const auto& a) {
    return in_prefix(a, config_.prefix, config_.prefix_length);
  });
  Message reply = reply_to(request, MessageType::kReply);
  reply.options.add(Option::kStatusCode,
                    on_link ? encode_status(StatusCode::kSuccess, "on link")
                            : encode_status(StatusCode::kNotOnLink, "not on this link"));
  decision.action = Action::kReplyConfirm;
  decision.reply = std::move(reply);
}

Decision Dhcpv6Responder::decide(const Message& request) const {
  Decision decision;
  if (!screen(request, decision))
    return decision;
  const bool has_ia = request.options.contains(Option::kIaNa)
                      || request.options.contains(Option::kIaTa)
                      || request.options.contains(Option::kIaPd);
  switch (request.type) {
    case MessageType::kSolicit:
      answer_solicit(request, decision);
      break;
    case MessageType::kRequest:
    case MessageType::kRenew:
    case MessageType::kRebind:
      decision.reply = reply_to(request, MessageType::kReply);
      add_leases(request, *decision.reply, decision);
      add_dns(*decision.reply);
      decision.action = Action::kReplyLease;
      break;
    case MessageType::kConfirm:
      answer_confirm(request, decision);
      break;
    case MessageType::kRelease:
    case MessageType::kDecline:
      decision.reply = reply_to(request, MessageType::kReply);
      decision.reply->options.add(Option::kStatusCode,
                                  encode_status(StatusCode::kSuccess, "noted"));
      decision.action =
          request.type == MessageType::kRelease ? Action::kReplyRelease : Action::kReplyDecline;
      break;
    default:  // INFORMATION-REQUEST
      if (has_ia) {
        decision.why = "INFORMATION-REQUEST with an IA";
        break;
      }
      decision.reply = reply_to(request, MessageType::kReply);
      add_dns(*decision.reply);
      decision.action = Action::kReplyInformation;
      break;
  }
  if (decision.reply)
    decision.why = fmt::format("{} → {}", to_string(request.type), to_string(decision.action));
  return decision;
}

}  // namespace berth::dhcp::v6
