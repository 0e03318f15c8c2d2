// The DNS forwarder in-process on loopback (no privileges): fake upstreams in the same io_context,
// a blocking guest on another thread. Ports are free ports picked at run time.

#include "dhcp/dns/dns_forwarder.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <future>
#include <set>
#include <thread>

#include "common/async.hpp"
#include "dhcp/dns/dns_message.hpp"
#include "test_util.hpp"

namespace asio = boost::asio;
using namespace berth::dhcp;
using asio::ip::tcp;
using asio::ip::udp;
using berth::dhcp::test::make_query;
using berth::dhcp::test::make_response;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// ---- Blocking guest side (POSIX sockets with poll timeouts).

struct Fd {
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
  int fd;
};

sockaddr_in sockaddr_of(const char* ip, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &sa.sin_addr);
  return sa;
}

Fd bound_socket(int type, const char* ip) {
  Fd s(::socket(AF_INET, type, 0));
  const sockaddr_in sa = sockaddr_of(ip, 0);
  REQUIRE(::bind(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
  return s;
}

std::uint16_t free_port() {
  // A port free for both UDP and TCP on 127.0.0.1.
  for (int i = 0; i < 50; ++i) {
    Fd u = bound_socket(SOCK_DGRAM, "127.0.0.1");
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(u.fd, reinterpret_cast<sockaddr*>(&sa), &len);
    Fd t(::socket(AF_INET, SOCK_STREAM, 0));
    if (::bind(t.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0)
      return ntohs(sa.sin_port);
  }
  FAIL("no free port");
  return 0;
}

bool readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

void send_udp(const Fd& s, const Bytes& bytes, std::uint16_t port) {
  const sockaddr_in to = sockaddr_of("127.0.0.1", port);
  REQUIRE(::sendto(s.fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof to)
          == static_cast<ssize_t>(bytes.size()));
}

std::optional<Bytes> receive_udp(const Fd& s, std::chrono::milliseconds timeout) {
  if (!readable(s.fd, timeout))
    return std::nullopt;
  Bytes buffer(65536);
  const ssize_t n = ::recv(s.fd, buffer.data(), buffer.size(), 0);
  if (n < 0)
    return std::nullopt;
  buffer.resize(static_cast<std::size_t>(n));
  return buffer;
}

Fd tcp_connect(const char* from, std::uint16_t port) {
  Fd s = bound_socket(SOCK_STREAM, from);
  const sockaddr_in to = sockaddr_of("127.0.0.1", port);
  REQUIRE(::connect(s.fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0);
  return s;
}

void tcp_send(const Fd& s, const Bytes& message) {
  Bytes framed;
  put_u16(framed, static_cast<std::uint16_t>(message.size()));
  put_bytes(framed, message);
  REQUIRE(::send(s.fd, framed.data(), framed.size(), 0) == static_cast<ssize_t>(framed.size()));
}

// Reads exactly n bytes; nullopt on timeout, EOF or error.
std::optional<Bytes> read_exact(const Fd& s, std::size_t n, std::chrono::milliseconds timeout) {
  Bytes out(n);
  std::size_t got = 0;
  while (got < n) {
    if (!readable(s.fd, timeout))
      return std::nullopt;
    const ssize_t r = ::recv(s.fd, out.data() + got, n - got, 0);
    if (r <= 0)
      return std::nullopt;
    got += static_cast<std::size_t>(r);
  }
  return out;
}

std::optional<Bytes> tcp_receive(const Fd& s, std::chrono::milliseconds timeout) {
  const auto length = read_exact(s, 2, timeout);
  if (!length)
    return std::nullopt;
  return read_exact(s, load_u16(*length, 0), timeout);
}

dns::Message parsed(const Bytes& bytes) {
  auto m = dns::parse_message(bytes);
  REQUIRE(m);
  return *m;
}

// ---- Fake upstream: UDP and TCP on one port, answering through a behaviour function.

struct FakeUpstream {
  // The datagrams to send back for a query, in order (none: stay silent).
  using Behaviour = std::function<std::vector<Bytes>(const Bytes& query)>;

  FakeUpstream(asio::io_context& io, Behaviour b)
      : behaviour(std::move(b)),
        udp_socket(io),
        acceptor(io),
        log(std::make_shared<spdlog::logger>("upstream",
                                             std::make_shared<spdlog::sinks::stderr_sink_mt>())) {
    const std::uint16_t port = free_port();
    endpoint = udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port);
    udp_socket.open(udp::v4());
    udp_socket.bind(endpoint);
    acceptor.open(tcp::v4());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(tcp::endpoint(endpoint.address(), port));
    acceptor.listen();
    asio::co_spawn(io, serve_udp(), berth::log_exceptions(log, "fake upstream: UDP"));
    asio::co_spawn(io, serve_tcp(), berth::log_exceptions(log, "fake upstream: TCP"));
  }

  asio::awaitable<void> serve_udp() {
    std::vector<std::uint8_t> buffer(65536);
    while (true) {
      udp::endpoint from;
      auto [ec, n] = co_await udp_socket.async_receive_from(asio::buffer(buffer), from, use_tuple);
      if (ec)
        co_return;
      Bytes query(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
      queries.push_back(query);
      sources.push_back(from);
      asio::co_spawn(udp_socket.get_executor(), answer_udp(query, from),
                     berth::log_exceptions(log, "fake upstream: a UDP answer"));
    }
  }

  asio::awaitable<void> answer_udp(Bytes query, udp::endpoint to) {
    co_await wait(query);
    for (Bytes reply : behaviour(query)) {
      if (truncate_udp) {  // header and question only, TC set
        reply = make_response(query, 0);
        reply[2] |= 0x02;
      }
      co_await udp_socket.async_send_to(asio::buffer(reply), to, use_tuple);
    }
  }

  asio::awaitable<void> serve_tcp() {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (ec)
        co_return;
      asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(socket)),
                     berth::log_exceptions(log, "fake upstream: a TCP connection"));
    }
  }

  asio::awaitable<void> serve_connection(tcp::socket socket) {
    std::array<std::uint8_t, 2> length{};
    auto [ec, n] = co_await asio::async_read(socket, asio::buffer(length), use_tuple);
    if (ec)
      co_return;
    Bytes query(load_u16(length, 0));
    auto [ec2, n2] = co_await asio::async_read(socket, asio::buffer(query), use_tuple);
    if (ec2)
      co_return;
    ++tcp_queries;
    queries.push_back(query);
    co_await wait(query);
    for (const auto& reply : behaviour(query)) {
      Bytes framed;
      put_u16(framed, static_cast<std::uint16_t>(reply.size()));
      put_bytes(framed, reply);
      co_await asio::async_write(socket, asio::buffer(framed), use_tuple);
    }
  }

  asio::awaitable<void> wait(const Bytes& query) {
    if (!delay_for)
      co_return;
    asio::steady_timer timer(udp_socket.get_executor(), delay_for(query));
    co_await timer.async_wait(use_tuple);
  }

  void close() {
    udp_socket.close();
    acceptor.close();
  }

  Behaviour behaviour;
  std::function<std::chrono::milliseconds(const Bytes&)> delay_for;
  bool truncate_udp = false;  // answer UDP queries with TC, as for an answer over 1232 bytes
  udp::socket udp_socket;
  tcp::acceptor acceptor;
  std::shared_ptr<spdlog::logger> log;  // where a coroutine that throws says so
  udp::endpoint endpoint;
  std::vector<Bytes> queries;
  std::vector<udp::endpoint> sources;
  int tcp_queries = 0;
};

// Answers with `records` A records and an OPT.
FakeUpstream::Behaviour answer(unsigned records) {
  return [records](const Bytes& q) { return std::vector<Bytes>{make_response(q, records, 1232)}; };
}

// The forwarder, its upstreams and an io thread. Everything that touches io objects after start
// goes through on_io().
struct Harness {
  Harness() : guard(asio::make_work_guard(io)) {
    config.listen_address = asio::ip::make_address_v4("127.0.0.1");
    config.listen_port = free_port();
    config.allowed_clients = asio::ip::make_network_v4("127.0.0.0/30");
    config.attempt_timeout = 1000ms;  // tests that need a timeout set a shorter one
    config.attempts = 3;
  }
  ~Harness() {
    if (thread.joinable()) {
      on_io([this] {
        if (forwarder)
          forwarder->stop();
        for (auto& u : upstreams)
          u->close();
        return 0;
      });
      guard.reset();
      io.stop();
      thread.join();
    }
  }

  FakeUpstream& add_upstream(FakeUpstream::Behaviour behaviour) {
    upstreams.push_back(std::make_unique<FakeUpstream>(io, std::move(behaviour)));
    config.upstreams.push_back(upstreams.back()->endpoint);
    return *upstreams.back();
  }

  void start() {
    auto log =
        std::make_shared<spdlog::logger>("dns", std::make_shared<spdlog::sinks::null_sink_mt>());
    forwarder = std::make_unique<DnsForwarder>(io, config, log);
    const auto started = forwarder->start();
    INFO((started ? std::string() : started.error().message));
    REQUIRE(started);
    thread = std::thread([this] { io.run(); });
  }

  template <typename F>
  auto on_io(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto future = task.get_future();
    asio::post(io, [&task] { task(); });
    return future.get();
  }

  DnsCounters counters() {
    return on_io([this] { return forwarder->counters(); });
  }

  std::optional<Bytes> ask(const Bytes& query, std::chrono::milliseconds timeout = 2s,
                           const char* from = "127.0.0.2") {
    Fd s = bound_socket(SOCK_DGRAM, from);
    send_udp(s, query, config.listen_port);
    return receive_udp(s, timeout);
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  DnsConfig config;
  std::vector<std::unique_ptr<FakeUpstream>> upstreams;
  std::unique_ptr<DnsForwarder> forwarder;
  std::thread thread;
};

template <typename F>
std::chrono::milliseconds timed(F f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                               - start);
}

}  // namespace

