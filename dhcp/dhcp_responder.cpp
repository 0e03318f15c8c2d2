#include "dhcp/dhcp_responder.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace berth::dhcp {
namespace {

using boost::asio::ip::address_v4;

address_v4 netmask(unsigned prefix_length) {
  return address_v4(prefix_length == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix_length));
}

std::uint32_t seconds32(std::chrono::seconds s) {
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(s.count(), 0, 0xFFFFFFFE));
}

// Options that describe the network (not the lease), in the order used when the client's
// parameter request list does not mention them.
DhcpOptions configuration_options(const DhcpConfig& config,
                                  std::span<const std::string> search_domains) {
  DhcpOptions options;
  const address_v4 mask = netmask(config.prefix_length);
  options.set_ipv4(Option::kSubnetMask, mask);
  options.set_ipv4_list(Option::kRouter, std::span(&config.router, 1));
  if (!config.dns_servers.empty())
    options.set_ipv4_list(Option::kDomainNameServer, config.dns_servers);
  if (!config.hostname.empty())
    options.set_text(Option::kHostName, config.hostname);
  if (!search_domains.empty()) {
    std::string_view domain = search_domains.front();
    if (domain.ends_with('.'))
      domain.remove_suffix(1);
    options.set_text(Option::kDomainName, domain);
  }
  options.set_u16(Option::kInterfaceMtu, config.mtu);
  options.set_ipv4(Option::kBroadcastAddress,
                   address_v4(config.client_address.to_uint() | ~mask.to_uint()));
  if (!search_domains.empty()) {
    if (auto encoded = encode_domain_search(search_domains, NameCompression::kOn))
      options.set(Option::kDomainSearch, std::move(*encoded));
  }
  if (config.classless_routes == ClasslessRoutes::kSend) {
    std::vector<ClasslessRoute> routes;
    // The VM's subnet is on-link by its prefix: the default route is the only one needed.
    routes.push_back({address_v4::any(), 0, config.router});
    if (auto encoded = encode_classless_routes(routes))
      options.set(Option::kClasslessRoutes, std::move(*encoded));
  }
  return options;
}

// Appends `extra` to `reply` in the order of the client's parameter request list, then the rest.
void append_in_requested_order(const DhcpPacket& request, const DhcpOptions& extra,
                               DhcpOptions& reply) {
  if (const Bytes* requested = request.options.find(Option::kParameterRequestList)) {
    for (const std::uint8_t wanted : *requested) {
      if (const Bytes* value = extra.find(wanted); value && !reply.find(wanted))
        reply.set(wanted, *value);
    }
  }
  for (const auto& [option_code, value] : extra.entries()) {
    if (!reply.find(option_code))
      reply.set(option_code, value);
  }
}

}  // namespace

Result<void> validate_config(const DhcpConfig& config) {
  if (config.interface.empty())
    return invalid_input("DHCP: no interface (the bridge) given");
  if (config.prefix_length < 1 || config.prefix_length > 30)
    return invalid_input(
        fmt::format("DHCP: prefix length {} is not in 1..30", config.prefix_length));
  const std::uint32_t mask = netmask(config.prefix_length).to_uint();
  if ((config.server_address.to_uint() & mask) != (config.client_address.to_uint() & mask))
    return invalid_input(fmt::format("DHCP: client address {} is not in the server's subnet {}/{}",
                                     config.client_address.to_string(),
                                     config.server_address.to_string(), config.prefix_length));
  if (config.server_address == config.client_address)
    return invalid_input(fmt::format("DHCP: client and server address are both {}",
                                     config.client_address.to_string()));
  if ((config.client_mac[0] & 1) != 0)
    return invalid_input(
        fmt::format("DHCP: client MAC {} is not unicast", format_mac(config.client_mac)));
  if (config.mtu < 576)
    return invalid_input(fmt::format("DHCP: MTU {} is below 576", config.mtu));
  if (config.lease_time < std::chrono::seconds(4))
    return invalid_input(
        fmt::format("DHCP: lease time {}s is under 4s", config.lease_time.count()));
  if (config.dns_servers.size() > 8)
    return invalid_input("DHCP: more than 8 DNS servers");
  for (const auto& domain : config.search_domains) {
    const std::string one[] = {domain};
    if (!encode_domain_search(one, NameCompression::kOff))
      return invalid_input(
          fmt::format("DHCP: search domain \"{}\" is not a valid domain name", domain));
  }
  if (config.hostname.size() > 255)
    return invalid_input("DHCP: hostname longer than 255 bytes");
  return {};
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kOffer:
      return "offer";
    case Action::kAck:
      return "ack";
    case Action::kAckInform:
      return "ack-inform";
    case Action::kNak:
      return "nak";
    case Action::kRelease:
      return "release";
    case Action::kDecline:
      return "decline";
    case Action::kIgnoreForeignClient:
      return "ignore-foreign-client";
    case Action::kIgnoreOtherServer:
      return "ignore-other-server";
    case Action::kIgnoreUnsupported:
      return "ignore-unsupported";
  }
  return "?";
}

