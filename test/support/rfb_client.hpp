#pragma once
// Test support: the start of an RFB (VNC) session as a real viewer speaks it (RFC 6143), from any
// network namespace: the server's ProtocolVersion, the security types it offers, and VNC
// authentication (type 2: the 16-byte challenge DES-encrypted with the password, each key byte's
// bits reversed, as every viewer does). Blocking, every read within a deadline.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace berth::test {

class RfbClient {
 public:
  static constexpr std::uint8_t kNone = 1;
  static constexpr std::uint8_t kVncAuth = 2;

  // Connects to ip:port from network namespace `netns` ("" = this one); connected() says whether
  // it worked within 3 s.
  RfbClient(const std::string& netns, const std::string& ip, std::uint16_t port) {
    // A socket belongs to the namespace it was made in: make it in a thread that entered `netns`.
    std::thread maker([&] {
      if (!netns.empty()) {
        const int ns = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
          if (ns >= 0)
            ::close(ns);
          return;
        }
        ::close(ns);
      }
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    });
    maker.join();
    if (fd_ < 0)
      return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
        && errno != EINPROGRESS)
      return;
    pollfd p{fd_, POLLOUT, 0};
    int error = 0;
    socklen_t length = sizeof error;
    connected_ = ::poll(&p, 1, 3000) == 1
                 && ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
  }
  ~RfbClient() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  RfbClient(const RfbClient&) = delete;
  RfbClient& operator=(const RfbClient&) = delete;

  bool connected() const { return connected_; }

  // Reads the server's ProtocolVersion, answers 3.8 and returns the security types offered
  // (empty: none, or the server failed the handshake). `version` gets the server's line.
  std::vector<std::uint8_t> security_types(std::string* version = nullptr) {
    std::string server(12, '\0');
    if (!read_exact(server.data(), server.size()))
      return {};
    if (version)
      *version = server;
    if (!write_all("RFB 003.008\n"))
      return {};
    std::uint8_t count = 0;
    if (!read_exact(&count, 1))
      return {};
    std::vector<std::uint8_t> types(count);
    if (count == 0 || !read_exact(types.data(), count))
      return {};
    return types;
  }

  // After security_types(): chooses VNC authentication and answers the challenge with `password`.
  // Returns the SecurityResult (0 accepted, 1 failed), nullopt when the exchange broke.
  std::optional<std::uint32_t> vnc_auth(const std::string& password) {
    const char choice = static_cast<char>(kVncAuth);
    std::array<std::uint8_t, 16> challenge{};
    if (!write_all(std::string(1, choice)) || !read_exact(challenge.data(), challenge.size()))
      return std::nullopt;
    const auto response = des_response(password, challenge);
    if (!response || !write_all(std::string(response->begin(), response->end())))
      return std::nullopt;
    std::array<std::uint8_t, 4> result{};
    if (!read_exact(result.data(), result.size()))
      return std::nullopt;
    return (std::uint32_t{result[0]} << 24) | (std::uint32_t{result[1]} << 16)
           | (std::uint32_t{result[2]} << 8) | result[3];
  }

  // RFB's DES: the key is the password's first 8 bytes (zero padded), each byte bit-reversed.
  // Single DES is triple DES with three equal keys (OpenSSL 3 keeps single DES in its legacy
  // provider only).
  static std::optional<std::array<std::uint8_t, 16>> des_response(
      const std::string& password, const std::array<std::uint8_t, 16>& challenge) {
    std::array<std::uint8_t, 24> key{};
    for (std::size_t i = 0; i < 8 && i < password.size(); ++i) {
      std::uint8_t b = static_cast<std::uint8_t>(password[i]), reversed = 0;
      for (int bit = 0; bit < 8; ++bit)
        reversed = static_cast<std::uint8_t>(reversed | (((b >> bit) & 1) << (7 - bit)));
      key[i] = key[i + 8] = key[i + 16] = reversed;
    }
    for (std::size_t i = password.size(); i < 8; ++i)
      key[i] = key[i + 8] = key[i + 16] = 0;
    std::array<std::uint8_t, 16> out{};
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int written = 0;
    const bool ok = ctx && EVP_EncryptInit_ex(ctx, EVP_des_ede3_ecb(), nullptr, key.data(), nullptr)
                    && EVP_CIPHER_CTX_set_padding(ctx, 0)
                    && EVP_EncryptUpdate(ctx, out.data(), &written, challenge.data(), 16)
                    && written == 16;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
      return std::nullopt;
    return out;
  }

 private:
  bool wait(short events) {
    pollfd p{fd_, events, 0};
    return ::poll(&p, 1, 5000) == 1;
  }
  bool read_exact(void* data, std::size_t size) {
    auto* at = static_cast<char*>(data);
    while (size > 0) {
      if (!wait(POLLIN))
        return false;
      const ssize_t n = ::read(fd_, at, size);
      if (n <= 0)
        return false;
      at += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }
  bool write_all(const std::string& text) {
    return wait(POLLOUT)
           && ::write(fd_, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  }

  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace berth::test
