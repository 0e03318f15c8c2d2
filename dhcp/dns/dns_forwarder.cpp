#include "dhcp/dns/dns_forwarder.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <tuple>

#include "common/async.hpp"
#include "dhcp/dns/dns_message.hpp"
#include "dhcp/random_source.hpp"
#include "dhcp/socket_options.hpp"

namespace berth::dhcp {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Identifies a guest query in flight, to drop its retransmits.
struct PendingKey {
  asio::ip::address_v6::bytes_type address;  // an IPv4 client's as ::ffff:a.b.c.d
  std::uint16_t port;
  std::uint16_t id;
  std::uint16_t type;
  std::uint16_t qclass;
  std::string name;  // lower-cased wire form
  auto operator<=>(const PendingKey&) const = default;
};

PendingKey pending_key(const udp::endpoint& client, const dns::Message& query) {
  std::string name(query.question->name.begin(), query.question->name.end());
  for (char& c : name)
    c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  const auto& address = client.address();
  return {(address.is_v4() ? asio::ip::make_address_v6(asio::ip::v4_mapped, address.to_v4())
                           : address.to_v6())
              .to_bytes(),
          client.port(),
          query.header.id,
          query.question->type,
          query.question->qclass,
          std::move(name)};
}

struct Answer {
  Bytes bytes;
  dns::Message view;
};

// How an upstream exchange ended short of an answer: the step that failed and why.
struct Failure {
  std::string_view step;
  boost::system::error_code ec;
};

// What an upstream exchange produced: `value`, or else `failure`. Not a std::variant: Asio's
// awaitable operator || flattens a variant result into its own, which with_deadline cannot take.
template <class T>
struct Tried {
  std::optional<T> value;
  Failure failure;
};

struct TcpSession {
  explicit TcpSession(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  std::deque<Bytes> outbox;  // answers waiting to be written, each with its length prefix
  bool writing = false;
  bool reading_done = false;
  std::size_t in_flight = 0;
};

// A query waiting on a pooled upstream socket: the reply the reader hands over, or the error
// that ended the socket. The timer is the try's deadline; the reader cancels it to wake the query.
struct UdpWaiter {
  UdpWaiter(const asio::any_io_executor& executor, std::uint16_t query_id, dns::Question asked)
      : id(query_id), question(std::move(asked)), timer(executor) {}
  std::uint16_t id;
  dns::Question question;
  asio::steady_timer timer;
  std::optional<Answer> answer;
  boost::system::error_code error;
};

// One socket of the upstream pool: connected to one upstream (the kernel drops datagrams from any
// other source and reports ICMP errors), from a source port the kernel picked at random. It takes
// at most kQueriesPerSocket queries, then retires; it is closed as soon as no query waits on it,
// so a lightly loaded forwarder uses a fresh port for every query.
struct UpstreamSocket {
  UpstreamSocket(asio::io_context& io, udp::endpoint to) : socket(io), upstream(std::move(to)) {}
  udp::socket socket;
  udp::endpoint upstream;
  std::map<std::uint16_t, UdpWaiter*> waiting;  // by upstream ID; the waiters live in ask_udp
  unsigned queries = 0;                         // sent on it so far
  bool retired = false;                         // takes no new query
};

// Upstream sockets open at once per upstream, and queries per socket before it is replaced. Under
// load a query's source port is one of up to kSocketsPerUpstream random ports that keep changing
// (like dnsmasq's 64 random sockets); a socket per query costs about a third of the rate.
constexpr std::size_t kSocketsPerUpstream = 64;
constexpr unsigned kQueriesPerSocket = 100;
// Replies read per system call, and the largest accepted: the queries advertise
// dns::kAdvertisedUdpSize, and a conforming upstream sends no more over UDP.
constexpr std::size_t kReplyBatch = 16;
constexpr std::size_t kReplyMax = 4096;
static_assert(kReplyMax >= dns::kAdvertisedUdpSize);

// `message` with the two-byte length in front, as DNS over TCP frames it (RFC 1035 §4.2.2).
Bytes tcp_frame(ByteView message) {
  Bytes framed(2 + message.size());
  store_u16(framed, 0, static_cast<std::uint16_t>(message.size()));
  std::copy(message.begin(), message.end(), framed.begin() + 2);
  return framed;
}

// Connects `socket` to `upstream`, sends `message` and reads one framed reply. Without side
// effects when cancelled by a deadline.
asio::awaitable<Tried<Bytes>> exchange_tcp(tcp::socket& socket, tcp::endpoint upstream,
                                           Bytes message) {
  auto [connect_ec] = co_await socket.async_connect(upstream, use_tuple);
  if (connect_ec)
    co_return Tried<Bytes>{std::nullopt, Failure{"connect", connect_ec}};
  const Bytes framed = tcp_frame(message);
  auto [write_ec, written] = co_await asio::async_write(socket, asio::buffer(framed), use_tuple);
  if (write_ec)
    co_return Tried<Bytes>{std::nullopt, Failure{"write", write_ec}};
  std::array<std::uint8_t, 2> length{};
  auto [length_ec, length_read] =
      co_await asio::async_read(socket, asio::buffer(length), use_tuple);
  if (length_ec)
    co_return Tried<Bytes>{std::nullopt, Failure{"read", length_ec}};
  Bytes reply(load_u16(length, 0));
  auto [body_ec, body_read] = co_await asio::async_read(socket, asio::buffer(reply), use_tuple);
  if (body_ec)
    co_return Tried<Bytes>{std::nullopt, Failure{"read", body_ec}};
  co_return Tried<Bytes>{std::move(reply), {}};
}

std::string endpoint_text(const udp::endpoint& endpoint) {
  return endpoint.address().is_v6()
             ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
             : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

// The clients a forwarder answers, for the log.
std::string clients_text(const DnsConfig& config) {
  return config.listen_address.is_v6() ? config.allowed_clients6.to_string()
                                       : config.allowed_clients.to_string();
}

}  // namespace

Result<void> validate_config(const DnsConfig& config) {
  if (config.upstreams.empty())
    return invalid_input(
        "DNS: no upstream name server (resolv.conf has no usable nameserver line)");
  if (config.upstreams.size() > 3)
    return invalid_input(
        fmt::format("DNS: {} upstreams given; at most 3 are used (as by the libc resolver)",
                    config.upstreams.size()));
  for (const auto& upstream : config.upstreams) {
    if (upstream.address().is_unspecified() || upstream.port() == 0)
      return invalid_input(
          fmt::format("DNS: upstream {} is not a usable address", endpoint_text(upstream)));
  }
  if (config.attempt_timeout < std::chrono::milliseconds(100)
      || config.attempt_timeout >= std::chrono::seconds(5))
    return invalid_input(
        fmt::format("DNS: per-try timeout {}ms is not in 100..4999 ms (the guest waits 5 s)",
                    config.attempt_timeout.count()));
  if (config.attempts < 1 || config.attempts > 6)
    return invalid_input(fmt::format("DNS: {} tries per query is not in 1..6", config.attempts));
  if (config.max_in_flight == 0 || config.max_tcp_connections == 0)
    return invalid_input("DNS: max_in_flight and max_tcp_connections must be positive");
  return {};
}

struct DnsForwarder::Impl : std::enable_shared_from_this<DnsForwarder::Impl> {
  Impl(asio::io_context& io_context, DnsConfig dns_config, std::shared_ptr<spdlog::logger> logger)
      : io(io_context),
        config(std::move(dns_config)),
        log(std::move(logger)),
        listener(io_context),
        acceptor(io_context) {}

