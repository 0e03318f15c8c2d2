#include "dhcp/dhcp_server.hpp"

#include <fmt/format.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/datagram_protocol.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <set>

#include "common/async.hpp"
#include "dhcp/ipv4_udp.hpp"
#include "dhcp/socket_options.hpp"

namespace berth::dhcp {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;

constexpr std::uint16_t kServerPort = 67;
constexpr std::size_t kMaxForeignMacsLogged = 64;

// How replies leave the server.
enum class ReplyPath {
  kRawFrames,     // AF_PACKET on the bridge (needs CAP_NET_RAW): unicast to chaddr, RFC 2131 §4.1
  kUdpBroadcast,  // fallback: UDP to 255.255.255.255 (or ciaddr when the client has its address)
};

}  // namespace

struct DhcpServer::Impl {
  Impl(asio::io_context& io_context, DhcpConfig config, std::shared_ptr<spdlog::logger> logger)
      : io(io_context),
        responder(std::move(config)),
        log(std::move(logger)),
        socket(io_context),
        raw(io_context) {}

  Result<void> start(const std::shared_ptr<Impl>& self);
  asio::awaitable<void> serve(std::shared_ptr<Impl> self);
  void handle(ByteView datagram, const udp::endpoint& sender);
  void account(const Decision& decision, const DhcpPacket& request);
  void reply(const Decision& decision);
  void follow_lease(const Decision& decision);
  void send(const ReplyDestination& destination, ByteView payload);
  void notify(LeaseEventKind kind);
  void close();

  asio::io_context& io;
  DhcpResponder responder;
  std::shared_ptr<spdlog::logger> log;
  udp::socket socket;
  asio::generic::datagram_protocol::socket raw;
  unsigned ifindex = 0;
  ReplyPath path = ReplyPath::kRawFrames;
  DhcpCounters counters;
  std::function<void(const LeaseEvent&)> callback;
  std::set<MacAddress> foreign_macs;  // logged once each, at info
  bool stopped = false;
};

Result<void> DhcpServer::Impl::start(const std::shared_ptr<Impl>& self) {
  const DhcpConfig& config = responder.config();
  if (auto valid = validate_config(config); !valid)
    return valid.error();
  ifindex = ::if_nametoindex(config.interface.c_str());
  if (ifindex == 0)
    return Error{
        ErrorKind::kNoInterface,
        "DHCP: interface "
            + config.interface + " not found; the bridge must exist before the DHCP server starts",
        std::error_code(errno, std::generic_category())};
  boost::system::error_code ec;
  auto fail = [&](std::string_view what) {
    close();
    return Error{ErrorKind::kSystem,
                 fmt::format("DHCP: {} on {}: {}", what, config.interface, ec.message()), ec};
  };
  if (socket.open(udp::v4(), ec); ec)
    return fail("cannot open a UDP socket");
  if (socket.set_option(asio::socket_base::reuse_address(true), ec); ec)
    return fail("cannot set SO_REUSEADDR");
  if (socket.set_option(asio::socket_base::broadcast(true), ec); ec)
    return fail("cannot set SO_BROADCAST");
  if (ec = bind_to_device(socket.native_handle(), config.interface); ec)
    return fail("cannot bind the socket to the device (SO_BINDTODEVICE)");
  if (socket.bind(udp::endpoint(asio::ip::address_v4::any(), kServerPort), ec); ec)
    return fail("cannot bind UDP 0.0.0.0:67");
  // Protocol 0: this packet socket only sends, it receives nothing.
  if (raw.open(asio::generic::datagram_protocol(AF_PACKET, 0), ec); ec) {
    path = ReplyPath::kUdpBroadcast;
    log->warn("DHCP: no packet socket ({}); replies go out as UDP broadcasts", ec.message());
  }
  log->info("DHCP: serving {} to {} on {} (server {}, lease {}s, replies as {})",
            config.client_address.to_string(), format_mac(config.client_mac), config.interface,
            config.server_address.to_string(), config.lease_time.count(),
            path == ReplyPath::kRawFrames ? "raw frames" : "UDP broadcasts");
  asio::co_spawn(io, serve(self), berth::log_exceptions(log, "DHCP: the server"));
  return {};
}

