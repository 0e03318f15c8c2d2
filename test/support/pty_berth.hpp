#pragma once
// Test support: the real berth binary with a pseudo-terminal as its stdin and stdout, the way a
// container with `stdin: true` and `tty: true` runs it; the test reads and types on the other end.

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "test/support/berth_process.hpp"

namespace berth::test {

// berth with a pty as its stdin and stdout (stderr: a log file), as `kubectl attach -it` gives it
// a terminal.
struct PtyBerth {
  int master = -1, slave = -1;
  pid_t pid = -1;
  fs::path log;
  std::string seen;  // everything read from the terminal
  termios before{};

  // Runs `prefix... berth` with `env` added to ours; berth's log goes to `log_file`.
  PtyBerth(std::vector<std::string> prefix, const std::vector<std::string>& env, fs::path log_file)
      : log(std::move(log_file)) {
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, nullptr) == 0);
    REQUIRE(::tcgetattr(slave, &before) == 0);
    auto argv = std::move(prefix);
    argv.push_back(berth_binary());
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setsid();
      ::close(master);
      exec_with(argv, env, slave, slave, ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    }
  }
  ~PtyBerth() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(master);
    ::close(slave);
  }

  // Reads the terminal until `text` has appeared after `from` (an offset into seen); the offset
  // just past it, or nullopt after `limit`.
  std::optional<std::size_t> wait_for(const std::string& text, std::size_t from,
                                      std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (const auto at = seen.find(text, from); at != std::string::npos)
        return at + text.size();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        break;
      if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = -1;  // berth exited: its log says why
        break;
      }
      pollfd fd{master, POLLIN, 0};
      if (::poll(&fd, 1, static_cast<int>(std::min<long>(left.count(), 200))) > 0) {
        char buffer[4096];
        const ssize_t n = ::read(master, buffer, sizeof buffer);
        if (n <= 0)
          break;
        seen.append(buffer, static_cast<std::size_t>(n));
      }
    }
    std::fprintf(stderr,
                 "--- waited in vain for \"%s\"; terminal tail:\n%s\n--- berth's log:\n%s\n",
                 text.c_str(), seen.substr(seen.size() > 3000 ? seen.size() - 3000 : 0).c_str(),
                 slurp(log).c_str());
    return std::nullopt;
  }
  void type(const std::string& keys) const {
    REQUIRE(::write(master, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
  }
  std::optional<int> wait_exit(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (pid > 0 && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      char buffer[4096];
      pollfd fd{master, POLLIN, 0};
      if (::poll(&fd, 1, 50) > 0 && ::read(master, buffer, sizeof buffer) > 0) {
      }
    }
    return std::nullopt;
  }
};

}  // namespace berth::test