  Result<void> start(const std::shared_ptr<Impl>& self);
  void close();
  bool allowed(const asio::ip::address& address) const;

  // Each coroutine takes `self` by value: the Impl lives until the last of them ends, also after
  // stop() (upstream tries end at their timeout; their answers are then dropped).

  asio::awaitable<void> serve_udp(std::shared_ptr<Impl> self);
  void handle_datagram(ByteView datagram, const udp::endpoint& client);
  asio::awaitable<void> answer_udp(std::shared_ptr<Impl> self, Bytes query, dns::Message view,
                                   udp::endpoint client, PendingKey key);
  void reply_udp(ByteView answer, const udp::endpoint& client);

  asio::awaitable<void> serve_tcp(std::shared_ptr<Impl> self);
  asio::awaitable<void> read_session(std::shared_ptr<Impl> self,
                                     std::shared_ptr<TcpSession> session);
  asio::awaitable<void> answer_tcp(std::shared_ptr<Impl> self, std::shared_ptr<TcpSession> session,
                                   Bytes query, dns::Message view);
  void queue_tcp(const std::shared_ptr<TcpSession>& session, ByteView answer);
  asio::awaitable<void> write_session(std::shared_ptr<Impl> self,
                                      std::shared_ptr<TcpSession> session);
  void maybe_close(const std::shared_ptr<TcpSession>& session);

