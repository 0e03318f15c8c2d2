// Times the VM's network setup and teardown three ways, in a scratch network namespace shaped
// like a Calico pod (eth0 10.77.0.5/32, MTU 1450):
//   berth        net::PodNetwork::setup/teardown: libnl-3 requests and one nftables batch
//   ip+nft       the same with commands: ip (link, address, tuntap), sysctl, nft -f (one file)
//   ip+iptables  the same with commands, one iptables per rule, as the original bash script did
// Commands run with an argv (posix_spawnp), never a shell. Needs root.
//   net_bench [iterations]      (default 20; plus one warm-up round)

#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address_v4.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "net/network.hpp"
#include "test/net/sample.hpp"

extern char** environ;

namespace {

using namespace berth::net;
using Clock = std::chrono::steady_clock;
using Command = std::vector<std::string>;

std::string scratch_namespace;  // deleted on the way out, even after a failure
int original_namespace = -1;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "net_bench: %s\n", message.c_str());
  if (!scratch_namespace.empty()) {
    if (original_namespace >= 0)
      ::setns(original_namespace, CLONE_NEWNET);
    const std::string command = "ip netns del " + scratch_namespace;
    (void)std::system(command.c_str());
  }
  std::exit(1);
}

// Runs one command and waits for it; dies when it fails.
void run(const Command& command) {
  std::vector<char*> argv;
  for (const auto& word : command)
    argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    die("cannot run " + command[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string line;
    for (const auto& word : command)
      line += word + " ";
    die("failed: " + line);
  }
}

bool has_program(const char* name) {
  const std::string command = fmt::format("command -v {} >/dev/null 2>&1", name);
  return std::system(command.c_str()) == 0;  // setup only, not timed
}

struct Method {
  std::string name;
  std::function<void()> setup;
  std::function<void()> teardown;
  std::size_t processes = 0;  // commands spawned per setup + teardown
  std::vector<double> setup_ms;
  std::vector<double> teardown_ms;
};

// Commands, run one after the other.
std::function<void()> commands(std::vector<Command> list) {
  return [list = std::move(list)] {
    for (const auto& command : list)
      run(command);
  };
}

std::vector<Command> ip_plumbing() {
  return {
      {"ip", "link", "add", "br0", "type", "bridge"},
      {"ip", "link", "set", "br0", "mtu", "1450"},
      {"ip", "addr", "add", "192.168.254.1/30", "dev", "br0"},
      {"ip", "tuntap", "add", "dev", "tap0", "mode", "tap"},
      {"ip", "link", "set", "tap0", "mtu", "1450", "master", "br0", "up"},
      {"ip", "link", "set", "br0", "up"},
      {"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.br0.route_localnet=1"},
  };
}

std::vector<Command> ip_unplumbing() {
  return {
      {"ip", "link", "del", "tap0"},
      {"ip", "link", "del", "br0"},
      {"sysctl", "-qw", "net.ipv4.ip_forward=0"},
  };
}

// The iptables rules equivalent to Berth's table (see net/nat.hpp).
std::vector<Command> iptables_rules() {
  const std::string pod = "10.77.0.5";
  const std::string vm = "192.168.254.2";
  return {
      {"iptables", "-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-d", pod, "-p", "tcp", "-m",
       "multiport", "--dports", "5900,9250", "-j", "ACCEPT"},
      {"iptables", "-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-d", pod, "-j", "DNAT", "--to",
       vm},
      {"iptables", "-t", "nat", "-A", "OUTPUT", "-d", "127.0.0.1," + pod, "-p", "tcp", "-m",
       "multiport", "--dports", "5900,9250,9251", "-j", "ACCEPT"},
      {"iptables", "-t", "nat", "-A", "OUTPUT", "-d", "127.0.0.1", "-p", "tcp", "-j", "DNAT",
       "--to", vm},
      {"iptables", "-t", "nat", "-A", "OUTPUT", "-d", "127.0.0.1", "-p", "udp", "-j", "DNAT",
       "--to", vm},
      {"iptables", "-t", "nat", "-A", "OUTPUT", "-d", "127.0.0.1", "-p", "sctp", "-j", "DNAT",
       "--to", vm},
      {"iptables", "-t", "nat", "-A", "OUTPUT", "-d", pod, "-j", "DNAT", "--to", vm},
      {"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-s", vm, "-j", "SNAT", "--to",
       pod},
      {"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "br0", "-s", "127.0.0.0/8", "-j", "SNAT",
       "--to", "192.168.254.1"},
      {"iptables", "-A", "FORWARD", "-p", "tcp", "--tcp-flags", "SYN", "SYN", "-j", "TCPMSS",
       "--clamp-mss-to-pmtu"},
      {"iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j",
       "ACCEPT"},
      {"iptables", "-A", "FORWARD", "-i", "br0", "-o", "eth0", "-s", vm, "-j", "ACCEPT"},
      {"iptables", "-A", "FORWARD", "-i", "eth0", "-o", "br0", "-m", "conntrack", "--ctstate",
       "DNAT", "-j", "ACCEPT"},
      {"iptables", "-P", "FORWARD", "DROP"},
  };
}

std::vector<Command> iptables_flush() {
  return {
      {"iptables", "-t", "nat", "-F"},
      {"iptables", "-F", "FORWARD"},
      {"iptables", "-P", "FORWARD", "ACCEPT"},
  };
}

template <class... Lists>
std::vector<Command> join(Lists... lists) {
  std::vector<Command> all;
  (all.insert(all.end(), lists.begin(), lists.end()), ...);
  return all;
}

double percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  const auto index =
      static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
  return values[index];
}

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

