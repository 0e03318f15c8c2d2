#pragma once
// Test support: a blocking QMP client for a test's own extra monitor (-qmp via BERTH_QEMU_ARGS),
// so a test can act on the VM as an outsider would (reset, power button) while berth supervises.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

namespace berth::test {

class QmpProbe {
 public:
  // Connects (retrying for up to 30 s) and negotiates capabilities; false on failure.
  bool connect(const std::string& path) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
        return read_line().find("\"QMP\"") != std::string::npos
               && execute("qmp_capabilities").find("\"return\"") != std::string::npos;
      ::close(fd_);
      fd_ = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // Sends a command, with `arguments` (a JSON object's text) when given, and returns the reply
  // line (events before it are skipped).
  std::string execute(const std::string& command, const std::string& arguments = "") {
    const std::string line = "{\"execute\":\"" + command + "\""
                             + (arguments.empty() ? "" : ",\"arguments\":" + arguments) + "}\r\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      return {};
    for (;;) {
      std::string reply = read_line();
      if (reply.empty() || reply.find("\"event\"") == std::string::npos)
        return reply;
    }
  }

  ~QmpProbe() {
    if (fd_ >= 0)
      ::close(fd_);
  }

 private:
  std::string read_line() {
    std::string line;
    char c;
    while (::read(fd_, &c, 1) == 1) {
      if (c == '\n')
        return line;
      line += c;
    }
    return line;
  }
  int fd_ = -1;
};

}  // namespace berth::test