  // The guest's answer to `query`: from the first upstream that answers, SERVFAIL if none does.
  asio::awaitable<Bytes> resolve(Bytes query, dns::Message view, dns::Transport transport);
  // One UDP try of the guest's `query` (parsed as `view`; both live in the caller's frame) at
  // `upstream`, over a pooled socket with a fresh random ID.
  asio::awaitable<std::optional<Answer>> ask_udp(udp::endpoint upstream, const Bytes& query,
                                                 const dns::Message& view);
  // A socket of the pool for `upstream` (a new one while there are fewer than
  // kSocketsPerUpstream), or null with `ec` set when none could be opened.
  std::shared_ptr<UpstreamSocket> upstream_socket(const udp::endpoint& upstream,
                                                  boost::system::error_code& ec);
  std::shared_ptr<UpstreamSocket> open_upstream_socket(const udp::endpoint& upstream,
                                                       boost::system::error_code& ec);
  std::uint16_t unused_id(const UpstreamSocket& socket);
  // Ends `socket`'s use by one query: closes it when no query waits on it any more.
  void release(const std::shared_ptr<UpstreamSocket>& socket);
  void retire(UpstreamSocket& socket);
  asio::awaitable<void> read_upstream(std::shared_ptr<Impl> self,
                                      std::shared_ptr<UpstreamSocket> socket);
  // Up to kReplyBatch replies from `socket` in one recvmmsg, each delivered; how many there were
  // (0 with `ec` set on an error other than "nothing queued").
  std::size_t receive_replies(UpstreamSocket& socket, boost::system::error_code& ec);
  void deliver(UpstreamSocket& socket, const udp::endpoint& from, ByteView datagram);
  // Wakes every query waiting on `socket` with `ec`, and retires it.
  void fail_waiting(UpstreamSocket& socket, boost::system::error_code ec);
  void close_upstream_sockets();
  asio::awaitable<std::optional<Answer>> ask_tcp(tcp::endpoint upstream, Bytes message,
                                                 std::uint16_t id, dns::Question question);
  // The value of an upstream try that ended in time without a failure; otherwise counts and logs
  // how it ended (`limited`: nullopt when the per-try timeout passed) and returns nullopt.
  template <class T>
  std::optional<T> outcome(std::optional<Tried<T>> limited, const std::string& upstream) {
    if (!limited) {
      ++counters.upstream_timeouts;
      log->debug("DNS: {} did not answer in {}ms", upstream, config.attempt_timeout.count());
      return std::nullopt;
    }
    if (!limited->value) {
      const Failure& failure = limited->failure;
      if (failure.ec == asio::error::timed_out)
        ++counters.upstream_timeouts;
      else
        ++counters.upstream_errors;
      log->debug("DNS: {} {}: {}", upstream, failure.step, failure.ec.message());
    }
    return std::move(limited->value);
  }
  void spawn(asio::awaitable<void> task, std::string what) {
    asio::co_spawn(io, std::move(task), berth::log_exceptions(log, std::move(what)));
  }

  asio::io_context& io;
  DnsConfig config;
  std::shared_ptr<spdlog::logger> log;
  udp::socket listener;
  tcp::acceptor acceptor;
  RandomSource random;
  DnsCounters counters;
  std::set<PendingKey> pending;  // UDP queries in flight
  std::size_t in_flight = 0;     // UDP and TCP queries in flight
  std::set<std::shared_ptr<TcpSession>> sessions;
  std::size_t preferred = 0;  // the upstream that answered last
  // The upstream pool: per upstream, the sockets that still take queries (retired ones live on in
  // the coroutines that use them until their last query ends).
  std::map<udp::endpoint, std::vector<std::shared_ptr<UpstreamSocket>>> upstream_pool;
  std::set<std::shared_ptr<UpstreamSocket>> upstream_open;  // every open pool socket
  Bytes upstream_buffer = Bytes(kReplyBatch * kReplyMax);   // the readers' receive buffers
  bool stopped = false;
};

Result<void> DnsForwarder::Impl::start(const std::shared_ptr<Impl>& self) {
  if (auto valid = validate_config(config); !valid)
    return valid.error();
  const udp::endpoint udp_endpoint(config.listen_address, config.listen_port);
  const std::string where = fmt::format("{}{}", endpoint_text(udp_endpoint),
                                        config.interface.empty() ? "" : " on " + config.interface);
  boost::system::error_code ec;
  auto fail = [&](std::string_view what) {
    close();
    return Error{ErrorKind::kSystem, fmt::format("DNS: {} {}: {}", what, where, ec.message()), ec};
  };
  if (listener.open(udp_endpoint.protocol(), ec); ec)
    return fail("cannot open UDP");
  if (config.listen_address.is_v6()) {
    if (listener.set_option(asio::ip::v6_only(true), ec); ec)
      return fail("cannot set IPV6_V6ONLY for UDP");
  }
  if (listener.set_option(asio::socket_base::reuse_address(true), ec); ec)
    return fail("cannot set SO_REUSEADDR for UDP");
  if (!config.interface.empty()) {
    if (ec = bind_to_device(listener.native_handle(), config.interface); ec)
      return fail("cannot bind UDP to the device");
  }
  if (listener.bind(udp_endpoint, ec); ec)
    return fail("cannot bind UDP");
  if (listener.non_blocking(true, ec); ec)
    return fail("cannot make UDP non-blocking");

  if (acceptor.open(udp_endpoint.address().is_v6() ? tcp::v6() : tcp::v4(), ec); ec)
    return fail("cannot open TCP");
  if (config.listen_address.is_v6()) {
    if (acceptor.set_option(asio::ip::v6_only(true), ec); ec)
      return fail("cannot set IPV6_V6ONLY for TCP");
  }
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec)
    return fail("cannot set SO_REUSEADDR for TCP");
  if (!config.interface.empty()) {
    if (ec = bind_to_device(acceptor.native_handle(), config.interface); ec)
      return fail("cannot bind TCP to the device");
  }
  if (acceptor.bind(tcp::endpoint(config.listen_address, config.listen_port), ec); ec)
    return fail("cannot bind TCP");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec)
    return fail("cannot listen on TCP");