TEST_CASE("dhcp/dns: forwards over UDP: guest ID restored, fresh ID and source port upstream",
          "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(1));
  h.start();
  for (int i = 0; i < 20; ++i) {
    const Bytes query = make_query(0x1111, "vm.test", 1);
    const auto reply = h.ask(query);
    REQUIRE(reply);
    const dns::Message m = parsed(*reply);
    CHECK(m.header.id == 0x1111);
    CHECK(m.header.ancount == 1);
    CHECK_FALSE(m.edns);  // the guest sent no OPT
  }
  const auto seen = h.on_io([&] { return std::make_pair(upstream.queries, upstream.sources); });
  REQUIRE(seen.first.size() == 20);
  std::set<std::uint16_t> ids;
  std::set<std::uint16_t> ports;
  for (const auto& q : seen.first) {
    ids.insert(parsed(q).header.id);
    CHECK(parsed(q).edns->udp_size == 1232);
  }
  for (const auto& s : seen.second)
    ports.insert(s.port());
  CHECK(ids.size() >= 18);
  CHECK(ports.size() >= 18);
  CHECK(h.counters().answered == 20);
}

TEST_CASE("dhcp/dns: a silent first upstream: failover within one try, then it is skipped",
          "[dns][forwarder]") {
  Harness h;
  h.add_upstream([](const Bytes&) { return std::vector<Bytes>{}; });
  h.add_upstream(answer(1));
  h.start();
  const auto first = timed([&] { CHECK(h.ask(make_query(1, "a.test"))); });
  CHECK(first >= 1000ms);
  CHECK(first < 1900ms);
  const auto second = timed([&] { CHECK(h.ask(make_query(2, "b.test"))); });
  CHECK(second < 500ms);  // not waiting for the silent one again
  CHECK(h.counters().upstream_timeouts == 1);
}

