#include "netns_lab.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace berth::dhcp::test {
namespace {

pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& output) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string env_value(const std::string& env, const std::string& name) {
  std::istringstream in(env);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(name + "=")) {
      std::string value = line.substr(name.size() + 1);
      if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'')
        value = value.substr(1, value.size() - 2);
      return value;
    }
  }
  return "";
}

NetnsLab::NetnsLab() : tag_(std::to_string(::getpid())) {
  dir_ = std::filesystem::temp_directory_path() / ("bdhcp-" + tag_);
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  original_netns_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  try {
    for (const char* role : {"pod", "vm", "stranger", "node"}) {
      run({"ip", "netns", "add", ns(role)});
      namespaces_.push_back(ns(role));
      run({"ip", "-n", ns(role), "link", "set", "lo", "up"});
    }
    const std::string pod = ns("pod");
    run({"ip", "-n", pod, "link", "add", "br0", "mtu", "1450", "type", "bridge"});
    run({"ip", "-n", pod, "addr", "add", "192.168.254.1/30", "dev", "br0"});
    run({"ip", "-n", pod, "link", "set", "br0", "up"});
    const std::pair<const char*, const char*> ports[] = {{"tap0", "vm"}, {"tap1", "stranger"}};
    for (const auto& [port, role] : ports) {
      run({"ip", "-n", pod, "link", "add", port, "mtu", "1450", "type", "veth", "peer", "name",
           "eth0", "netns", ns(role)});
      run({"ip", "-n", pod, "link", "set", port, "master", "br0", "up"});
      run({"ip", "-n", ns(role), "link", "set", "eth0", "up"});
    }
    run({"ip", "-n", ns("vm"), "link", "set", "eth0", "address", "52:54:00:12:34:56"});
    run({"ip", "-n", ns("stranger"), "link", "set", "eth0", "address", "52:54:00:aa:bb:cc"});
    run({"ip", "-n", ns("stranger"), "addr", "add", "10.99.0.5/24", "dev", "eth0"});
    run({"ip", "-n", ns("stranger"), "route", "add", "192.168.254.1/32", "dev", "eth0"});
    run({"ip", "-n", pod, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns",
         ns("node")});
    run({"ip", "-n", pod, "addr", "add", "10.77.0.2/24", "dev", "up0"});
    run({"ip", "-n", pod, "link", "set", "up0", "up"});
    run({"ip", "-n", ns("node"), "addr", "add", "10.77.0.1/24", "dev", "eth0"});
    run({"ip", "-n", ns("node"), "link", "set", "eth0", "up"});
    const int pod_fd = ::open(("/var/run/netns/" + pod).c_str(), O_RDONLY | O_CLOEXEC);
    if (pod_fd < 0 || ::setns(pod_fd, CLONE_NEWNET) != 0)
      throw std::runtime_error("setns " + pod + ": " + std::strerror(errno));
    ::close(pod_fd);
  } catch (...) {
    teardown();
    throw;
  }
}

NetnsLab::~NetnsLab() {
  teardown();
}

void NetnsLab::teardown() {
  for (auto& child : children_)
    stop(child);
  children_.clear();
  if (original_netns_ >= 0) {
    ::setns(original_netns_, CLONE_NEWNET);
    ::close(original_netns_);
    original_netns_ = -1;
  }
  for (const auto& name : namespaces_) {
    const std::string command = "ip netns del " + name + " 2>/dev/null";
    (void)std::system(command.c_str());
  }
  namespaces_.clear();
  if (!std::getenv("BDHCP_KEEP_OUTPUT"))
    std::filesystem::remove_all(dir_);
}

std::string NetnsLab::ns(const std::string& role) const {
  return "bdhcp-" + role + "-" + tag_;
}

void NetnsLab::run(const std::vector<std::string>& argv) {
  const pid_t pid = spawn_process(argv, dir_ / "setup.out");
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command;
    for (const auto& a : argv)
      command += a + " ";
    throw std::runtime_error("failed: " + command + "\n" + slurp(dir_ / "setup.out"));
  }
}

Child NetnsLab::spawn(const std::string& role, const std::string& name,
                      std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"ip", "netns", "exec", ns(role)});
  Child child{-1, dir_ / (name + ".out")};
  child.pid = spawn_process(argv, child.output);
  children_.push_back(child);
  return child;
}

bool NetnsLab::run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    if (io.stopped())
      io.restart();
    io.run_for(std::chrono::milliseconds(20));
    if (io.stopped())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // nothing to run
  }
}

int NetnsLab::wait(boost::asio::io_context& io, Child& child, std::chrono::milliseconds timeout) {
  int status = 0;
  const bool exited = run_until(
      io, [&] { return child.pid < 0 || ::waitpid(child.pid, &status, WNOHANG) == child.pid; },
      timeout);
  if (!exited) {
    stop(child);
    return -1;
  }
  child.pid = -1;
  for (auto& c : children_)
    if (c.output == child.output)
      c.pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void NetnsLab::stop(Child& child) {
  if (child.pid <= 0)
    return;
  ::kill(child.pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(child.pid, nullptr, WNOHANG) == child.pid) {
      child.pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(child.pid, SIGKILL);
  ::waitpid(child.pid, nullptr, 0);
  child.pid = -1;
}

void NetnsLab::start_upstream_dns(boost::asio::io_context& io) {
  std::vector<std::string> argv = {
      "dnsmasq",           "--keep-in-foreground", "--conf-file=/dev/null",
      "--no-resolv",       "--no-hosts",           "--listen-address=10.77.0.1",
      "--bind-interfaces", "--pid-file=",          "--host-record=vm.test,10.1.2.3",
      "--log-facility=-"};
  // 8 TXT records of ~100 bytes: over 512 bytes, under 1232.
  for (int i = 1; i <= 8; ++i)
    argv.push_back("--txt-record=big.test,record-" + std::to_string(i) + "-"
                   + std::string(90, 'x'));
  spawn("node", "dnsmasq", argv);
  // Ready when its TCP port accepts (this process is in `pod`, which routes to node).
  const bool ready = run_until(
      io,
      [] {
        const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(53);
        ::inet_pton(AF_INET, "10.77.0.1", &to.sin_addr);
        const bool ok = ::connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0;
        ::close(s);
        return ok;
      },
      std::chrono::seconds(5));
  if (!ready)
    throw std::runtime_error("dnsmasq did not start:\n" + slurp(dir_ / "dnsmasq.out"));
}

}  // namespace berth::dhcp::test
