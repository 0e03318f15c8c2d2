#include "netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace berth::net::test {
namespace {

using Clock = std::chrono::steady_clock;

// An IPv4 or IPv6 socket address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

SocketAddress to_sockaddr(Endpoint endpoint) {
  SocketAddress socket_address;
  if (endpoint.address.is_v6()) {
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(endpoint.port);
    const auto bytes = endpoint.address.to_v6().to_bytes();
    std::memcpy(&address.sin6_addr, bytes.data(), bytes.size());
    std::memcpy(&socket_address.storage, &address, sizeof address);
    socket_address.length = sizeof address;
  } else {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(endpoint.port);
    address.sin_addr.s_addr = htonl(endpoint.address.to_v4().to_uint());
    std::memcpy(&socket_address.storage, &address, sizeof address);
    socket_address.length = sizeof address;
  }
  return socket_address;
}

Endpoint from_sockaddr(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET6) {
    sockaddr_in6 address{};
    std::memcpy(&address, &storage, sizeof address);
    boost::asio::ip::address_v6::bytes_type bytes{};
    std::memcpy(bytes.data(), &address.sin6_addr, bytes.size());
    return {boost::asio::ip::address_v6(bytes), ntohs(address.sin6_port)};
  }
  sockaddr_in address{};
  std::memcpy(&address, &storage, sizeof address);
  return {address_v4(ntohl(address.sin_addr.s_addr)), ntohs(address.sin_port)};
}

// A socket of `type` for `address`'s family inside `ns`; IPv6 sockets are IPv6 only.
Fd socket_for(const Netns& ns, const Address& address, int type) {
  const int family = address.is_v6() ? AF_INET6 : AF_INET;
  Fd socket = ns.run([&] { return Fd(::socket(family, type | SOCK_CLOEXEC, 0)); });
  REQUIRE(socket);
  if (family == AF_INET6) {
    const int on = 1;
    ::setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  return socket;
}

// Milliseconds left until `deadline`, at least 0.
int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0));
}

bool wait_for(int fd, short events, Clock::time_point deadline) {
  pollfd poll_fd{fd, events, 0};
  for (;;) {
    const int ready = ::poll(&poll_fd, 1, remaining_ms(deadline));
    if (ready >= 0)
      return ready > 0;
    if (errno != EINTR)
      return false;
  }
}

int original_netns() {
  static const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  return fd;
}

std::uint16_t icmp_checksum(const std::uint8_t* data, std::size_t length) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < length; i += 2)
    sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (length % 2)
    sum += static_cast<std::uint32_t>(data[length - 1] << 8);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<std::uint16_t>(~sum));
}

// The byte at `offset` of the stream transfer() sends.
std::uint8_t pattern(std::size_t offset) {
  std::uint64_t x = offset / 8 + 0x9e3779b97f4a7c15ULL;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 29;
  return static_cast<std::uint8_t>(x >> (8 * (offset % 8)));
}

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval value{static_cast<time_t>(timeout.count() / 1000),
                static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, sizeof value);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, sizeof value);
}

}  // namespace

ShellResult shell(const std::string& command) {
  ShellResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    return result;
  std::array<char, 4096> buffer{};
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe))
    result.output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string must(const std::string& command) {
  auto result = shell(command);
  INFO("$ " << command << "\n" << result.output);
  REQUIRE(result.status == 0);
  return result.output;
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0)
    ::close(fd_);
}

Netns::Netns(std::string name) : name_(std::move(name)) {
  (void)original_netns();                // remember where the test process started
  (void)shell("ip netns del " + name_);  // a leftover of a killed run
  must("ip netns add " + name_);
  fd_ = Fd(::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd_);
  must(exec("ip link set lo up"));
}

Netns::~Netns() {
  (void)shell("ip netns del " + name_);
}

std::string Netns::exec(const std::string& command) const {
  return "ip netns exec " + name_ + " " + command;
}

Netns::Entered::Entered(int fd) {
  if (::setns(fd, CLONE_NEWNET) != 0)
    FAIL("setns: " << std::strerror(errno));
}

