#pragma once
// Test support for the drive module: temporary directories, captured logs, running a coroutine to
// completion, running programs synchronously, and the fault-injecting HTTP(S) server.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"

// REQUIRE(result) shows the error message when it fails.
namespace Catch {
template <class T>
struct StringMaker<boost::system::result<T, berth::Error>> {
  static std::string convert(const boost::system::result<T, berth::Error>& r) {
    return r ? std::string("ok") : "error: " + r.error().message;
  }
};
}  // namespace Catch

namespace berth::drive::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void spit(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
}

// Deterministic pseudo-random bytes.
inline std::string random_bytes(std::size_t size, std::uint64_t seed = 42) {
  std::string data(size, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : data) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xff);
  }
  return data;
}

// A fresh directory under /tmp, removed with its contents when this goes out of scope.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "berth-drive-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

// A logger whose output the test can read; BERTH_TEST_LOG=1 also prints it to stderr.
struct CapturedLog {
  std::shared_ptr<std::ostringstream> out = std::make_shared<std::ostringstream>();
  std::shared_ptr<spdlog::logger> logger;
  CapturedLog() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out);
    logger = std::make_shared<spdlog::logger>("drive", sink);
    logger->set_level(spdlog::level::debug);
    logger->set_pattern("%l %v");
  }
  std::string text() const {
    if (std::getenv("BERTH_TEST_LOG"))
      std::fprintf(stderr, "%s", out->str().c_str());
    return out->str();
  }
};

// Runs `task` on `io` until it completes (or `limit` passes, which fails the test).
template <class T>
T run_sync(boost::asio::io_context& io, boost::asio::awaitable<T> task,
           std::chrono::steady_clock::duration limit = 60s) {
  std::optional<T> result;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e)
      result.emplace(std::move(value));
  });
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!result && !error && std::chrono::steady_clock::now() < deadline)
    io.run_for(50ms);
  if (error)
    std::rethrow_exception(error);
  REQUIRE(result.has_value());
  return std::move(*result);
}

// A child process started with fork/exec (no shell), stdout optionally on a pipe.
struct ChildProcess {
  pid_t pid = -1;
  int out = -1;
  std::string buffered;

  ChildProcess(const std::vector<std::string>& argv, bool capture_stdout) {
    int fds[2] = {-1, -1};
    if (capture_stdout)
      REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setpgid(0, 0);  // its own group: stop() ends what it started too
      if (capture_stdout)
        ::dup2(fds[1], STDOUT_FILENO);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    if (capture_stdout) {
      ::close(fds[1]);
      out = fds[0];
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess() {
    stop(SIGKILL);
    if (out >= 0)
      ::close(out);
  }
  // A line from stdout, waiting at most `limit`.
  std::optional<std::string> read_line(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (auto nl = buffered.find('\n'); nl != std::string::npos) {
        std::string line = buffered.substr(0, nl);
        buffered.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::read(out, chunk, sizeof chunk);
      if (n <= 0)
        return std::nullopt;
      buffered.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // Sends `signal` to it and to what it started (its process group), and reaps it; returns the
  // wait status. A grandchild left running would keep the descriptors it inherited, such as the
  // root tests' lock, open after the test.
  int stop(int signal) {
    if (pid <= 0)
      return 0;
    ::setpgid(pid, pid);  // in case the child has not run setpgid yet
    ::kill(-pid, signal);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
  // Waits for it to exit by itself.
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
};

// Runs a program to completion; returns its exit code (stdout and stderr in `output`).
inline int run_command(const std::vector<std::string>& argv, std::string* output = nullptr) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string text;
  char chunk[4096];
  for (ssize_t n; (n = ::read(fds[0], chunk, sizeof chunk)) > 0;)
    text.append(chunk, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (output)
    *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The fault-injecting server (fault_server.py) on 127.0.0.1, serving `root`.
struct FaultServer {
  fs::path log;
  std::optional<ChildProcess> process;
  int port = 0;
  bool tls = false;

  // `prefix`: argv that runs the server elsewhere, e.g. {"ip", "netns", "exec", <pod>} (it must
  // exec the server in place).
  FaultServer(const fs::path& root, const fs::path& work, std::optional<fs::path> cert = {},
              std::optional<fs::path> key = {}, std::vector<std::string> prefix = {})
      : log(work / "requests.jsonl"), tls(cert.has_value()) {
    std::vector<std::string> argv = std::move(prefix);
    argv.insert(argv.end(), {"/usr/bin/python3", BERTH_DRIVE_TEST_DIR "/fault_server.py", "--root",
                             root.string(), "--log", log.string()});
    if (cert) {
      argv.insert(argv.end(), {"--tls-cert", cert->string(), "--tls-key", key->string()});
    }
    process.emplace(argv, true);
    auto line = process->read_line(10s);
    REQUIRE(line.has_value());
    REQUIRE(line->rfind("PORT ", 0) == 0);
    port = std::stoi(line->substr(5));
  }

  std::string url(const std::string& path) const {
    return (tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port) + path;
  }

  // The requests logged so far whose path starts with `prefix`.
  std::vector<boost::json::object> requests(const std::string& prefix = "") const {
    std::vector<boost::json::object> result;
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
      auto value = boost::json::parse(line).as_object();
      if (std::string(value["path"].as_string()).rfind(prefix, 0) == 0)
        result.push_back(value);
    }
    return result;
  }
};

}  // namespace berth::drive::test
