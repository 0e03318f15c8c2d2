#include "dhcp/v6/ipv6_server.hpp"

#include <fmt/format.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/raw_protocol.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

#include "common/async.hpp"
#include "dhcp/socket_options.hpp"

namespace berth::dhcp::v6 {
namespace {

namespace asio = boost::asio;
using asio::ip::address_v6;
using asio::ip::udp;
using RawProtocol = asio::generic::raw_protocol;

constexpr int kNdpHopLimit = 255;
constexpr int kInitialAdverts = 3;  // RFC 4861 §10 MAX_INITIAL_RTR_ADVERTISEMENTS
constexpr auto kMinAnswerGap = std::chrono::seconds(1);

address_v6 all_nodes() {
  return asio::ip::make_address_v6("ff02::1");
}
address_v6 all_routers() {
  return asio::ip::make_address_v6("ff02::2");
}
address_v6 all_dhcp_agents() {
  return asio::ip::make_address_v6("ff02::1:2");
}

RawProtocol::endpoint raw_endpoint(const address_v6& address, unsigned ifindex) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  const auto bytes = address.to_bytes();
  std::memcpy(&sin6.sin6_addr, bytes.data(), bytes.size());
  sin6.sin6_scope_id = ifindex;
  return RawProtocol::endpoint(&sin6, sizeof sin6, IPPROTO_ICMPV6);
}

boost::system::error_code set_int(int fd, int level, int name, int value) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
    return {errno, boost::system::system_category()};
  return {};
}

boost::system::error_code join(int fd, const address_v6& group, unsigned ifindex) {
  ipv6_mreq request{};
  const auto bytes = group.to_bytes();
  std::memcpy(&request.ipv6mr_multiaddr, bytes.data(), bytes.size());
  request.ipv6mr_interface = ifindex;
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &request, sizeof request) != 0)
    return {errno, boost::system::system_category()};
  return {};
}

boost::system::error_code only_solicitations(int fd) {
  icmp6_filter filter{};
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
  if (::setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) != 0)
    return {errno, boost::system::system_category()};
  return {};
}

}  // namespace

struct Ipv6Server::Impl {
  Impl(asio::io_context& io_context, Ipv6ServerConfig c, std::shared_ptr<spdlog::logger> logger)
      : io(io_context),
        config(std::move(c)),
        responder(config.dhcp),
        log(std::move(logger)),
        udp_socket(io_context),
        icmp(io_context),
        timer(io_context) {}

  Result<void> start(const std::shared_ptr<Impl>& self);
  Result<void> open_icmp();
  Result<void> open_udp();
  asio::awaitable<void> advertise(std::shared_ptr<Impl> self);
  asio::awaitable<void> listen_solicitations(std::shared_ptr<Impl> self);
  asio::awaitable<void> serve_dhcp(std::shared_ptr<Impl> self);
  void send_advert(std::uint16_t router_lifetime);
  void handle_dhcp(ByteView datagram, const udp::endpoint& sender);
  void account(const Decision& decision);
  void close();

  asio::io_context& io;
  Ipv6ServerConfig config;
  Dhcpv6Responder responder;
  std::shared_ptr<spdlog::logger> log;
  udp::socket udp_socket;
  RawProtocol::socket icmp;
  asio::steady_timer timer;
  unsigned ifindex = 0;
  Ipv6Counters counters;
  std::chrono::steady_clock::time_point last_answer{};
  std::function<void(const address_v6&)> callback;
  bool stopped = false;
};

Result<void> Ipv6Server::Impl::open_icmp() {
  boost::system::error_code ec;
  const std::string& interface = config.dhcp.interface;
  auto fail = [&](std::string_view what) {
    return Error{ErrorKind::kSystem,
                 fmt::format("IPv6: {} on {}: {}", what, interface, ec.message()), ec};
  };
  if (icmp.open(RawProtocol(AF_INET6, IPPROTO_ICMPV6), ec); ec)
    return fail("cannot open a raw ICMPv6 socket (CAP_NET_RAW)");
  const int fd = icmp.native_handle();
  if (ec = bind_to_device(fd, interface); ec)
    return fail("cannot bind the ICMPv6 socket to the device");
  if (ec = only_solicitations(fd); ec)
    return fail("cannot set ICMP6_FILTER");
  for (const int option : {IPV6_MULTICAST_HOPS, IPV6_UNICAST_HOPS})
    if (ec = set_int(fd, IPPROTO_IPV6, option, kNdpHopLimit); ec)
      return fail("cannot set the hop limit to 255");
  if (ec = set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(ifindex)); ec)
    return fail("cannot set IPV6_MULTICAST_IF");
  if (ec = set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0); ec)
    return fail("cannot clear IPV6_MULTICAST_LOOP");
  if (ec = join(fd, all_routers(), ifindex); ec)
    return fail("cannot join ff02::2");
  return {};
}