DhcpResponder::DhcpResponder(DhcpConfig config) : config_(std::move(config)) {}

DhcpPacket DhcpResponder::reply_to(const DhcpPacket& request, MessageType type) const {
  DhcpPacket reply;
  reply.op = BootOp::kReply;
  reply.htype = request.htype;
  reply.hlen = request.hlen;
  reply.xid = request.xid;
  reply.flags = request.flags;
  reply.giaddr = request.giaddr;
  reply.chaddr = request.chaddr;
  reply.options.set_u8(Option::kMessageType, static_cast<std::uint8_t>(type));
  reply.options.set_ipv4(Option::kServerIdentifier, config_.server_address);
  return reply;
}

void DhcpResponder::add_configuration(const DhcpPacket& request, DhcpPacket& reply) const {
  append_in_requested_order(request, configuration_options(config_, config_.search_domains),
                            reply.options);
}

Decision DhcpResponder::decide(const DhcpPacket& request) const {
  Decision decision;
  if (const auto max = request.options.u16(Option::kMaxMessageSize); max && *max >= 576)
    decision.max_payload = std::min<std::size_t>(*max, config_.mtu) - kIpUdpHeaderSize;

  if (request.op != BootOp::kRequest) {
    decision.why = "BOOTREPLY on the server port";
    return decision;
  }
  const auto type = request.options.message_type();
  if (!type) {
    decision.why = "no DHCP message type (plain BOOTP is not served)";
    return decision;
  }
  const auto mac = request.ethernet_address();
  if (!mac || *mac != config_.client_mac) {
    decision.action = Action::kIgnoreForeignClient;
    decision.why = mac ? fmt::format("{} from {}, not the VM's MAC {}", to_string(*type),
                                     format_mac(*mac), format_mac(config_.client_mac))
                       : fmt::format("{} with hardware type {} length {}", to_string(*type),
                                     request.htype, request.hlen);
    return decision;
  }

  const auto server_id = request.options.ipv4(Option::kServerIdentifier);
  const auto requested = request.options.ipv4(Option::kRequestedAddress);
  const address_v4 zero;

  // Destination of OFFER/ACK (RFC 2131 §4.1).
  auto set_destination = [&](address_v4 client_address) {
    ReplyDestination& d = decision.destination;
    if (request.giaddr != zero) {
      d = {DestinationKind::kRelay, request.giaddr, 67, *mac};
    } else if (request.ciaddr != zero) {
      d = {DestinationKind::kClient, request.ciaddr, 68, *mac};
    } else if (request.broadcast() || client_address == zero) {
      d = ReplyDestination{};
    } else {
      d = {DestinationKind::kClientUnconfigured, client_address, 68, *mac};
    }
  };
  // What an OFFER and an ACK both carry: the lease times, the configuration, the client id.
  auto add_lease = [&](DhcpPacket& reply) {
    reply.options.set_u32(Option::kLeaseTime, seconds32(config_.lease_time));
    reply.options.set_u32(Option::kRenewalTime, seconds32(config_.lease_time / 2));
    reply.options.set_u32(Option::kRebindingTime, seconds32(config_.lease_time * 7 / 8));
    add_configuration(request, reply);
    if (const Bytes* client_id = request.options.find(Option::kClientIdentifier))
      reply.options.set(Option::kClientIdentifier, *client_id);
  };
  auto ack = [&](LeaseTransition transition, std::string why) {
    DhcpPacket reply = reply_to(request, MessageType::kAck);
    reply.ciaddr = request.ciaddr;
    reply.yiaddr = config_.client_address;
    add_lease(reply);
    decision.action = Action::kAck;
    decision.transition = transition;
    decision.reply = std::move(reply);
    decision.why = std::move(why);
    set_destination(config_.client_address);
  };
  auto nak = [&](std::string why) {
    DhcpPacket reply = reply_to(request, MessageType::kNak);
    reply.options.set_text(Option::kMessage, why);
    if (const Bytes* client_id = request.options.find(Option::kClientIdentifier))
      reply.options.set(Option::kClientIdentifier, *client_id);
    decision.action = Action::kNak;
    if (request.giaddr != zero) {
      reply.flags |= kBroadcastFlag;  // RFC 2131 §4.3.2: the relay broadcasts it
      decision.destination = {DestinationKind::kRelay, request.giaddr, 67, *mac};
    } else {
      decision.destination = ReplyDestination{};
    }
    decision.reply = std::move(reply);
    decision.why = std::move(why);
  };
  const std::string lease = config_.client_address.to_string();

  switch (*type) {
    case MessageType::kDiscover: {
      DhcpPacket reply = reply_to(request, MessageType::kOffer);
      reply.yiaddr = config_.client_address;
      add_lease(reply);
      decision.action = Action::kOffer;
      decision.reply = std::move(reply);
      decision.why = "offering " + lease;
      set_destination(config_.client_address);
      return decision;
    }
    case MessageType::kRequest:
      if (server_id) {  // SELECTING
        if (*server_id != config_.server_address) {
          decision.action = Action::kIgnoreOtherServer;
          decision.why = fmt::format("client selected server {}", server_id->to_string());
          return decision;
        }
        const address_v4 wanted = requested.value_or(request.ciaddr);
        if (wanted == config_.client_address)
          ack(LeaseTransition::kBound, "selecting: " + lease);
        else
          nak(fmt::format("requested {}, the lease is {}", wanted.to_string(), lease));
        return decision;
      }
      if (requested) {  // INIT-REBOOT
        if (*requested == config_.client_address)
          ack(LeaseTransition::kBound, "init-reboot: " + lease);
        else
          nak(fmt::format("requested {}, the lease is {}", requested->to_string(), lease));
        return decision;
      }
      if (request.ciaddr != zero) {  // RENEWING (unicast) or REBINDING (broadcast)
        if (request.ciaddr == config_.client_address)
          ack(LeaseTransition::kRenewed, "renewing/rebinding: " + lease);
        else
          nak(fmt::format("renewing {}, the lease is {}", request.ciaddr.to_string(), lease));
        return decision;
      }
      decision.why = "DHCPREQUEST with neither server identifier, requested address nor ciaddr";
      return decision;
    case MessageType::kDecline:
      decision.action = Action::kDecline;
      decision.why = fmt::format("the VM reports {} already in use on the link",
                                 requested.value_or(config_.client_address).to_string());
      return decision;
    case MessageType::kRelease:
      if (server_id && *server_id != config_.server_address) {
        decision.action = Action::kIgnoreOtherServer;
        decision.why = fmt::format("release for server {}", server_id->to_string());
        return decision;
      }
      decision.action = Action::kRelease;
      decision.why = "released " + request.ciaddr.to_string();
      return decision;
    case MessageType::kInform: {
      DhcpPacket reply = reply_to(request, MessageType::kAck);
      reply.ciaddr = request.ciaddr;
      add_configuration(request, reply);
      decision.action = Action::kAckInform;
      decision.reply = std::move(reply);
      decision.why = "inform from " + request.ciaddr.to_string();
      set_destination(zero);
      return decision;
    }
    case MessageType::kOffer:
    case MessageType::kAck:
    case MessageType::kNak:
      decision.why = fmt::format("{} sent by a client", to_string(*type));
      return decision;
  }
  return decision;
}