asio::awaitable<void> DhcpServer::Impl::serve(std::shared_ptr<Impl> /*keep_alive*/) {
  std::array<std::uint8_t, 4096> buffer;
  udp::endpoint sender;
  while (!stopped) {
    auto [ec, size] = co_await socket.async_receive_from(asio::buffer(buffer), sender,
                                                         asio::as_tuple(asio::use_awaitable));
    if (stopped || ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      log->warn("DHCP: receive failed: {}", ec.message());
      asio::steady_timer pause(io, std::chrono::milliseconds(200));  // no busy loop on errors
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    handle(ByteView(buffer.data(), size), sender);
  }
}

// One datagram on port 67: parsed, decided, counted, answered, and the lease followed.
void DhcpServer::Impl::handle(ByteView datagram, const udp::endpoint& sender) {
  ++counters.received;
  auto request = parse_dhcp_packet(datagram);
  if (!request) {
    ++counters.malformed;
    log->debug("DHCP: dropped {} bytes from {}: {}", datagram.size(), sender.address().to_string(),
               to_string(request.error()));
    return;
  }
  const Decision decision = responder.decide(*request);
  account(decision, *request);
  if (decision.reply)
    reply(decision);
  follow_lease(decision);
}

// Counts the decision and logs it: what needs the operator at info or above, the rest at debug.
void DhcpServer::Impl::account(const Decision& decision, const DhcpPacket& request) {
  const DhcpConfig& config = responder.config();
  switch (decision.action) {
    case Action::kOffer:
      ++counters.offers;
      break;
    case Action::kAck:
      ++counters.acks;
      break;
    case Action::kAckInform:
      ++counters.informs;
      break;
    case Action::kNak:
      ++counters.naks;
      log->info("DHCP: NAK to {}: {}", format_mac(config.client_mac), decision.why);
      break;
    case Action::kRelease:
      ++counters.releases;
      log->info("DHCP: the VM {}", decision.why);
      break;
    case Action::kDecline:
      ++counters.declines;
      log->error(
          "DHCP: DECLINE: {}; another host on {} uses it; check for a second VM or a "
          "static address on the bridge",
          decision.why, config.interface);
      break;
    case Action::kIgnoreForeignClient:
      ++counters.ignored;
      if (const auto mac = request.ethernet_address();
          mac && foreign_macs.size() < kMaxForeignMacsLogged && foreign_macs.insert(*mac).second)
        log->info("DHCP: ignoring {}", decision.why);
      else
        log->debug("DHCP: ignoring {}", decision.why);
      break;
    case Action::kIgnoreOtherServer:
    case Action::kIgnoreUnsupported:
      ++counters.ignored;
      log->debug("DHCP: ignoring: {}", decision.why);
      break;
  }
}

// Encodes decision.reply within the client's size limit and sends it.
void DhcpServer::Impl::reply(const Decision& decision) {
  const auto encoded = responder.encode(decision);
  if (!encoded) {
    ++counters.send_errors;
    log->error("DHCP: reply to {} does not fit in {} bytes",
               format_mac(responder.config().client_mac), decision.max_payload);
    return;
  }
  if (encoded->trimmed)
    log->warn("DHCP: options dropped to fit the client's {}-byte limit (long search list?)",
              decision.max_payload);
  log->debug("DHCP: {} ({}), {} bytes to {}", to_string(decision.action), decision.why,
             encoded->payload.size(), decision.destination.address.to_string());
  send(decision.destination, encoded->payload);
}

// Tells the lease callback what the decision did to the lease.
void DhcpServer::Impl::follow_lease(const Decision& decision) {
  const DhcpConfig& config = responder.config();
  switch (decision.transition) {
    case LeaseTransition::kBound:
      log->info("DHCP: lease {} given to {} ({})", config.client_address.to_string(),
                format_mac(config.client_mac), decision.why);
      notify(LeaseEventKind::kBound);
      break;
    case LeaseTransition::kRenewed:
      log->debug("DHCP: lease {} renewed", config.client_address.to_string());
      notify(LeaseEventKind::kRenewed);
      break;
    case LeaseTransition::kNone:
      if (decision.action == Action::kRelease)
        notify(LeaseEventKind::kReleased);
      else if (decision.action == Action::kDecline)
        notify(LeaseEventKind::kDeclined);
      else if (decision.action == Action::kNak)
        notify(LeaseEventKind::kNaked);
      break;
  }
}

void DhcpServer::Impl::send(const ReplyDestination& destination, ByteView payload) {
  const DhcpConfig& config = responder.config();
  boost::system::error_code ec;
  if (path == ReplyPath::kRawFrames) {
    const Bytes datagram = build_ipv4_udp(
        {config.server_address, kServerPort, destination.address, destination.port}, payload);
    sockaddr_ll link{};
    link.sll_family = AF_PACKET;
    link.sll_protocol = htons(ETH_P_IP);
    link.sll_ifindex = static_cast<int>(ifindex);
    link.sll_halen = 6;
    std::memcpy(link.sll_addr, destination.mac.data(), 6);
    raw.send_to(asio::buffer(datagram),
                asio::generic::datagram_protocol::endpoint(&link, sizeof link), 0, ec);
  } else {
    const auto address = destination.kind == DestinationKind::kClient
                             ? destination.address
                             : asio::ip::address_v4::broadcast();
    socket.send_to(asio::buffer(payload.data(), payload.size()),
                   udp::endpoint(address, destination.port), 0, ec);
  }
  if (ec) {
    ++counters.send_errors;
    log->warn("DHCP: sending to {} failed: {}", destination.address.to_string(), ec.message());
  }
}

void DhcpServer::Impl::notify(LeaseEventKind kind) {
  const DhcpConfig& config = responder.config();
  if (callback)
    callback(LeaseEvent{kind, config.client_address, config.client_mac, config.lease_time});
}

void DhcpServer::Impl::close() {
  boost::system::error_code ignored;
  socket.close(ignored);
  raw.close(ignored);
}

DhcpServer::DhcpServer(asio::io_context& io, DhcpConfig config, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_shared<Impl>(io, std::move(config), std::move(log))) {}

DhcpServer::~DhcpServer() {
  stop();
}

Result<void> DhcpServer::start() {
  return impl_->start(impl_);
}

void DhcpServer::stop() {
  if (impl_->stopped)
    return;
  impl_->stopped = true;
  impl_->callback = nullptr;
  impl_->close();
}

void DhcpServer::on_lease(std::function<void(const LeaseEvent&)> callback) {
  impl_->callback = std::move(callback);
}

DhcpCounters DhcpServer::counters() const {
  return impl_->counters;
}

}  // namespace berth::dhcp