Result<void> Ipv6Server::Impl::open_udp() {
  boost::system::error_code ec;
  const std::string& interface = config.dhcp.interface;
  auto fail = [&](std::string_view what) {
    return Error{ErrorKind::kSystem,
                 fmt::format("DHCPv6: {} on {}: {}", what, interface, ec.message()), ec};
  };
  if (udp_socket.open(udp::v6(), ec); ec)
    return fail("cannot open a UDP socket");
  if (udp_socket.set_option(asio::ip::v6_only(true), ec); ec)
    return fail("cannot set IPV6_V6ONLY");
  if (udp_socket.set_option(asio::socket_base::reuse_address(true), ec); ec)
    return fail("cannot set SO_REUSEADDR");
  if (ec = bind_to_device(udp_socket.native_handle(), interface); ec)
    return fail("cannot bind the socket to the device (SO_BINDTODEVICE)");
  if (udp_socket.bind(udp::endpoint(address_v6::any(), kServerPort), ec); ec)
    return fail("cannot bind UDP [::]:547");
  if (udp_socket.set_option(asio::ip::multicast::join_group(all_dhcp_agents(), ifindex), ec); ec)
    return fail("cannot join ff02::1:2");
  return {};
}

Result<void> Ipv6Server::Impl::start(const std::shared_ptr<Impl>& self) {
  if (auto valid = validate_config(config.dhcp); !valid)
    return valid.error();
  if (!serialize_router_advertisement(config.advert))
    return invalid_input("IPv6: the router advertisement cannot be encoded (search domains?)");
  ifindex = ::if_nametoindex(config.dhcp.interface.c_str());
  if (ifindex == 0)
    return Error{
        ErrorKind::kNoInterface,
        "IPv6: interface "
            + config.dhcp
                  .interface + " not found; the bridge must exist before the IPv6 server starts",
        std::error_code(errno, std::generic_category())};
  for (auto opened : {open_icmp(), open_udp()})
    if (!opened) {
      close();
      return opened.error();
    }
  log->info("IPv6: advertising {}/{} and serving {} by DHCPv6 on {}",
            config.dhcp.prefix.to_string(), config.dhcp.prefix_length,
            config.dhcp.client_address.to_string(), config.dhcp.interface);
  asio::co_spawn(io, advertise(self), berth::log_exceptions(log, "IPv6: router advertisements"));
  asio::co_spawn(io, listen_solicitations(self),
                 berth::log_exceptions(log, "IPv6: router solicitations"));
  asio::co_spawn(io, serve_dhcp(self), berth::log_exceptions(log, "DHCPv6: the server"));
  return {};
}

void Ipv6Server::Impl::send_advert(std::uint16_t router_lifetime) {
  RouterAdvertisement advert = config.advert;
  advert.router_lifetime = router_lifetime;
  const auto bytes = serialize_router_advertisement(advert);
  boost::system::error_code ec;
  icmp.send_to(asio::buffer(*bytes), raw_endpoint(all_nodes(), ifindex), 0, ec);
  if (ec) {
    ++counters.send_errors;
    log->debug("IPv6: router advertisement not sent: {}", ec.message());
    return;
  }
  ++counters.adverts;
  last_answer = std::chrono::steady_clock::now();
}

asio::awaitable<void> Ipv6Server::Impl::advertise(std::shared_ptr<Impl> /*keep_alive*/) {
  for (int sent = 0; !stopped; ++sent) {
    send_advert(config.advert.router_lifetime);
    timer.expires_after(sent < kInitialAdverts ? config.initial_interval : config.advert_interval);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopped || ec == asio::error::operation_aborted)
      co_return;
  }
}

