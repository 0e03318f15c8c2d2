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
#include "test/support/berth_process.hpp"

using namespace berth;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using test::slurp;

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

// What a finished child wrote to the pipe end `fd` (one read: it is short), which is then closed.
std::string read_and_close(int fd) {
  std::string text(8192, '\0');
  text.resize(static_cast<std::size_t>(std::max<ssize_t>(0, ::read(fd, text.data(), text.size()))));
  ::close(fd);
  return text;
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
  const std::string text = read_and_close(out[0]);
  sigprocmask(SIG_UNBLOCK, &block, nullptr);
  CHECK_THAT(text, Catch::Contains("SigBlk:\t0000000000000000"));
  CHECK_THAT(text, Catch::Contains("SigIgn:\t0000000000000000"));
  CHECK_THAT(text, Catch::EndsWith(" " + std::to_string(pid) + "\n")
                       || Catch::Contains("\n" + std::to_string(pid) + "\n"));
}

TEST_CASE(
    "children: a child with credentials and dropped privileges has no capability left, "
    "and inherits only the descriptors asked for",
    "[children]") {
  boost::asio::io_context io;
  ChildReaper reaper(io);
  int out[2], kept[2], closed[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(kept, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(closed, O_CLOEXEC) == 0);
  const std::string script =
      "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs):' /proc/self/status; "
      "ls /proc/self/fd/"
      + std::to_string(kept[1]) + " /proc/self/fd/" + std::to_string(closed[1]) + " 2>&1";
  std::optional<ExitStatus> status;
  boost::system::error_code ec;
  reaper.spawn(
      {.argv = {"sh", "-c", script},
       .stdout_fd = out[1],
       .credentials = Credentials{4242, 4343, {4444}},
       .privileges = Privileges::kDrop,
       .inherit_fds = {kept[1]}},
      [&](ExitStatus s) { status = s; }, ec);
  for (int fd : {out[1], kept[0], kept[1], closed[0], closed[1]})
    ::close(fd);
  REQUIRE_FALSE(ec);
  REQUIRE(run_until(io, [&] { return status.has_value(); }));
  const std::string text = read_and_close(out[0]);
  INFO(text);
  CHECK_THAT(text, Catch::Contains("Uid:\t4242\t4242\t4242\t4242\n"));
  CHECK_THAT(text, Catch::Contains("Gid:\t4343\t4343\t4343\t4343\n"));
  CHECK_THAT(text, Catch::Contains("Groups:\t4444 \n"));
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    CHECK_THAT(text, Catch::Contains(std::string(set) + ":\t0000000000000000\n"));
  CHECK_THAT(text, Catch::Contains("NoNewPrivs:\t1\n"));
  CHECK_THAT(text, Catch::Contains("/proc/self/fd/" + std::to_string(kept[1]) + "\n"));
  CHECK_THAT(text, Catch::Contains("/proc/self/fd/" + std::to_string(closed[1])
                                   + "': No such file or directory"));
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

// ---- The berth binary as PID 1 of its own PID namespace, running the test guest.

namespace {

// berth under `unshare --pid --fork --mount-proc`: unshare is our child, berth its child.
struct Pid1Berth {
  test::TempDir dir;
  test::PodNet net;
  test::BerthProcess process;
  pid_t berth_pid = -1;  // as seen from here (it is 1 inside its namespace)

  explicit Pid1Berth(std::vector<std::string> env = {})
      : process(dir.path, with_guest(std::move(env), dir.path), prefix(net)) {}

  static std::vector<std::string> prefix(const test::PodNet& net) {
    auto argv = net.in_pod();
    argv.insert(argv.end(), {"unshare", "--pid", "--fork", "--mount-proc"});
    return argv;
  }

  static std::vector<std::string> with_guest(std::vector<std::string> env, const fs::path& dir) {
    env.push_back("IMG_SOURCE=" + test::test_guest());
    env.push_back("BERTH_DISK_DIR=" + (dir / "disks").string());
    env.push_back("BERTH_RUNTIME_DIR=" + (dir / "run").string());
    env.push_back("BERTH_IMAGE_DIR=" + (dir / "images").string());
    for (const char* input : {"USERDATA", "METADATA", "NETWORKDATA"})
      env.push_back(std::string("BERTH_") + input + "=" + (dir / "none").string());
    env.push_back("VM_ACCEL=tcg");
    env.push_back("VM_MEMORY=256M");
    env.push_back("NO_VNC=1");
    return env;
  }

  // Finds berth's pid (unshare's child) and waits until the guest is up.
  void start() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (berth_pid < 0 && std::chrono::steady_clock::now() < deadline) {
      // ip netns exec execs unshare in place; unshare forks berth.
      if (auto kids = children_of(process.pid); !kids.empty())
        berth_pid = kids.front();
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(berth_pid > 0);
    INFO(process.log_text());
    REQUIRE(process.wait_console("berth-guest: ready"));
  }
};

}  // namespace

TEST_CASE("binary: SIGTERM to berth as PID 1 powers the guest off and exits 0", "[binary]") {
  Pid1Berth berth;
  berth.start();
  CHECK(berth.process.wait_log("starting as pid 1\\n", 0ms));
  ::kill(berth.berth_pid, SIGTERM);
  INFO(berth.process.log_text());
  CHECK(berth.process.wait_exit(40s) == 0);
  CHECK(berth.process.wait_log("SIGTERM received: graceful stop", 0ms));
  CHECK(berth.process.wait_console("berth-guest: powering off", 0ms));
  CHECK(berth.process.wait_log("exiting with code 0", 0ms));
}

TEST_CASE("binary: SIGQUIT is a fast stop with exit code 128+3", "[binary]") {
  Pid1Berth berth;
  berth.start();
  ::kill(berth.berth_pid, SIGQUIT);
  INFO(berth.process.log_text());
  CHECK(berth.process.wait_exit(20s) == 131);
  CHECK_FALSE(berth.process.wait_console("berth-guest: powering off", 0ms));
}

TEST_CASE("binary: orphans in berth's namespace are reaped by berth", "[binary]") {
  Pid1Berth berth;
  berth.start();
  // nsenter's child runs inside berth's PID namespace; when the shell exits, its background sleep
  // is re-parented to the namespace's init: berth.
  const std::string command =
      "nsenter --target " + std::to_string(berth.berth_pid) + " --pid -- sh -c 'sleep 4 & exit 0'";
  REQUIRE(std::system(command.c_str()) == 0);
  std::vector<pid_t> orphans;
  for (int i = 0; i < 30 && orphans.empty(); ++i) {
    for (pid_t child : children_of(berth.berth_pid)) {
      if (slurp("/proc/" + std::to_string(child) + "/comm") == "sleep\n")
        orphans.push_back(child);
    }
    if (orphans.empty())
      std::this_thread::sleep_for(100ms);
  }
  REQUIRE(orphans.size() == 1);  // the sleep, now berth's child
  // Once the sleep ends, berth must reap it: gone from /proc, not left as a zombie.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (proc_stat(orphans.front()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  CHECK_FALSE(proc_stat(orphans.front()).has_value());
  ::kill(berth.berth_pid, SIGTERM);
  CHECK(berth.process.wait_exit(40s) == 0);
}

TEST_CASE("binary: an invalid VM_IP ends berth with the configuration code, naming VM_IP",
          "[binary]") {
  test::TempDir dir;
  test::BerthProcess berth(dir.path, {"IMG_SOURCE=/dev/null", "VM_IP=300.1.1.1"});
  CHECK(berth.wait_exit(10s) == 3);
  CHECK(berth.wait_log("VM_IP: \"300\\.1\\.1\\.1\" is not an IPv4 address", 0ms));
}