  std::string upstreams;
  for (const auto& upstream : config.upstreams)
    upstreams += (upstreams.empty() ? "" : ", ") + endpoint_text(upstream);
  log->info("DNS: forwarding {} (UDP and TCP, clients {}) to {}", where, clients_text(config),
            upstreams);
  spawn(serve_udp(self), "DNS: the UDP listener");
  spawn(serve_tcp(self), "DNS: the TCP listener");
  return {};
}

void DnsForwarder::Impl::close() {
  boost::system::error_code ignored;
  listener.close(ignored);
  acceptor.close(ignored);
  for (const auto& session : sessions)
    session->socket.close(ignored);
  sessions.clear();
  close_upstream_sockets();
}

bool DnsForwarder::Impl::allowed(const asio::ip::address& address) const {
  if (config.listen_address.is_v6())
    return address.is_v6()
           && asio::ip::network_v6(address.to_v6(), config.allowed_clients6.prefix_length())
                      .canonical()
                  == config.allowed_clients6.canonical();
  if (!address.is_v4())
    return false;
  const std::uint32_t mask = config.allowed_clients.netmask().to_uint();
  return (address.to_v4().to_uint() & mask) == (config.allowed_clients.address().to_uint() & mask);
}

// ---- UDP

asio::awaitable<void> DnsForwarder::Impl::serve_udp(std::shared_ptr<Impl> /*keep_alive*/) {
  std::vector<std::uint8_t> buffer(65536);
  udp::endpoint client;
  while (!stopped) {
    auto [ec] = co_await listener.async_wait(udp::socket::wait_read, use_tuple);
    if (stopped || ec == asio::error::operation_aborted)
      co_return;
    // Drain what is queued: one wake-up, many datagrams.
    for (int i = 0; i < 64 && !stopped; ++i) {
      const std::size_t size = listener.receive_from(asio::buffer(buffer), client, 0, ec);
      if (ec == asio::error::would_block)
        break;
      if (ec) {
        log->debug("DNS: UDP receive failed: {}", ec.message());
        break;
      }
      handle_datagram(ByteView(buffer.data(), size), client);
    }
  }
}

void DnsForwarder::Impl::handle_datagram(ByteView datagram, const udp::endpoint& client) {
  ++counters.udp_queries;
  if (!allowed(client.address())) {
    ++counters.refused_clients;
    log->debug("DNS: ignored a query from {}, outside {}", endpoint_text(client),
               clients_text(config));
    return;
  }
  auto view = dns::parse_message(datagram);
  if (!view || view->header.is_response()) {
    ++counters.malformed;
    log->debug("DNS: dropped {} bytes from {}: {}", datagram.size(), endpoint_text(client),
               view ? "a response, not a query" : to_string(view.error()));
    return;
  }
  if (view->header.opcode() != 0 || view->header.qdcount != 1) {
    ++counters.not_implemented;
    reply_udp(dns::make_error_response(
                  datagram, *view,
                  view->header.opcode() != 0 ? dns::Rcode::kNotImp : dns::Rcode::kFormErr),
              client);
    return;
  }
  PendingKey key = pending_key(client, *view);
  if (pending.contains(key)) {
    ++counters.duplicates;
    log->debug("DNS: dropped a retransmit of {} from {}", view->question->name_text(),
               endpoint_text(client));
    return;
  }
  if (in_flight >= config.max_in_flight) {
    ++counters.overload;
    log->debug("DNS: dropped a query from {}: {} in flight", endpoint_text(client), in_flight);
    return;
  }
  pending.insert(key);
  ++in_flight;
  spawn(answer_udp(shared_from_this(), Bytes(datagram.begin(), datagram.end()), std::move(*view),
                   client, std::move(key)),
        "DNS: a UDP query");
}

asio::awaitable<void> DnsForwarder::Impl::answer_udp(std::shared_ptr<Impl> /*keep_alive*/,
                                                     Bytes query, dns::Message view,
                                                     udp::endpoint client, PendingKey key) {
  const Bytes answer = co_await resolve(query, view, dns::Transport::kUdp);
  pending.erase(key);
  --in_flight;
  if (!stopped)
    reply_udp(answer, client);
}

void DnsForwarder::Impl::reply_udp(ByteView answer, const udp::endpoint& client) {
  boost::system::error_code ec;
  listener.send_to(asio::buffer(answer.data(), answer.size()), client, 0, ec);
  if (ec)
    log->debug("DNS: answer to {} not sent: {}", endpoint_text(client), ec.message());
}

// ---- Upstream