asio::awaitable<void> Ipv6Server::Impl::listen_solicitations(std::shared_ptr<Impl> /*keep*/) {
  std::array<std::uint8_t, 1500> buffer;
  RawProtocol::endpoint sender;
  while (!stopped) {
    auto [ec, size] = co_await icmp.async_receive_from(asio::buffer(buffer), sender,
                                                       asio::as_tuple(asio::use_awaitable));
    if (stopped || ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      log->warn("IPv6: receive failed: {}", ec.message());
      asio::steady_timer pause(io, std::chrono::milliseconds(200));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (!parse_router_solicitation(ByteView(buffer.data(), size)))
      continue;
    ++counters.solicitations;
    // At most one answer a second: a flood of solicitations costs one advertisement a second.
    if (std::chrono::steady_clock::now() - last_answer >= kMinAnswerGap)
      send_advert(config.advert.router_lifetime);
  }
}

asio::awaitable<void> Ipv6Server::Impl::serve_dhcp(std::shared_ptr<Impl> /*keep_alive*/) {
  std::array<std::uint8_t, 4096> buffer;
  udp::endpoint sender;
  while (!stopped) {
    auto [ec, size] = co_await udp_socket.async_receive_from(asio::buffer(buffer), sender,
                                                             asio::as_tuple(asio::use_awaitable));
    if (stopped || ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      log->warn("DHCPv6: receive failed: {}", ec.message());
      asio::steady_timer pause(io, std::chrono::milliseconds(200));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    handle_dhcp(ByteView(buffer.data(), size), sender);
  }
}

void Ipv6Server::Impl::handle_dhcp(ByteView datagram, const udp::endpoint& sender) {
  ++counters.received;
  const auto request = parse_message(datagram);
  if (!request) {
    ++counters.malformed;
    log->debug("DHCPv6: dropped {} bytes from {}: {}", datagram.size(),
               sender.address().to_string(), to_string(request.error()));
    return;
  }
  const Decision decision = responder.decide(*request);
  account(decision);
  if (!decision.reply)
    return;
  const Bytes reply = serialize_message(*decision.reply);
  boost::system::error_code ec;
  udp_socket.send_to(asio::buffer(reply), sender, 0, ec);
  if (ec) {
    ++counters.send_errors;
    log->warn("DHCPv6: sending to {} failed: {}", sender.address().to_string(), ec.message());
    return;
  }
  if (decision.address_given) {
    log->info("DHCPv6: {} given ({})", config.dhcp.client_address.to_string(), decision.why);
    if (callback)
      callback(config.dhcp.client_address);
  }
}

void Ipv6Server::Impl::account(const Decision& decision) {
  switch (decision.action) {
    case Action::kAdvertise:
      ++counters.advertises;
      break;
    case Action::kReplyRapidCommit:
    case Action::kReplyLease:
      ++(decision.address_given ? counters.leases : counters.replies);
      break;
    case Action::kReplyConfirm:
    case Action::kReplyRelease:
    case Action::kReplyDecline:
    case Action::kReplyInformation:
      ++counters.replies;
      break;
    case Action::kIgnoreOtherServer:
    case Action::kIgnoreInvalid:
    case Action::kIgnoreUnsupported:
      ++counters.ignored;
      break;
  }
  if (decision.action == Action::kReplyDecline)
    log->error("DHCPv6: the VM declined {}: another host on {} uses it",
               config.dhcp.client_address.to_string(), config.dhcp.interface);
  else
    log->debug("DHCPv6: {}", decision.why);
}

void Ipv6Server::Impl::close() {
  boost::system::error_code ignored;
  timer.cancel();
  udp_socket.close(ignored);
  icmp.close(ignored);
}

Ipv6Server::Ipv6Server(asio::io_context& io, Ipv6ServerConfig config,
                       std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_shared<Impl>(io, std::move(config), std::move(log))) {}

Ipv6Server::~Ipv6Server() {
  impl_->stopped = true;
  impl_->callback = nullptr;
  impl_->close();
}

Result<void> Ipv6Server::start() {
  return impl_->start(impl_);
}

void Ipv6Server::stop() {
  if (impl_->stopped)
    return;
  if (impl_->icmp.is_open())
    impl_->send_advert(0);
  impl_->stopped = true;
  impl_->callback = nullptr;
  impl_->close();
}

void Ipv6Server::on_lease(std::function<void(const address_v6&)> callback) {
  impl_->callback = std::move(callback);
}

Ipv6Counters Ipv6Server::counters() const {
  return impl_->counters;
}

void Ipv6Server::register_metrics(MetricsRegistry& registry) const {
  static constexpr CounterField<Ipv6Counters> kCounters[] = {
      {"berth_ipv6_router_solicitations_total", "Router solicitations received.",
       &Ipv6Counters::solicitations},
      {"berth_ipv6_router_adverts_total", "Router advertisements sent.", &Ipv6Counters::adverts},
      {"berth_dhcpv6_received_total", "DHCPv6 datagrams received.", &Ipv6Counters::received},
      {"berth_dhcpv6_malformed_total", "DHCPv6 datagrams that did not parse.",
       &Ipv6Counters::malformed},
      {"berth_dhcpv6_advertises_total", "DHCPv6 ADVERTISEs sent.", &Ipv6Counters::advertises},
      {"berth_dhcpv6_leases_total", "DHCPv6 REPLYs that gave or extended the address.",
       &Ipv6Counters::leases},
      {"berth_dhcpv6_replies_total", "Other DHCPv6 REPLYs (confirm, release, information).",
       &Ipv6Counters::replies},
      {"berth_dhcpv6_ignored_total", "DHCPv6 messages ignored.", &Ipv6Counters::ignored},
      {"berth_ipv6_send_errors_total", "Advertisements and DHCPv6 replies not sent.",
       &Ipv6Counters::send_errors},
  };
  register_counter_fields(registry, kCounters, [this] { return counters(); });
}

}  // namespace berth::dhcp::v6