Netns::Entered::~Entered() {
  if (::setns(original_netns(), CLONE_NEWNET) != 0)
    std::abort();  // the rest of the test run would happen in the wrong namespace
}

std::string to_string(const Endpoint& endpoint) {
  if (endpoint.address.is_v6())
    return "[" + endpoint.address.to_string() + "]:" + std::to_string(endpoint.port);
  return endpoint.address.to_string() + ":" + std::to_string(endpoint.port);
}

Fd tcp_listen(const Netns& ns, Address address, std::uint16_t port) {
  Fd socket = socket_for(ns, address, SOCK_STREAM);
  const int on = 1;
  ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const auto bound = to_sockaddr({address, port});
  INFO("listen on " << to_string({address, port}) << " in " << ns.name());
  REQUIRE(::bind(socket.get(), bound.get(), bound.length) == 0);
  REQUIRE(::listen(socket.get(), 16) == 0);
  return socket;
}

Connected tcp_connect(const Netns& ns, Endpoint to, std::chrono::milliseconds timeout) {
  Connected connected;
  connected.socket = socket_for(ns, to.address, SOCK_STREAM | SOCK_NONBLOCK);
  const auto address = to_sockaddr(to);
  const int fd = connected.socket.get();
  if (::connect(fd, address.get(), address.length) == 0)
    return connected;
  if (errno != EINPROGRESS) {
    connected.error = errno;
    return connected;
  }
  if (!wait_for(fd, POLLOUT, Clock::now() + timeout)) {
    connected.error = ETIMEDOUT;
    return connected;
  }
  socklen_t length = sizeof connected.error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &connected.error, &length);
  if (connected.error == 0)
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return connected;
}

std::optional<Accepted> tcp_accept(const Fd& listener, std::chrono::milliseconds timeout) {
  if (!wait_for(listener.get(), POLLIN, Clock::now() + timeout))
    return std::nullopt;
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  Fd socket(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC));
  if (!socket)
    return std::nullopt;
  return Accepted{std::move(socket), from_sockaddr(peer)};
}

Fd udp_bind(const Netns& ns, Address address, std::uint16_t port) {
  Fd socket = socket_for(ns, address, SOCK_DGRAM);
  const auto bound = to_sockaddr({address, port});
  REQUIRE(::bind(socket.get(), bound.get(), bound.length) == 0);
  return socket;
}

void udp_send(const Fd& socket, Endpoint to, const std::string& payload) {
  const auto address = to_sockaddr(to);
  REQUIRE(::sendto(socket.get(), payload.data(), payload.size(), 0, address.get(), address.length)
          == static_cast<ssize_t>(payload.size()));
}

std::optional<Datagram> udp_receive(const Fd& socket, std::chrono::milliseconds timeout) {
  if (!wait_for(socket.get(), POLLIN, Clock::now() + timeout))
    return std::nullopt;
  std::array<char, 2048> buffer{};
  sockaddr_storage from{};
  socklen_t length = sizeof from;
  const ssize_t n = ::recvfrom(socket.get(), buffer.data(), buffer.size(), MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&from), &length);
  if (n < 0)
    return std::nullopt;
  return Datagram{from_sockaddr(from), std::string(buffer.data(), static_cast<std::size_t>(n))};
}