namespace berth::dhcp {

void DhcpServer::register_metrics(MetricsRegistry& registry) const {
  static constexpr CounterField<DhcpCounters> kCounters[] = {
      {"berth_dhcp_received_total", "DHCP datagrams received.", &DhcpCounters::received},
      {"berth_dhcp_malformed_total", "DHCP datagrams that did not parse.",
       &DhcpCounters::malformed},
      {"berth_dhcp_offers_total", "DHCPOFFERs sent.", &DhcpCounters::offers},
      {"berth_dhcp_acks_total", "DHCPACKs sent (leases given or extended).", &DhcpCounters::acks},
      {"berth_dhcp_informs_total", "DHCPACKs sent in answer to DHCPINFORM.",
       &DhcpCounters::informs},
      {"berth_dhcp_naks_total", "DHCPNAKs sent.", &DhcpCounters::naks},
      {"berth_dhcp_releases_total", "DHCPRELEASEs received.", &DhcpCounters::releases},
      {"berth_dhcp_declines_total", "DHCPDECLINEs received.", &DhcpCounters::declines},
      {"berth_dhcp_ignored_total", "DHCP messages ignored (other clients...).",
       &DhcpCounters::ignored},
      {"berth_dhcp_send_errors_total", "DHCP replies that could not be encoded or sent.",
       &DhcpCounters::send_errors},
  };
  register_counter_fields(registry, kCounters, [this] { return counters(); });
}

}  // namespace berth::dhcp