asio::awaitable<Bytes> DnsForwarder::Impl::resolve(Bytes query, dns::Message view,
                                                   dns::Transport transport) {
  const std::size_t count = config.upstreams.size();
  std::optional<Answer> fallback;  // a SERVFAIL/REFUSED answer, used when no one does better
  const std::size_t first = preferred;
  for (unsigned attempt = 0; attempt < config.attempts && !stopped; ++attempt) {
    const std::size_t index = (first + attempt) % count;
    const udp::endpoint upstream = config.upstreams[index];
    // UDP first whatever the guest used (a TCP connection per query is what upstreams like
    // least); TCP when the UDP answer is truncated and the guest asked over TCP.
    // (No co_await inside ?: in this function: GCC 12 miscompiles it.)
    std::optional<Answer> answer = co_await ask_udp(upstream, query, view);
    if (answer && answer->view.header.truncated() && transport == dns::Transport::kTcp
        && !stopped) {
      const std::uint16_t id = random.u16();
      answer = co_await ask_tcp(tcp::endpoint(upstream.address(), upstream.port()),
                                dns::make_upstream_query(query, view, id), id, *view.question);
    }
    if (stopped)
      break;
    if (!answer) {
      if (index == preferred && count > 1) {
        preferred = (index + 1) % count;
        log->warn("DNS: upstream {} failed; preferring {}", endpoint_text(upstream),
                  endpoint_text(config.upstreams[preferred]));
      }
      continue;
    }
    const auto rcode = static_cast<dns::Rcode>(answer->view.header.rcode());
    if ((rcode == dns::Rcode::kServFail || rcode == dns::Rcode::kRefused) && count > 1
        && attempt + 1 < config.attempts) {
      fallback = std::move(answer);
      continue;
    }
    preferred = index;
    fallback = std::move(answer);
    break;
  }
  if (!fallback) {
    ++counters.servfail;
    co_return dns::make_error_response(query, view, dns::Rcode::kServFail);
  }
  ++counters.answered;
  Bytes out = dns::make_guest_response(fallback->bytes, fallback->view, view, transport);
  if (out.size() >= dns::kHeaderSize && (out[2] & 0x02) != 0 && !fallback->view.header.truncated())
    ++counters.truncated;
  co_return out;
}

asio::awaitable<std::optional<Answer>> DnsForwarder::Impl::ask_udp(udp::endpoint upstream,
                                                                   const Bytes& query,
                                                                   const dns::Message& view) {
  boost::system::error_code ec;
  const std::shared_ptr<UpstreamSocket> socket = upstream_socket(upstream, ec);
  if (!socket) {
    ++counters.upstream_errors;
    log->debug("DNS: query to {} not sent: {}", endpoint_text(upstream), ec.message());
    co_return std::nullopt;
  }
  UdpWaiter waiter(io.get_executor(), unused_id(*socket), *view.question);
  const Bytes message = dns::make_upstream_query(query, view, waiter.id);
  socket->socket.send(asio::buffer(message), 0, ec);
  if (ec) {
    ++counters.upstream_errors;
    log->debug("DNS: query to {} not sent: {}", endpoint_text(upstream), ec.message());
    retire(*socket);
    release(socket);
    co_return std::nullopt;
  }
  socket->waiting.emplace(waiter.id, &waiter);
  waiter.timer.expires_after(config.attempt_timeout);
  // Ends at the deadline, or cancelled by the reader with an answer or an error: both are in the
  // waiter, so how the wait ended says nothing more.
  [[maybe_unused]] auto [woken] = co_await waiter.timer.async_wait(use_tuple);
  // The reader took the waiter out when it answered or failed it; otherwise it is still there.
  if (auto it = socket->waiting.find(waiter.id);
      it != socket->waiting.end() && it->second == &waiter)
    socket->waiting.erase(it);
  release(socket);
  if (waiter.answer)
    co_return std::move(waiter.answer);
  if (stopped)
    co_return std::nullopt;
  if (waiter.error) {
    ++counters.upstream_errors;
    log->debug("DNS: {} receive: {}", endpoint_text(upstream), waiter.error.message());
  } else {
    ++counters.upstream_timeouts;
    log->debug("DNS: {} did not answer in {}ms", endpoint_text(upstream),
               config.attempt_timeout.count());
  }
  co_return std::nullopt;
}

std::shared_ptr<UpstreamSocket> DnsForwarder::Impl::upstream_socket(const udp::endpoint& upstream,
                                                                    boost::system::error_code& ec) {
  std::vector<std::shared_ptr<UpstreamSocket>>& usable = upstream_pool[upstream];
  std::shared_ptr<UpstreamSocket> socket;
  if (usable.size() < kSocketsPerUpstream) {
    socket = open_upstream_socket(upstream, ec);
    if (!socket)
      return nullptr;
    usable.push_back(socket);
  } else {
    socket = usable[random.u16() % usable.size()];
  }
  if (++socket->queries >= kQueriesPerSocket)
    retire(*socket);
  return socket;
}

std::shared_ptr<UpstreamSocket> DnsForwarder::Impl::open_upstream_socket(
    const udp::endpoint& upstream, boost::system::error_code& ec) {
  // connect() without bind(): the kernel picks a random ephemeral source port.
  auto socket = std::make_shared<UpstreamSocket>(io, upstream);
  socket->socket.open(upstream.protocol(), ec);
  if (!ec)
    socket->socket.connect(upstream, ec);
  if (!ec)
    socket->socket.non_blocking(true, ec);
  if (ec)
    return nullptr;
  upstream_open.insert(socket);
  spawn(read_upstream(shared_from_this(), socket), "DNS: an upstream socket's reader");
  return socket;
}