void check_clean(const std::string& method) {
  if (::if_nametoindex("br0") != 0 || ::if_nametoindex("tap0") != 0)
    die(method + " left br0 or tap0 behind");
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  if (::geteuid() != 0)
    die("needs root (it creates a network namespace)");

  const std::string ns = fmt::format("bnet-bench-{}", ::getpid());
  run({"ip", "netns", "add", ns});
  scratch_namespace = ns;
  run({"ip", "-n", ns, "link", "set", "lo", "up"});
  run({"ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "node0"});
  run({"ip", "-n", ns, "link", "set", "eth0", "mtu", "1450", "up"});
  run({"ip", "-n", ns, "link", "set", "node0", "up"});
  run({"ip", "-n", ns, "addr", "add", "10.77.0.5/32", "dev", "eth0"});
  original_namespace = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int scratch = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (original_namespace < 0 || scratch < 0 || ::setns(scratch, CLONE_NEWNET) != 0)
    die("cannot enter " + ns);
  // From here on this thread, and every command it spawns, is inside the scratch namespace.

  const NetworkSpec spec = test::sample_spec();  // the configuration of the snapshot tests
  const std::string rules_file = fmt::format("/tmp/{}.nft", ns);
  std::ofstream(rules_file) << nft::render(build_nat_table(nat_spec(spec)));

  std::vector<Method> methods;
  std::optional<PodNetwork> network;
  methods.push_back({"berth (libnl + 1 nft batch)",
                     [&] {
                       auto set_up = PodNetwork::setup(spec);
                       if (!set_up)
                         die(set_up.error().message);
                       network.emplace(std::move(*set_up));
                     },
                     [&] {
                       if (auto done = network->teardown(); !done)
                         die(done.error().message);
                       network.reset();
                     },
                     0,
                     {},
                     {}});
  const auto nft_setup = join(ip_plumbing(), std::vector<Command>{{"nft", "-f", rules_file}});
  const auto nft_teardown =
      join(std::vector<Command>{{"nft", "delete", "table", "ip", "berth"}}, ip_unplumbing());
  methods.push_back({"ip + sysctl + nft -f",
                     commands(nft_setup),
                     commands(nft_teardown),
                     nft_setup.size() + nft_teardown.size(),
                     {},
                     {}});
  if (has_program("iptables")) {
    const auto ipt_setup = join(ip_plumbing(), iptables_rules());
    const auto ipt_teardown = join(iptables_flush(), ip_unplumbing());
    methods.push_back({"ip + sysctl + iptables",
                       commands(ipt_setup),
                       commands(ipt_teardown),
                       ipt_setup.size() + ipt_teardown.size(),
                       {},
                       {}});
  }

  for (int round = -1; round < iterations; ++round) {  // round -1 warms caches and modules up
    for (auto& method : methods) {
      auto start = Clock::now();
      method.setup();
      const double setup = elapsed_ms(start);
      start = Clock::now();
      method.teardown();
      const double teardown = elapsed_ms(start);
      check_clean(method.name);
      if (round >= 0) {
        method.setup_ms.push_back(setup);
        method.teardown_ms.push_back(teardown);
      }
    }
  }

  ::setns(original_namespace, CLONE_NEWNET);
  run({"ip", "netns", "del", ns});
  std::remove(rules_file.c_str());

  std::printf("%d rounds, scratch namespace shaped like a Calico pod, times in ms\n", iterations);
  std::printf("%-28s %9s %9s %12s %12s %10s\n", "method", "setup p50", "setup p90", "teardown p50",
              "teardown p90", "processes");
  for (const auto& method : methods)
    std::printf("%-28s %9.2f %9.2f %12.2f %12.2f %10zu\n", method.name.c_str(),
                percentile(method.setup_ms, 0.5), percentile(method.setup_ms, 0.9),
                percentile(method.teardown_ms, 0.5), percentile(method.teardown_ms, 0.9),
                method.processes);
  return 0;
}
