#pragma once
// Test helpers for the root tier: network namespaces made with `ip netns`, entered in-process with
// setns(2) so product code and sockets run inside them, and small socket probes with deadlines.
// Every probe returns within its timeout; every namespace is deleted by its destructor.

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace berth::net::test {

using boost::asio::ip::address_v4;
using Address = boost::asio::ip::address;  // IPv4 or IPv6: the sockets' family follows it
using namespace std::chrono_literals;

struct ShellResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh -c (tests only; product code never runs a shell).
ShellResult shell(const std::string& command);

// Runs `command` and fails the current test, showing its output, when it exits non-zero.
std::string must(const std::string& command);

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A named network namespace (`ip netns add`), deleted on destruction.
class Netns {
 public:
  explicit Netns(std::string name);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }
  // "ip netns exec <name> <command>".
  std::string exec(const std::string& command) const;
  // Calls `f` with the calling thread inside this namespace, and returns its result.
  template <class F>
  auto run(F&& f) const {
    Entered entered(fd_.get());
    return f();
  }

 private:
  class Entered {
   public:
    explicit Entered(int fd);
    ~Entered();
    Entered(const Entered&) = delete;
    Entered& operator=(const Entered&) = delete;
  };
  std::string name_;
  Fd fd_;
};

struct Endpoint {
  Address address;
  std::uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};
std::string to_string(const Endpoint& endpoint);

// A TCP listener on address:port inside `ns` (address 0.0.0.0 or :: for any).
Fd tcp_listen(const Netns& ns, Address address, std::uint16_t port);

// A TCP connection from inside `ns`, or the errno that ended the attempt (ETIMEDOUT after
// `timeout`).
struct Connected {
  Fd socket;
  int error = 0;
};
Connected tcp_connect(const Netns& ns, Endpoint to, std::chrono::milliseconds timeout = 2s);

// The next connection queued on `listener` and its peer, or nothing after `timeout`.
struct Accepted {
  Fd socket;
  Endpoint peer;
};
std::optional<Accepted> tcp_accept(const Fd& listener, std::chrono::milliseconds timeout = 2s);

// A UDP socket bound to address:port inside `ns`.
Fd udp_bind(const Netns& ns, Address address, std::uint16_t port);
// Sends `payload` from `socket` to `to`.
void udp_send(const Fd& socket, Endpoint to, const std::string& payload);
// The next datagram on `socket` and its sender, or nothing after `timeout`.
struct Datagram {
  Endpoint from;
  std::string payload;
};
std::optional<Datagram> udp_receive(const Fd& socket, std::chrono::milliseconds timeout = 2s);

// Sends one ICMP echo request of `ip_bytes` bytes (IP header included) with DF set from inside
// `ns` and waits for the matching reply. Returns the replying address, or nothing.
std::optional<address_v4> ping(const Netns& ns, address_v4 to, std::size_t ip_bytes,
                               std::chrono::milliseconds timeout = 2s);

// Writes `bytes` pseudo-random bytes into `sender` while `receiver` reads them (two threads);
// true when every byte arrived intact within `timeout`.
bool transfer(const Fd& sender, const Fd& receiver, std::size_t bytes,
              std::chrono::milliseconds timeout = 15s);

// The TCP MSS the kernel uses on `socket` (TCP_MAXSEG).
int tcp_mss(const Fd& socket);

// A random port in 20000-59999, different on every call, avoiding 5900 and 9250-9251.
std::uint16_t random_port();

}  // namespace berth::net::test