std::uint16_t DnsForwarder::Impl::unused_id(const UpstreamSocket& socket) {
  // At most kQueriesPerSocket IDs are taken on a socket: a free one comes within a few draws.
  std::uint16_t id = random.u16();
  while (socket.waiting.contains(id))
    id = random.u16();
  return id;
}

void DnsForwarder::Impl::retire(UpstreamSocket& socket) {
  if (socket.retired)
    return;
  socket.retired = true;
  auto pool = upstream_pool.find(socket.upstream);
  if (pool == upstream_pool.end())
    return;
  std::erase_if(pool->second, [&](const auto& open) { return open.get() == &socket; });
}

void DnsForwarder::Impl::release(const std::shared_ptr<UpstreamSocket>& socket) {
  if (!socket->waiting.empty())
    return;
  retire(*socket);
  boost::system::error_code ignored;
  socket->socket.close(ignored);  // ends its reader
  upstream_open.erase(socket);
}

// Reads what `socket`'s upstream sends and hands each reply to the query it answers, until the
// socket is closed or fails.
asio::awaitable<void> DnsForwarder::Impl::read_upstream(std::shared_ptr<Impl> /*keep_alive*/,
                                                        std::shared_ptr<UpstreamSocket> socket) {
  boost::system::error_code ec;
  while (!ec && !stopped && socket->socket.is_open()) {
    auto [wait_ec] = co_await socket->socket.async_wait(udp::socket::wait_read, use_tuple);
    if (wait_ec || stopped) {
      ec = wait_ec ? wait_ec : asio::error::operation_aborted;
      break;
    }
    // Drain what is queued, kReplyBatch replies per system call: a batch that is not full
    // emptied the queue, and what arrives later wakes the wait again.
    std::size_t received = kReplyBatch;
    while (received == kReplyBatch && !ec)
      received = receive_replies(*socket, ec);
  }
  // Closed, or failed (refused, unreachable): every query still on it tries elsewhere.
  fail_waiting(*socket, ec ? ec : asio::error::operation_aborted);
  boost::system::error_code ignored;
  socket->socket.close(ignored);
  upstream_open.erase(socket);
}

