#pragma once
// A throw-away network for the root tests, made of namespaces named bdhcp-<role>-<pid>:
//
//   vm       eth0 52:54:00:12:34:56 ── tap0 ┐
//   stranger eth0 52:54:00:aa:bb:cc ── tap1 ├─ br0 192.168.254.1/30 (MTU 1450)   pod
//   node     eth0 10.77.0.1/24 ───────── up0 10.77.0.2/24                       pod
//
// The test process itself enters `pod` (setns) so the servers run in-process on br0; clients run
// as child processes through `ip netns exec`. Everything is removed by the destructor, and
// scripts run by CTest remove namespaces left by a crashed run (cleanup_netns.sh).

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace berth::dhcp::test {

struct Child {
  pid_t pid = -1;
  std::filesystem::path output;  // stdout and stderr
};

class NetnsLab {
 public:
  NetnsLab();
  ~NetnsLab();
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  std::string ns(const std::string& role) const;  // "bdhcp-vm-1234"
  const std::filesystem::path& dir() const { return dir_; }

  // Runs argv in the namespace of `role` (ip netns exec), output to dir()/<name>.out.
  Child spawn(const std::string& role, const std::string& name, std::vector<std::string> argv);
  // Runs `io` until `done` returns true (checked every 20 ms) or `timeout`; says which.
  bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                 std::chrono::milliseconds timeout);
  // Runs `io` until the child exits; its exit status, or -1 after a timeout (it is then killed).
  int wait(boost::asio::io_context& io, Child& child, std::chrono::milliseconds timeout);
  void stop(Child& child);  // SIGTERM, then SIGKILL after 2 s

  // Starts dnsmasq in `node` as the upstream DNS server (10.77.0.1:53) and waits for it.
  void start_upstream_dns(boost::asio::io_context& io);

 private:
  void run(const std::vector<std::string>& argv);
  void teardown();
  std::string tag_;
  std::filesystem::path dir_;
  int original_netns_ = -1;
  std::vector<std::string> namespaces_;
  std::vector<Child> children_;
};

// The whole file as a string ("" when missing).
std::string slurp(const std::filesystem::path& path);
// VAR=value lines (env output) → value of `name`, or "" when missing.
std::string env_value(const std::string& env, const std::string& name);

}  // namespace berth::dhcp::test