TEST_CASE("dhcp/dns: a refusing upstream (closed port): failover at once", "[dns][forwarder]") {
  Harness h;
  h.config.attempt_timeout = 2000ms;
  h.config.upstreams.push_back(udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), free_port()));
  h.add_upstream(answer(1));
  h.start();
  const auto elapsed = timed([&] { CHECK(h.ask(make_query(1, "a.test"))); });
  CHECK(elapsed < 500ms);
  CHECK(h.counters().upstream_errors == 1);
}

TEST_CASE("dhcp/dns: RFC 5452: replies with the wrong ID or question are not accepted",
          "[dns][forwarder]") {
  Harness h;
  h.add_upstream([](const Bytes& q) {
    Bytes wrong_id = make_response(q, 1);
    store_u16(wrong_id, 0, static_cast<std::uint16_t>(load_u16(q, 0) + 1));
    Bytes wrong_question = make_response(q, 1);
    wrong_question[13] ^= 0x01;  // first letter of the name
    Bytes right = make_response(q, 2);
    return std::vector<Bytes>{wrong_id, wrong_question, right};
  });
  h.start();
  const auto reply = h.ask(make_query(77, "vm.test"));
  REQUIRE(reply);
  CHECK(parsed(*reply).header.ancount == 2);
  CHECK(h.counters().mismatched == 2);
}

TEST_CASE("dhcp/dns: all upstreams silent: SERVFAIL before the guest's 5 s", "[dns][forwarder]") {
  Harness h;
  h.config.attempts = 2;
  h.config.attempt_timeout = 200ms;
  h.add_upstream([](const Bytes&) { return std::vector<Bytes>{}; });
  h.start();
  const auto reply = h.ask(make_query(3, "vm.test", 1, 1232));
  REQUIRE(reply);
  const dns::Message m = parsed(*reply);
  CHECK(m.header.rcode() == 2);
  CHECK(m.header.id == 3);
  CHECK(m.edns);
  CHECK(h.counters().servfail == 1);
}