std::size_t DnsForwarder::Impl::receive_replies(UpstreamSocket& socket,
                                                boost::system::error_code& ec) {
  std::array<mmsghdr, kReplyBatch> headers{};
  std::array<iovec, kReplyBatch> parts{};
  std::array<sockaddr_storage, kReplyBatch> sources{};
  for (std::size_t i = 0; i < kReplyBatch; ++i) {
    parts[i] = {upstream_buffer.data() + i * kReplyMax, kReplyMax};
    headers[i].msg_hdr.msg_iov = &parts[i];
    headers[i].msg_hdr.msg_iovlen = 1;
    headers[i].msg_hdr.msg_name = &sources[i];
    headers[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
  }
  const int count =
      ::recvmmsg(socket.socket.native_handle(), headers.data(), kReplyBatch, MSG_DONTWAIT, nullptr);
  if (count < 0 && errno == EINTR)
    return kReplyBatch;  // try again
  if (count < 0) {
    if (errno != EAGAIN)  // EWOULDBLOCK is the same on Linux
      ec = boost::system::error_code(errno, boost::system::system_category());
    return 0;
  }
  for (int i = 0; i < count; ++i) {
    const msghdr& header = headers[i].msg_hdr;
    udp::endpoint from;
    if (header.msg_namelen <= from.capacity()) {
      std::memcpy(from.data(), &sources[i], header.msg_namelen);
      from.resize(header.msg_namelen);
    }
    if ((header.msg_flags & MSG_TRUNC) != 0) {
      ++counters.mismatched;  // larger than any reply to the size we advertise
      log->debug("DNS: dropped an oversized reply from {}", endpoint_text(from));
      continue;
    }
    deliver(socket, from, ByteView(upstream_buffer.data() + i * kReplyMax, headers[i].msg_len));
  }
  return static_cast<std::size_t>(count);
}

// Accepts `datagram` only as the reply to a query waiting on `socket`: from its upstream, with
// that query's ID and question (RFC 5452); anything else is dropped and counted.
void DnsForwarder::Impl::deliver(UpstreamSocket& socket, const udp::endpoint& from,
                                 ByteView datagram) {
  Bytes reply(datagram.begin(), datagram.end());
  auto view = dns::parse_message(reply);
  auto waiting = view ? socket.waiting.find(view->header.id) : socket.waiting.end();
  if (from != socket.upstream || waiting == socket.waiting.end()
      || !dns::is_reply_to(*view, waiting->second->id, waiting->second->question)) {
    ++counters.mismatched;
    log->debug("DNS: rejected a reply from {}", endpoint_text(from));
    return;
  }
  UdpWaiter& waiter = *waiting->second;
  socket.waiting.erase(waiting);
  waiter.answer = Answer{std::move(reply), std::move(*view)};
  waiter.timer.cancel();
}

void DnsForwarder::Impl::fail_waiting(UpstreamSocket& socket, boost::system::error_code ec) {
  retire(socket);
  for (auto& [id, waiter] : socket.waiting) {
    waiter->error = ec;
    waiter->timer.cancel();
  }
  socket.waiting.clear();
}

void DnsForwarder::Impl::close_upstream_sockets() {
  // Copied first: closing ends readers, which change the set.
  const std::vector<std::shared_ptr<UpstreamSocket>> open(upstream_open.begin(),
                                                          upstream_open.end());
  boost::system::error_code ignored;
  for (const auto& socket : open) {
    fail_waiting(*socket, asio::error::operation_aborted);
    socket->socket.close(ignored);
  }
  upstream_open.clear();
  upstream_pool.clear();
}

asio::awaitable<std::optional<Answer>> DnsForwarder::Impl::ask_tcp(tcp::endpoint upstream,
                                                                   Bytes message, std::uint16_t id,
                                                                   dns::Question question) {
  const std::string name =
      fmt::format("{}:{}/tcp", upstream.address().to_string(), upstream.port());
  tcp::socket socket(io);
  std::optional<Bytes> reply =
      outcome(co_await with_deadline(exchange_tcp(socket, upstream, std::move(message)),
                                     config.attempt_timeout),
              name);
  if (!reply)
    co_return std::nullopt;
  auto view = dns::parse_message(*reply);
  if (!view || !dns::is_reply_to(*view, id, question)) {
    ++counters.mismatched;
    log->debug("DNS: rejected a TCP reply from {} for {}", name, question.name_text());
    co_return std::nullopt;
  }
  co_return Answer{std::move(*reply), std::move(*view)};
}

// ---- TCP (RFC 7766: pipelined queries, answers in completion order, idle timeout)

asio::awaitable<void> DnsForwarder::Impl::serve_tcp(std::shared_ptr<Impl> self) {
  while (!stopped) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (stopped || ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      log->debug("DNS: accept failed: {}", ec.message());
      continue;
    }
    boost::system::error_code remote_ec;
    const auto remote = socket.remote_endpoint(remote_ec);
    if (remote_ec || !allowed(remote.address())) {
      ++counters.refused_clients;
      log->debug("DNS: closed a TCP connection from {}, outside {}",
                 remote_ec ? "?" : remote.address().to_string(), clients_text(config));
      continue;  // the socket closes here
    }
    if (sessions.size() >= config.max_tcp_connections) {
      ++counters.overload;
      log->debug("DNS: closed a TCP connection: {} open", sessions.size());
      continue;
    }
    ++counters.tcp_connections;
    auto session = std::make_shared<TcpSession>(std::move(socket));
    sessions.insert(session);
    spawn(read_session(self, session), "DNS: a TCP session");
  }
}

asio::awaitable<void> DnsForwarder::Impl::read_session(std::shared_ptr<Impl> self,
                                                       std::shared_ptr<TcpSession> session) {
  while (!stopped && session->socket.is_open()) {
    // One deadline for the whole message: the length, then the rest of the time for the body.
    const Clock::time_point deadline = Clock::now() + config.tcp_idle_timeout;
    std::array<std::uint8_t, 2> length{};
    const auto length_read =
        co_await with_deadline(asio::async_read(session->socket, asio::buffer(length), use_tuple),
                               config.tcp_idle_timeout);
    if (!length_read && session->in_flight > 0)
      continue;  // not idle: answers are still coming
    if (!length_read || std::get<0>(*length_read))
      break;  // idle, closed by the guest, or a broken frame
    Bytes query(load_u16(length, 0));
    if (query.empty())
      break;
    const auto body_read = co_await with_deadline(
        asio::async_read(session->socket, asio::buffer(query), use_tuple), deadline - Clock::now());
    if (!body_read || std::get<0>(*body_read))
      break;
    ++counters.tcp_queries;
    auto view = dns::parse_message(query);
    if (!view || view->header.is_response()) {
      ++counters.malformed;
      log->debug("DNS: closed a TCP connection after a malformed message: {}",
                 view ? "a response, not a query" : to_string(view.error()));
      break;
    }
    if (view->header.opcode() != 0 || view->header.qdcount != 1) {
      ++counters.not_implemented;
      queue_tcp(session,
                dns::make_error_response(
                    query, *view,
                    view->header.opcode() != 0 ? dns::Rcode::kNotImp : dns::Rcode::kFormErr));
      continue;
    }
    if (in_flight >= config.max_in_flight) {
      ++counters.overload;
      queue_tcp(session, dns::make_error_response(query, *view, dns::Rcode::kServFail));
      continue;
    }
    ++in_flight;
    ++session->in_flight;
    spawn(answer_tcp(self, session, std::move(query), std::move(*view)), "DNS: a TCP query");
  }
  session->reading_done = true;
  maybe_close(session);
}