std::optional<EncodedReply> DhcpResponder::encode(const Decision& decision) const {
  if (!decision.reply)
    return std::nullopt;
  if (auto bytes = serialize_dhcp_packet(*decision.reply, decision.max_payload))
    return EncodedReply{std::move(*bytes), false};
  // Too large for the client: shorten the search list, then drop what matters least.
  DhcpPacket reply = *decision.reply;
  if (reply.options.contains(Option::kDomainSearch)) {
    std::vector<std::string> domains = config_.search_domains;
    while (!domains.empty()) {
      domains.pop_back();
      if (domains.empty()) {
        reply.options.erase(code(Option::kDomainSearch));
      } else {
        reply.options.set(Option::kDomainSearch,
                          *encode_domain_search(domains, NameCompression::kOn));
      }
      if (auto bytes = serialize_dhcp_packet(reply, decision.max_payload))
        return EncodedReply{std::move(*bytes), true};
    }
  }
  for (const Option option : {Option::kClasslessRoutes, Option::kDomainName, Option::kHostName}) {
    reply.options.erase(code(option));
    if (auto bytes = serialize_dhcp_packet(reply, decision.max_payload))
      return EncodedReply{std::move(*bytes), true};
  }
  return std::nullopt;
}

}  // namespace berth::dhcp