TEST_CASE("dhcp/dns: large answers: TC for a plain guest, whole for EDNS0 and over TCP",
          "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(40));  // 40 A records: 669 bytes
  h.start();
  const auto plain = h.ask(make_query(10, "big.test"));
  REQUIRE(plain);
  CHECK(plain->size() <= 512);
  CHECK(parsed(*plain).header.truncated());
  CHECK(parsed(*plain).header.ancount == 0);

  const auto edns = h.ask(make_query(11, "big.test", 1, 4096));
  REQUIRE(edns);
  CHECK_FALSE(parsed(*edns).header.truncated());
  CHECK(parsed(*edns).header.ancount == 40);

  // The guest retries over TCP: the answer fits 1232, so upstream is still asked over UDP.
  Fd tcp = tcp_connect("127.0.0.2", h.config.listen_port);
  tcp_send(tcp, make_query(12, "big.test"));
  const auto whole = tcp_receive(tcp, 2s);
  REQUIRE(whole);
  CHECK(parsed(*whole).header.id == 12);
  CHECK(parsed(*whole).header.ancount == 40);
  CHECK_FALSE(parsed(*whole).edns);
  CHECK(h.on_io([&] { return upstream.tcp_queries; }) == 0);
  const DnsCounters c = h.counters();
  CHECK(c.truncated == 1);
  CHECK(c.tcp_queries == 1);
}

TEST_CASE("dhcp/dns: an answer truncated upstream: TC to a UDP guest, TCP upstream for a TCP guest",
          "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(3));
  upstream.truncate_udp = true;
  h.start();
  const auto udp_reply = h.ask(make_query(20, "huge.test", 1, 1232));
  REQUIRE(udp_reply);
  CHECK(parsed(*udp_reply).header.truncated());
  CHECK(parsed(*udp_reply).header.ancount == 0);

  Fd tcp = tcp_connect("127.0.0.2", h.config.listen_port);
  tcp_send(tcp, make_query(21, "huge.test", 1, 1232));
  const auto whole = tcp_receive(tcp, 2s);
  REQUIRE(whole);
  CHECK(parsed(*whole).header.id == 21);
  CHECK_FALSE(parsed(*whole).header.truncated());
  CHECK(parsed(*whole).header.ancount == 3);
  CHECK(h.on_io([&] { return upstream.tcp_queries; }) == 1);
  CHECK(h.counters().truncated == 0);  // cut upstream, not by the forwarder
}

TEST_CASE("dhcp/dns: a guest's retransmit of a query in flight is dropped", "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(1));
  upstream.delay_for = [](const Bytes&) { return 300ms; };  // within the 1 s try
  h.start();
  Fd s = bound_socket(SOCK_DGRAM, "127.0.0.2");
  const Bytes query = make_query(55, "slow.test");
  send_udp(s, query, h.config.listen_port);
  std::this_thread::sleep_for(50ms);
  send_udp(s, query, h.config.listen_port);
  CHECK(receive_udp(s, 2s));
  CHECK_FALSE(receive_udp(s, 200ms));
  CHECK(h.on_io([&] { return upstream.queries.size(); }) == 1);
  CHECK(h.counters().duplicates == 1);
}

TEST_CASE("dhcp/dns: sources outside the allowed subnet get nothing, over UDP or TCP",
          "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(1));
  h.start();
  CHECK_FALSE(h.ask(make_query(1, "vm.test"), 300ms, "127.0.0.9"));
  Fd tcp = tcp_connect("127.0.0.9", h.config.listen_port);
  tcp_send(tcp, make_query(2, "vm.test"));
  CHECK_FALSE(tcp_receive(tcp, 500ms));
  CHECK(h.on_io([&] { return upstream.queries.size(); }) == 0);
  CHECK(h.counters().refused_clients == 2);
  CHECK(h.ask(make_query(3, "vm.test")));  // the allowed subnet still works
}

TEST_CASE("dhcp/dns: TCP: pipelined queries answered as they complete", "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(1));
  upstream.delay_for = [](const Bytes& q) {
    return parsed(q).question->name_text() == "slow.test." ? 400ms : 0ms;  // within the 1 s try
  };
  h.start();
  Fd tcp = tcp_connect("127.0.0.2", h.config.listen_port);
  tcp_send(tcp, make_query(1, "slow.test"));
  tcp_send(tcp, make_query(2, "fast.test"));
  tcp_send(tcp, make_query(3, "quick.test"));
  std::vector<std::uint16_t> order;
  for (int i = 0; i < 3; ++i) {
    const auto reply = tcp_receive(tcp, 2s);
    REQUIRE(reply);
    order.push_back(parsed(*reply).header.id);
  }
  CHECK(order.back() == 1);
  CHECK(std::set<std::uint16_t>(order.begin(), order.end()) == std::set<std::uint16_t>{1, 2, 3});
}