asio::awaitable<void> DnsForwarder::Impl::answer_tcp(std::shared_ptr<Impl> /*keep_alive*/,
                                                     std::shared_ptr<TcpSession> session,
                                                     Bytes query, dns::Message view) {
  const Bytes answer = co_await resolve(query, view, dns::Transport::kTcp);
  --in_flight;
  --session->in_flight;
  if (!stopped && session->socket.is_open())
    queue_tcp(session, answer);
  maybe_close(session);
}

void DnsForwarder::Impl::queue_tcp(const std::shared_ptr<TcpSession>& session, ByteView answer) {
  session->outbox.push_back(tcp_frame(answer));
  if (!session->writing) {
    session->writing = true;
    spawn(write_session(shared_from_this(), session), "DNS: a TCP session's writer");
  }
}

asio::awaitable<void> DnsForwarder::Impl::write_session(std::shared_ptr<Impl> /*keep_alive*/,
                                                        std::shared_ptr<TcpSession> session) {
  while (!session->outbox.empty() && session->socket.is_open()) {
    const Bytes framed = std::move(session->outbox.front());
    session->outbox.pop_front();
    const auto written =
        co_await with_deadline(asio::async_write(session->socket, asio::buffer(framed), use_tuple),
                               config.tcp_idle_timeout);
    if (!written || std::get<0>(*written)) {
      boost::system::error_code ignored;
      session->socket.close(ignored);
      session->outbox.clear();
    }
  }
  session->writing = false;
  maybe_close(session);
}

void DnsForwarder::Impl::maybe_close(const std::shared_ptr<TcpSession>& session) {
  if (!session->reading_done || session->in_flight > 0 || session->writing)
    return;
  boost::system::error_code ignored;
  session->socket.shutdown(tcp::socket::shutdown_both, ignored);
  session->socket.close(ignored);
  sessions.erase(session);
}

// ---- DnsForwarder

DnsForwarder::DnsForwarder(asio::io_context& io, DnsConfig config,
                           std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_shared<Impl>(io, std::move(config), std::move(log))) {}

DnsForwarder::~DnsForwarder() {
  stop();
}

Result<void> DnsForwarder::start() {
  return impl_->start(impl_);
}

void DnsForwarder::stop() {
  if (impl_->stopped)
    return;
  impl_->stopped = true;
  impl_->close();
}

DnsCounters DnsForwarder::counters() const {
  return impl_->counters;
}

}  // namespace berth::dhcp

namespace berth::dhcp {

void DnsForwarder::register_metrics(MetricsRegistry& registry, std::vector<Listener> listeners) {
  static constexpr CounterField<DnsCounters> kCounters[] = {
      {"berth_dns_udp_queries_total", "DNS queries from the guest over UDP.",
       &DnsCounters::udp_queries},
      {"berth_dns_tcp_queries_total", "DNS queries from the guest over TCP.",
       &DnsCounters::tcp_queries},
      {"berth_dns_tcp_connections_total", "DNS TCP connections accepted from the guest.",
       &DnsCounters::tcp_connections},
      {"berth_dns_answered_total", "Upstream answers passed to the guest.", &DnsCounters::answered},
      {"berth_dns_truncated_total", "Answers truncated to the guest's UDP size.",
       &DnsCounters::truncated},
      {"berth_dns_servfail_total", "Queries answered SERVFAIL (every try failed).",
       &DnsCounters::servfail},
      {"berth_dns_refused_clients_total", "Queries from outside the VM subnet.",
       &DnsCounters::refused_clients},
      {"berth_dns_malformed_total", "Datagrams that were not a DNS query (dropped).",
       &DnsCounters::malformed},
      {"berth_dns_not_implemented_total",
       "Queries with an opcode other than QUERY or not one question (NOTIMP/FORMERR).",
       &DnsCounters::not_implemented},
      {"berth_dns_duplicates_total", "Guest retransmits of a query still in flight (dropped).",
       &DnsCounters::duplicates},
      {"berth_dns_overload_total", "Queries dropped because too many were in flight.",
       &DnsCounters::overload},
      {"berth_dns_upstream_timeouts_total", "Upstream tries that timed out.",
       &DnsCounters::upstream_timeouts},
      {"berth_dns_upstream_errors_total",
       "Upstream tries that failed (refused, unreachable, reset).", &DnsCounters::upstream_errors},
      {"berth_dns_mismatched_total", "Upstream datagrams rejected (wrong ID, question or source).",
       &DnsCounters::mismatched},
  };
  for (const auto& f : kCounters)
    registry.family(MetricType::kCounter, f.name, f.help, [listeners, field = f.field] {
      std::vector<Sample> samples;
      for (const auto& listener : listeners)
        samples.push_back({{{"family", listener.family}},
                           static_cast<double>(listener.forwarder->counters().*field)});
      return samples;
    });
}

}  // namespace berth::dhcp
