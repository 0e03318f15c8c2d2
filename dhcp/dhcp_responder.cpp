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

namespace {

const address_v4 kUnspecified;

DhcpPacket reply_to(const DhcpConfig& config, const DhcpPacket& request, MessageType type) {
  DhcpPacket reply;
  reply.op = BootOp::kReply;
  reply.htype = request.htype;
  reply.hlen = request.hlen;
  reply.xid = request.xid;
  reply.flags = request.flags;
  reply.chaddr = request.chaddr;
  reply.options.set_u8(Option::kMessageType, static_cast<std::uint8_t>(type));
  reply.options.set_ipv4(Option::kServerIdentifier, config.server_address);
  return reply;
}

void add_configuration(const DhcpConfig& config, const DhcpPacket& request, DhcpPacket& reply) {
  append_in_requested_order(request, configuration_options(config, config.search_domains),
                            reply.options);
}

void echo_client_id(const DhcpPacket& request, DhcpPacket& reply) {
  if (const Bytes* client_id = request.options.find(Option::kClientIdentifier))
    reply.options.set(Option::kClientIdentifier, *client_id);
}

// What an OFFER and an ACK both carry: the lease times, the configuration, the client id.
void add_lease(const DhcpConfig& config, const DhcpPacket& request, DhcpPacket& reply) {
  reply.options.set_u32(Option::kLeaseTime, seconds32(config.lease_time));
  reply.options.set_u32(Option::kRenewalTime, seconds32(config.lease_time / 2));
  reply.options.set_u32(Option::kRebindingTime, seconds32(config.lease_time * 7 / 8));
  add_configuration(config, request, reply);
  echo_client_id(request, reply);
}

// Where an OFFER or ACK for `client_address` goes (RFC 2131 §4.1; relayed requests are ignored).
ReplyDestination destination_of(const DhcpPacket& request, const MacAddress& mac,
                                address_v4 client_address) {
  if (request.ciaddr != kUnspecified)
    return {DestinationKind::kClient, request.ciaddr, 68, mac};
  if (request.broadcast() || client_address == kUnspecified)
    return ReplyDestination{};
  return {DestinationKind::kClientUnconfigured, client_address, 68, mac};
}

// The largest reply payload the client accepts: option 57 (when sane) within the MTU.
std::size_t max_payload_of(const DhcpPacket& request, std::uint16_t mtu) {
  if (const auto max = request.options.u16(Option::kMaxMessageSize); max && *max >= 576)
    return std::min<std::size_t>(*max, mtu) - kIpUdpHeaderSize;
  return kDefaultMaxMessage - kIpUdpHeaderSize;
}

Decision no_reply(Action action, std::string why) {
  Decision decision;
  decision.action = action;
  decision.why = std::move(why);
  return decision;
}

Decision with_reply(Action action, DhcpPacket reply, ReplyDestination destination,
                    std::string why) {
  Decision decision = no_reply(action, std::move(why));
  decision.reply = std::move(reply);
  decision.destination = destination;
  return decision;
}

// Why a request is not for this server to answer, or nullopt when it is (it comes from the VM).
std::optional<Decision> screen(const DhcpConfig& config, const DhcpPacket& request) {
  if (request.op != BootOp::kRequest)
    return no_reply(Action::kIgnoreUnsupported, "BOOTREPLY on the server port");
  const auto type = request.options.message_type();
  if (!type)
    return no_reply(Action::kIgnoreUnsupported, "no DHCP message type (plain BOOTP is not served)");
  const auto mac = request.ethernet_address();
  if (!mac)
    return no_reply(Action::kIgnoreForeignClient,
                    fmt::format("{} with hardware type {} length {}", to_string(*type),
                                request.htype, request.hlen));
  if (*mac != config.client_mac)
    return no_reply(Action::kIgnoreForeignClient,
                    fmt::format("{} from {}, not the VM's MAC {}", to_string(*type),
                                format_mac(*mac), format_mac(config.client_mac)));
  if (request.giaddr != kUnspecified)  // the VM is directly attached: no relay is on the link
    return no_reply(Action::kIgnoreUnsupported,
                    fmt::format("{} relayed by {}", to_string(*type), request.giaddr.to_string()));
  return std::nullopt;
}

Decision offer(const DhcpConfig& config, const DhcpPacket& request, const MacAddress& mac) {
  DhcpPacket reply = reply_to(config, request, MessageType::kOffer);
  reply.yiaddr = config.client_address;
  add_lease(config, request, reply);
  return with_reply(Action::kOffer, std::move(reply),
                    destination_of(request, mac, config.client_address),
                    "offering " + config.client_address.to_string());
}

Decision ack(const DhcpConfig& config, const DhcpPacket& request, const MacAddress& mac,
             LeaseTransition transition, std::string why) {
  DhcpPacket reply = reply_to(config, request, MessageType::kAck);
  reply.ciaddr = request.ciaddr;
  reply.yiaddr = config.client_address;
  add_lease(config, request, reply);
  Decision decision =
      with_reply(Action::kAck, std::move(reply),
                 destination_of(request, mac, config.client_address), std::move(why));
  decision.transition = transition;
  return decision;
}

Decision nak(const DhcpConfig& config, const DhcpPacket& request, std::string why) {
  DhcpPacket reply = reply_to(config, request, MessageType::kNak);
  reply.options.set_text(Option::kMessage, why);
  echo_client_id(request, reply);
  return with_reply(Action::kNak, std::move(reply), ReplyDestination{}, std::move(why));
}

// A DHCPREQUEST in each client state of RFC 2131 §4.3.2.
Decision answer_request(const DhcpConfig& config, const DhcpPacket& request,
                        const MacAddress& mac) {
  const auto server_id = request.options.ipv4(Option::kServerIdentifier);
  const auto requested = request.options.ipv4(Option::kRequestedAddress);
  const std::string lease = config.client_address.to_string();
  if (server_id) {  // SELECTING
    if (*server_id != config.server_address)
      return no_reply(Action::kIgnoreOtherServer,
                      fmt::format("client selected server {}", server_id->to_string()));
    const address_v4 wanted = requested.value_or(request.ciaddr);
    if (wanted == config.client_address)
      return ack(config, request, mac, LeaseTransition::kBound, "selecting: " + lease);
    return nak(config, request,
               fmt::format("requested {}, the lease is {}", wanted.to_string(), lease));
  }
  if (requested) {  // INIT-REBOOT
    if (*requested == config.client_address)
      return ack(config, request, mac, LeaseTransition::kBound, "init-reboot: " + lease);
    return nak(config, request,
               fmt::format("requested {}, the lease is {}", requested->to_string(), lease));
  }
  if (request.ciaddr != kUnspecified) {  // RENEWING (unicast) or REBINDING (broadcast)
    if (request.ciaddr == config.client_address)
      return ack(config, request, mac, LeaseTransition::kRenewed, "renewing/rebinding: " + lease);
    return nak(config, request,
               fmt::format("renewing {}, the lease is {}", request.ciaddr.to_string(), lease));
  }
  return no_reply(Action::kIgnoreUnsupported,
                  "DHCPREQUEST with neither server identifier, requested address nor ciaddr");
}

Decision decline(const DhcpConfig& config, const DhcpPacket& request) {
  const auto requested = request.options.ipv4(Option::kRequestedAddress);
  return no_reply(Action::kDecline,
                  fmt::format("the VM reports {} already in use on the link",
                              requested.value_or(config.client_address).to_string()));
}

Decision release(const DhcpConfig& config, const DhcpPacket& request) {
  if (const auto server_id = request.options.ipv4(Option::kServerIdentifier);
      server_id && *server_id != config.server_address)
    return no_reply(Action::kIgnoreOtherServer,
                    fmt::format("release for server {}", server_id->to_string()));
  return no_reply(Action::kRelease, "released " + request.ciaddr.to_string());
}

Decision inform(const DhcpConfig& config, const DhcpPacket& request, const MacAddress& mac) {
  DhcpPacket reply = reply_to(config, request, MessageType::kAck);
  reply.ciaddr = request.ciaddr;
  add_configuration(config, request, reply);
  return with_reply(Action::kAckInform, std::move(reply),
                    destination_of(request, mac, kUnspecified),
                    "inform from " + request.ciaddr.to_string());
}

// What the rules say to a request that passed screen().
Decision answer(const DhcpConfig& config, const DhcpPacket& request) {
  const MessageType type = *request.options.message_type();
  const MacAddress mac = *request.ethernet_address();
  switch (type) {
    case MessageType::kDiscover:
      return offer(config, request, mac);
    case MessageType::kRequest:
      return answer_request(config, request, mac);
    case MessageType::kDecline:
      return decline(config, request);
    case MessageType::kRelease:
      return release(config, request);
    case MessageType::kInform:
      return inform(config, request, mac);
    case MessageType::kOffer:
    case MessageType::kAck:
    case MessageType::kNak:
      break;
  }
  return no_reply(Action::kIgnoreUnsupported, fmt::format("{} sent by a client", to_string(type)));
}

}  // namespace

DhcpResponder::DhcpResponder(DhcpConfig config) : config_(std::move(config)) {}

Decision DhcpResponder::decide(const DhcpPacket& request) const {
  std::optional<Decision> ignored = screen(config_, request);
  Decision decision = ignored ? std::move(*ignored) : answer(config_, request);
  decision.max_payload = max_payload_of(request, config_.mtu);
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