TEST_CASE("dhcp/dns: TCP: an idle connection is closed", "[dns][forwarder]") {
  Harness h;
  h.config.tcp_idle_timeout = 300ms;
  h.add_upstream(answer(1));
  h.start();
  Fd tcp = tcp_connect("127.0.0.2", h.config.listen_port);
  tcp_send(tcp, make_query(1, "vm.test"));
  CHECK(tcp_receive(tcp, 2s));
  const auto closed_after = timed([&] {
    REQUIRE(readable(tcp.fd, 2s));
    char byte;
    CHECK(::recv(tcp.fd, &byte, 1, 0) == 0);  // EOF
  });
  CHECK(closed_after >= 200ms);
  CHECK(closed_after < 1500ms);
}

TEST_CASE("dhcp/dns: other opcodes get NOTIMP, responses and garbage are dropped",
          "[dns][forwarder]") {
  Harness h;
  FakeUpstream& upstream = h.add_upstream(answer(1));
  h.start();
  Bytes status = make_query(9, "vm.test");
  status[2] = 0x10;  // opcode 2 (STATUS)
  const auto reply = h.ask(status);
  REQUIRE(reply);
  CHECK(parsed(*reply).header.rcode() == 4);
  CHECK_FALSE(h.ask(make_response(make_query(8, "vm.test"), 1), 200ms));
  CHECK_FALSE(h.ask(Bytes{1, 2, 3}, 200ms));
  CHECK(h.on_io([&] { return upstream.queries.size(); }) == 0);
  const DnsCounters c = h.counters();
  CHECK(c.not_implemented == 1);
  CHECK(c.malformed == 2);
}

TEST_CASE("dhcp/dns: configuration validation", "[dns][forwarder]") {
  DnsConfig c;
  c.listen_address = asio::ip::make_address_v4("192.168.254.1");
  c.allowed_clients = asio::ip::make_network_v4("192.168.254.0/30");
  CHECK(validate_config(c).error().message
        == "DNS: no upstream name server (resolv.conf has no usable nameserver line)");
  c.upstreams = {udp::endpoint(asio::ip::make_address("10.96.0.10"), 53)};
  CHECK(validate_config(c));
  c.attempt_timeout = 5s;
  CHECK_FALSE(validate_config(c));
}

TEST_CASE("dhcp/dns: on an IPv6 address: answers the allowed /64 only, AAAA passed through",
          "[dns][forwarder]") {
  Harness h;
  h.config.listen_address = asio::ip::make_address_v6("::1");
  h.config.allowed_clients6 = asio::ip::make_network_v6("::1/128");
  h.add_upstream(answer(1));
  h.start();
  asio::io_context client_io;
  udp::socket client(client_io, udp::endpoint(asio::ip::address_v6::loopback(), 0));
  client.non_blocking(true);
  const Bytes query = make_query(0x6666, "vm.test", 28);  // AAAA
  client.send_to(asio::buffer(query), udp::endpoint(h.config.listen_address, h.config.listen_port));
  std::optional<Bytes> reply;
  for (int i = 0; i < 200 && !reply; ++i) {
    Bytes buffer(65536);
    boost::system::error_code ec;
    const std::size_t n = client.receive(asio::buffer(buffer), 0, ec);
    if (!ec)
      reply = Bytes(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
    else
      std::this_thread::sleep_for(10ms);
  }
  REQUIRE(reply);
  CHECK(parsed(*reply).header.id == 0x6666);
  CHECK(parsed(*reply).question->type == 28);
  CHECK(h.counters().answered == 1);

  // A source outside the allowed prefix gets nothing.
  Harness other;
  other.config.listen_address = asio::ip::make_address_v6("::1");
  other.config.allowed_clients6 = asio::ip::make_network_v6("fd62:6572:7468::/64");
  other.add_upstream(answer(1));
  other.start();
  client.send_to(asio::buffer(query),
                 udp::endpoint(other.config.listen_address, other.config.listen_port));
  for (int i = 0; i < 100 && other.counters().refused_clients == 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK(other.counters().refused_clients == 1);
  CHECK(other.counters().answered == 0);
}