std::optional<address_v4> ping(const Netns& ns, address_v4 to, std::size_t ip_bytes,
                               std::chrono::milliseconds timeout) {
  Fd socket = ns.run([] { return Fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP)); });
  REQUIRE(socket);
  const int discover = IP_PMTUDISC_DO;  // DF, and EMSGSIZE instead of local fragmentation
  REQUIRE(::setsockopt(socket.get(), IPPROTO_IP, IP_MTU_DISCOVER, &discover, sizeof discover) == 0);

  static std::uint16_t next_id = static_cast<std::uint16_t>(::getpid());
  const std::uint16_t id = ++next_id;
  REQUIRE(ip_bytes >= sizeof(iphdr) + sizeof(icmphdr));
  std::vector<std::uint8_t> packet(ip_bytes - sizeof(iphdr));
  icmphdr header{};
  header.type = ICMP_ECHO;
  header.un.echo.id = htons(id);
  header.un.echo.sequence = htons(1);
  std::memcpy(packet.data(), &header, sizeof header);
  for (std::size_t i = sizeof header; i < packet.size(); ++i)
    packet[i] = static_cast<std::uint8_t>(i);
  const std::uint16_t checksum = icmp_checksum(packet.data(), packet.size());
  std::memcpy(packet.data() + offsetof(icmphdr, checksum), &checksum, sizeof checksum);

  const auto address = to_sockaddr({to, 0});
  if (::sendto(socket.get(), packet.data(), packet.size(), 0, address.get(), address.length) < 0) {
    UNSCOPED_INFO("ping " << to.to_string() << " from " << ns.name() << ": "
                          << std::strerror(errno));
    return std::nullopt;
  }
  const auto deadline = Clock::now() + timeout;
  std::vector<std::uint8_t> reply(65536);
  while (wait_for(socket.get(), POLLIN, deadline)) {
    sockaddr_storage from{};
    socklen_t length = sizeof from;
    const ssize_t n = ::recvfrom(socket.get(), reply.data(), reply.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &length);
    if (n < static_cast<ssize_t>(sizeof(iphdr)))
      continue;
    const std::size_t header_length = (reply[0] & 0x0f) * 4u;
    if (static_cast<std::size_t>(n) < header_length + sizeof(icmphdr))
      continue;
    icmphdr answer{};
    std::memcpy(&answer, reply.data() + header_length, sizeof answer);
    if (answer.type == ICMP_ECHOREPLY && ntohs(answer.un.echo.id) == id
        && static_cast<std::size_t>(n) == ip_bytes)
      return from_sockaddr(from).address.to_v4();
  }
  return std::nullopt;
}

bool transfer(const Fd& sender, const Fd& receiver, std::size_t bytes,
              std::chrono::milliseconds timeout) {
  set_timeouts(sender.get(), timeout);
  set_timeouts(receiver.get(), timeout);
  std::thread writer([&sender, bytes] {
    std::vector<std::uint8_t> chunk(64 * 1024);
    for (std::size_t sent = 0; sent < bytes;) {
      const std::size_t length = std::min(chunk.size(), bytes - sent);
      for (std::size_t i = 0; i < length; ++i)
        chunk[i] = pattern(sent + i);
      const ssize_t n = ::send(sender.get(), chunk.data(), length, MSG_NOSIGNAL);
      if (n <= 0)
        break;
      sent += static_cast<std::size_t>(n);
    }
    ::shutdown(sender.get(), SHUT_WR);
  });
  const auto deadline = Clock::now() + timeout;
  std::vector<std::uint8_t> chunk(64 * 1024);
  std::size_t received = 0;
  bool intact = true;
  while (received < bytes && Clock::now() < deadline) {
    const ssize_t n = ::recv(receiver.get(), chunk.data(), chunk.size(), 0);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; ++i)
      intact =
          intact
          && chunk[static_cast<std::size_t>(i)] == pattern(received + static_cast<std::size_t>(i));
    received += static_cast<std::size_t>(n);
  }
  ::shutdown(receiver.get(), SHUT_RDWR);  // unblocks the writer if we gave up
  writer.join();
  UNSCOPED_INFO("transferred " << received << " of " << bytes << " bytes");
  return intact && received == bytes;
}

int tcp_mss(const Fd& socket) {
  int mss = 0;
  socklen_t length = sizeof mss;
  REQUIRE(::getsockopt(socket.get(), IPPROTO_TCP, TCP_MAXSEG, &mss, &length) == 0);
  return mss;
}

std::uint16_t random_port() {
  static std::mt19937 generator{std::random_device{}()};
  static std::set<std::uint16_t> used{5900, 9250, 9251};
  std::uniform_int_distribution<int> distribution(20000, 59999);
  for (;;) {
    const auto port = static_cast<std::uint16_t>(distribution(generator));
    if (used.insert(port).second)
      return port;
  }
}

}  // namespace berth::net::test
