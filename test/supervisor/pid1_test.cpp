// PID-1 behaviour, tested for real. "[children]" runs as PID 1 of a fresh PID namespace (ctest
// starts it under `unshare --pid --fork --mount-proc`); "[binary]" starts the berth binary as PID 1
// of its own namespace and talks to it with signals and nsenter, as Kubernetes would.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "supervisor/children.hpp"

using namespace berth;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Fields of /proc/<pid>/stat after the command name: state and parent pid.
struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
};
std::optional<ProcStat> proc_stat(pid_t pid) {
  const std::string text = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  ProcStat stat;
  rest >> stat.state >> stat.ppid;
  return stat;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const pid_t pid = std::stoi(name);
    if (auto stat = proc_stat(pid); stat && stat->ppid == parent)
      pids.push_back(pid);
  }
  return pids;
}

std::size_t zombies() {
  std::size_t count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    if (auto stat = proc_stat(std::stoi(name)); stat && stat->state == 'Z')
      ++count;
  }
  return count;
}

// Runs `io` until `done` or the deadline.
template <typename Pred>
bool run_until(boost::asio::io_context& io, Pred done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(20ms);
    io.restart();
  }
  return done();
}

}  // namespace

TEST_CASE("children: exit codes and signals are reported shell-style", "[children]") {
  REQUIRE(::getpid() == 1);
  boost::asio::io_context io;
  ChildReaper reaper(io);
  std::optional<ExitStatus> killed, exited;
  boost::system::error_code ec;
  reaper.spawn(
      {.argv = {"sh", "-c", "kill -9 $$"}}, [&](ExitStatus s) { killed = s; }, ec);
  REQUIRE_FALSE(ec);
  reaper.spawn(
      {.argv = {"sh", "-c", "exit 3"}}, [&](ExitStatus s) { exited = s; }, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(run_until(io, [&] { return killed && exited; }));
  CHECK(killed->as_shell_code() == 137);
  CHECK(killed->describe() == "killed by signal 9 (SIGKILL)");
  CHECK(exited->as_shell_code() == 3);
  CHECK(exited->describe() == "exited with code 3");
  CHECK(reaper.running() == 0);
}

TEST_CASE("children: orphans re-parented to PID 1 are reaped, none left as zombies", "[children]") {
  REQUIRE(::getpid() == 1);
  boost::asio::io_context io;
  ChildReaper reaper(io);
  bool shell_done = false;
  boost::system::error_code ec;
  // The shell leaves two background sleeps behind; they become our orphans.
  reaper.spawn(
      {.argv = {"sh", "-c", "sleep 0.3 & sleep 0.4 & exit 0"}},
      [&](ExitStatus) { shell_done = true; }, ec);
  REQUIRE_FALSE(ec);
  REQUIRE(run_until(io, [&] { return shell_done; }));
  CHECK(children_of(1).size() == 2);  // the orphans now hang below us
  REQUIRE(run_until(io, [&] { return reaper.orphans_reaped() == 2; }));
  CHECK(children_of(1).empty());
  CHECK(zombies() == 0);
}

TEST_CASE("children: the child starts with an empty mask, default dispositions, own group",
          "[children]") {
  REQUIRE(::getpid() == 1);
  boost::asio::io_context io;
  ChildReaper reaper(io);
  // What berth itself does: ignore SIGPIPE, and (as an Asio program) block nothing but handle
  // signals. Block one here too, to see it cleared.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, nullptr);

  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  std::optional<ExitStatus> status;
  boost::system::error_code ec;
  const pid_t pid = reaper.spawn(
      {.argv = {"sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; ps -o pgid= -p $$"},
       .stdout_fd = out[1]},
      [&](ExitStatus s) { status = s; }, ec);
  ::close(out[1]);
  REQUIRE_FALSE(ec);
  REQUIRE(run_until(io, [&] { return status.has_value(); }));
  std::string text(4096, '\0');
  text.resize(
      static_cast<std::size_t>(std::max<ssize_t>(0, ::read(out[0], text.data(), text.size()))));
  ::close(out[0]);
  sigprocmask(SIG_UNBLOCK, &block, nullptr);
  CHECK_THAT(text, Catch::Contains("SigBlk:\t0000000000000000"));
  CHECK_THAT(text, Catch::Contains("SigIgn:\t0000000000000000"));
  CHECK_THAT(text, Catch::EndsWith(" " + std::to_string(pid) + "\n")
                       || Catch::Contains("\n" + std::to_string(pid) + "\n"));
}

TEST_CASE("children: a program that does not exist is an error, not a child", "[children]") {
  boost::asio::io_context io;
  ChildReaper reaper(io);
  boost::system::error_code ec;
  CHECK(reaper.spawn({.argv = {"/nonexistent/qemu"}}, {}, ec) == -1);
  CHECK(ec == boost::system::errc::no_such_file_or_directory);
  CHECK(reaper.spawn({.argv = {"no-such-program-berth"}}, {}, ec) == -1);
  CHECK(ec == boost::system::errc::no_such_file_or_directory);
  CHECK(reaper.running() == 0);
}

// ---- The berth binary as PID 1 of its own PID namespace.

namespace {

struct Berth {
  pid_t unshare_pid = -1;
  pid_t berth_pid = -1;  // berth's pid as seen from here (it is 1 inside its namespace)
  fs::path log;

  // Starts `unshare --pid --fork --mount-proc berth` with `env` added to ours.
  explicit Berth(const std::vector<std::string>& env) {
    const char* binary = std::getenv("BERTH_BINARY");
    REQUIRE(binary != nullptr);
    log = fs::temp_directory_path() / ("berth-pid1-" + std::to_string(::getpid()) + ".log");
    unshare_pid = ::fork();
    REQUIRE(unshare_pid >= 0);
    if (unshare_pid == 0) {
      for (const auto& kv : env)
        ::putenv(const_cast<char*>(kv.c_str()));
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, STDERR_FILENO);
      ::execlp("unshare", "unshare", "--pid", "--fork", "--mount-proc", binary, nullptr);
      ::_exit(127);
    }
  }

  // Finds berth's pid: the child of unshare.
  void find_pid() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (berth_pid < 0 && std::chrono::steady_clock::now() < deadline) {
      if (auto kids = children_of(unshare_pid); !kids.empty())
        berth_pid = kids.front();
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(berth_pid > 0);
  }

  bool log_contains(const std::string& text, std::chrono::milliseconds limit = 10s) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    do {
      if (slurp(log).find(text) != std::string::npos)
        return true;
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

  // Waits for unshare, which exits with berth's status.
  int wait() {
    int status = 0;
    ::waitpid(unshare_pid, &status, 0);
    unshare_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  ~Berth() {
    if (unshare_pid > 0) {
      ::kill(berth_pid > 0 ? berth_pid : unshare_pid, SIGKILL);
      wait();
    }
    fs::remove(log);
  }
};

const std::vector<std::string> kEnv = {"IMG_SOURCE=/dev/null", "BERTH_LOG_LEVEL=debug"};

}  // namespace

TEST_CASE("binary: SIGTERM to berth as PID 1 stops it with exit code 0", "[binary]") {
  Berth berth(kEnv);
  berth.find_pid();
  REQUIRE(berth.log_contains("-> running"));
  CHECK(berth.log_contains("as pid 1\n", 0ms));
  ::kill(berth.berth_pid, SIGTERM);
  CHECK(berth.wait() == 0);
  CHECK(berth.log_contains("SIGTERM received: graceful stop", 0ms));
  CHECK(berth.log_contains("exiting with code 0", 0ms));
}

TEST_CASE("binary: SIGQUIT is a fast stop with exit code 128+3", "[binary]") {
  Berth berth(kEnv);
  berth.find_pid();
  REQUIRE(berth.log_contains("-> running"));
  ::kill(berth.berth_pid, SIGQUIT);
  CHECK(berth.wait() == 131);
}

TEST_CASE("binary: orphans in berth's namespace are reaped by berth", "[binary]") {
  Berth berth(kEnv);
  berth.find_pid();
  REQUIRE(berth.log_contains("-> running"));
  // nsenter's child runs inside berth's PID namespace; when the shell exits, its background sleep
  // is re-parented to the namespace's init: berth.
  const std::string command = "nsenter --target " + std::to_string(berth.berth_pid)
                              + " --pid -- sh -c 'sleep 0.5 & exit 0'";
  REQUIRE(std::system(command.c_str()) == 0);
  const auto orphans = children_of(berth.berth_pid);
  REQUIRE(orphans.size() == 1);  // the sleep, now berth's child
  std::this_thread::sleep_for(1500ms);
  CHECK_FALSE(proc_stat(orphans.front()).has_value());  // reaped: gone, not a zombie
  ::kill(berth.berth_pid, SIGTERM);
  CHECK(berth.wait() == 0);
}

TEST_CASE("binary: an invalid VM_IP ends berth with the configuration code, naming VM_IP",
          "[binary]") {
  Berth berth({"IMG_SOURCE=/dev/null", "VM_IP=300.1.1.1"});
  CHECK(berth.wait() == 3);
  CHECK(berth.log_contains("VM_IP: \"300.1.1.1\" is not an IPv4 address", 0ms));
}
