#pragma once
// Test support: runs the real berth binary (BERTH_BINARY) as a child with extra environment,
// its stdout (the guest console) and stderr (the log) in files, and waits on what it prints.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace berth::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The berth binary and the test guest images: the environment (BERTH_BINARY, BERTH_TEST_GUEST,
// BERTH_TEST_GUEST_UEFI, BERTH_TEST_GUEST_UEFI_UNSIGNED, BERTH_TEST_INSTALLER_ISO) overrides the
// paths the build compiled in.
#ifndef BERTH_BINARY_PATH
#define BERTH_BINARY_PATH ""
#endif
#ifndef BERTH_TEST_GUEST_PATH
#define BERTH_TEST_GUEST_PATH ""
#endif
#ifndef BERTH_TEST_GUEST_UEFI_PATH
#define BERTH_TEST_GUEST_UEFI_PATH ""
#endif
#ifndef BERTH_TEST_GUEST_UEFI_UNSIGNED_PATH
#define BERTH_TEST_GUEST_UEFI_UNSIGNED_PATH ""
#endif
#ifndef BERTH_TEST_GUEST_AGENT_PATH
#define BERTH_TEST_GUEST_AGENT_PATH ""
#endif
#ifndef BERTH_TEST_GUEST_DHCPV6_PATH
#define BERTH_TEST_GUEST_DHCPV6_PATH ""
#endif
#ifndef BERTH_TEST_INSTALLER_ISO_PATH
#define BERTH_TEST_INSTALLER_ISO_PATH ""
#endif
inline std::string env_or(const char* name, const char* fallback) {
  const char* env = std::getenv(name);
  return env ? env : fallback;
}
inline std::string berth_binary() {
  return env_or("BERTH_BINARY", BERTH_BINARY_PATH);
}
inline std::string test_guest() {
  return env_or("BERTH_TEST_GUEST", BERTH_TEST_GUEST_PATH);
}
// UEFI variants (test/guest/README.md): signed shim + GRUB, or an unsigned GRUB.
inline std::string test_guest_uefi() {
  return env_or("BERTH_TEST_GUEST_UEFI", BERTH_TEST_GUEST_UEFI_PATH);
}
inline std::string test_guest_uefi_unsigned() {
  return env_or("BERTH_TEST_GUEST_UEFI_UNSIGNED", BERTH_TEST_GUEST_UEFI_UNSIGNED_PATH);
}
// The guest-agent variant (test/guest/build-guest-agent.sh): the test guest running qemu-ga.
inline std::string test_guest_agent() {
  return env_or("BERTH_TEST_GUEST_AGENT", BERTH_TEST_GUEST_AGENT_PATH);
}
// The DHCPv6 variant (test/guest/build-guest-dhcpv6.sh): the test guest with busybox udhcpc6.
inline std::string test_guest_dhcpv6() {
  return env_or("BERTH_TEST_GUEST_DHCPV6", BERTH_TEST_GUEST_DHCPV6_PATH);
}
// The test installer ISO (test/guest/build-installer-iso.sh): writes a test guest onto /dev/vda.
inline std::string test_installer_iso() {
  return env_or("BERTH_TEST_INSTALLER_ISO", BERTH_TEST_INSTALLER_ISO_PATH);
}

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A pod-like network (test/e2e/podnet.sh): namespaces <name>-node and <name>-pod, unique to this
// test process, removed again at the end. berth runs in the pod namespace, clients in the node's.
struct PodNet {
  std::string name;
  explicit PodNet(const std::string& style = "calico")
      : name("bt" + std::to_string(::getpid()) + "-" + std::to_string(counter()++)) {
    REQUIRE(std::system((script() + " up " + name + " " + style).c_str()) == 0);
  }
  ~PodNet() { [[maybe_unused]] int rc = std::system((script() + " down " + name).c_str()); }
  PodNet(const PodNet&) = delete;
  PodNet& operator=(const PodNet&) = delete;

  std::string pod() const { return name + "-pod"; }
  std::string node() const { return name + "-node"; }
  // argv prefix that runs a program in the pod (resp. node) namespace.
  std::vector<std::string> in_pod() const { return {"ip", "netns", "exec", pod()}; }
  std::vector<std::string> in_node() const { return {"ip", "netns", "exec", node()}; }
  static constexpr const char* kPodIp = "10.77.0.5";

 private:
  static std::string script() {
#ifdef BERTH_SOURCE_DIR
    return std::string(BERTH_SOURCE_DIR) + "/test/e2e/podnet.sh";
#else
    return "test/e2e/podnet.sh";
#endif
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

// Runs `command` through sh and returns what it wrote to stdout (test tooling only).
inline std::string capture(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
      out.append(buffer, n);
    ::pclose(pipe);
  }
  return out;
}

struct HttpResult {
  int status = 0;  // 0: no answer
  std::string body;
};

// A request with curl, at most `seconds`, run in network namespace `netns` ("" = here), with one
// more `header` ("Name: value"; no quotes in it): the status and the body.
inline HttpResult http_request(const std::string& url, const std::string& method = "GET",
                               double seconds = 5, const std::string& netns = "",
                               const std::string& header = "") {
  const std::string command = (netns.empty() ? "" : "ip netns exec " + netns + " ") + "curl -s -m "
                              + std::to_string(seconds) + " -X " + method
                              + " -H 'Content-Type: application/json' -d '{}' -w '\\n%{http_code}' "
                              + (header.empty() ? "" : "-H '" + header + "' ") + url
                              + " 2>/dev/null";
  const std::string out = capture(command);
  const auto nl = out.rfind('\n');
  if (nl == std::string::npos)
    return {};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}
inline HttpResult http_get(const std::string& url, double seconds = 5,
                           const std::string& netns = "") {
  return http_request(url, "GET", seconds, netns);
}

// A fresh directory under /tmp, removed with its contents when this goes out of scope.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "berth-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
    // Traversable like /var/lib/berth on a node: QEMU runs as its own user (BERTH_QEMU_USER) and
    // opens the pet disk, the cached image and the config drive below here by path.
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// `dir`, made and open to everyone: for files that QEMU, an unprivileged user, creates itself
// (an extra QMP socket, a fake QEMU's pid file).
inline fs::path open_folder(const fs::path& dir) {
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all);
  return dir;
}

// In a forked child: runs `argv` with `env` added to ours and stdin, stdout, stderr on `in`, `out`,
// `err` (-1: keep it); exits 127 when it cannot.
[[noreturn]] inline void exec_with(std::vector<std::string> argv,
                                   const std::vector<std::string>& env, int in, int out, int err) {
  for (const auto& kv : env)
    ::putenv(const_cast<char*>(kv.c_str()));
  const int targets[] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
  const int fds[] = {in, out, err};
  for (int i = 0; i < 3; ++i)
    if (fds[i] >= 0)
      ::dup2(fds[i], targets[i]);
  std::vector<char*> args;
  for (auto& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  ::_exit(127);
}

// berth's folders and config-drive sources under `dir` (each test gets its own), and TCG with
// 256 MiB and no VNC: the environment of a test berth on a test guest, before its own variables.
inline std::vector<std::string> test_berth_env(const fs::path& dir) {
  return {"BERTH_DISK_DIR=" + (dir / "disks").string(),
          "BERTH_RUNTIME_DIR=" + (dir / "run").string(),
          "BERTH_IMAGE_DIR=" + (dir / "images").string(),
          "BERTH_USERDATA=" + (dir / "userdata").string(),
          "BERTH_METADATA=" + (dir / "metadata").string(),
          "BERTH_NETWORKDATA=" + (dir / "networkdata").string(),
          "VM_ACCEL=tcg",
          "VM_MEMORY=256M",
          "NO_VNC=1"};
}

struct BerthProcess {
  pid_t pid = -1;
  fs::path console;  // stdout
  fs::path log;      // stderr
  std::optional<int> exit_code;

  // Starts `prefix... berth` with `env` added to ours; output files go into `dir`.
  BerthProcess(const fs::path& dir, const std::vector<std::string>& env,
               const std::vector<std::string>& prefix = {}) {
    const std::string binary = berth_binary();
    REQUIRE(!binary.empty());
    console = dir / "console.log";
    log = dir / "berth.log";
    std::vector<std::string> argv = prefix;
    argv.emplace_back(binary);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
      exec_with(argv, env, -1, ::open(console.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644),
                ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  }

  // Waits until `file` contains a match of `pattern` (ECMAScript regex); returns the match's first
  // group (or the whole match), or nullopt after `limit` or once berth exited without it.
  std::optional<std::string> wait_for(const fs::path& file, const std::string& pattern,
                                      std::chrono::milliseconds limit = 60s) {
    const std::regex re(pattern);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      // Whether berth had exited is read before the file, so its last words are always seen.
      const bool over = std::chrono::steady_clock::now() >= deadline || poll_exit();
      const std::string text = slurp(file);
      std::smatch m;
      if (std::regex_search(text, m, re))
        return m.size() > 1 ? m[1].str() : m[0].str();
      if (over) {
        if (limit.count() > 0)
          report(pattern);
        return std::nullopt;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  std::optional<std::string> wait_log(const std::string& pattern,
                                      std::chrono::milliseconds limit = 60s) {
    return wait_for(log, pattern, limit);
  }
  std::optional<std::string> wait_console(const std::string& pattern,
                                          std::chrono::milliseconds limit = 120s) {
    return wait_for(console, pattern, limit);
  }

  // True once berth has exited (reaps it).
  bool poll_exit() {
    if (exit_code)
      return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) != pid)
      return false;
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }

  // Waits for berth's exit code, at most `limit`; nullopt if it still runs.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!poll_exit() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    return exit_code;
  }

  void signal(int sig) const { ::kill(pid, sig); }

  // Prints what berth said to stderr (ctest shows it for a failed test).
  void report(const std::string& waited_for) const {
    std::fprintf(stderr,
                 "--- waited in vain for /%s/; berth %s; its log:\n%s\n--- console tail:\n%s\n",
                 waited_for.c_str(),
                 exit_code ? ("exited with " + std::to_string(*exit_code)).c_str() : "still runs",
                 slurp(log).c_str(), tail(slurp(console), 2000).c_str());
  }
  static std::string tail(const std::string& text, std::size_t n) {
    return text.size() <= n ? text : text.substr(text.size() - n);
  }

  // Everything berth logged, for failure messages.
  std::string log_text() const { return slurp(log); }

  ~BerthProcess() {
    if (!poll_exit()) {
      ::kill(pid, SIGKILL);
      wait_exit(10s);
    }
  }
};

// One pod (network namespace) and one volume (disk dir) that several berth runs share in turn,
// each booting under TCG with 512 MiB, no VNC; logs of run N in <dir>/run-N/.
struct VolumePod {
  TempDir dir;
  PodNet net;
  int runs = 0;

  // Starts berth on `image` with `firmware`; `env` adds or overrides.
  std::unique_ptr<BerthProcess> start(const std::string& image, const std::string& firmware,
                                      std::vector<std::string> env = {}) {
    const fs::path logs = dir.path / ("run-" + std::to_string(++runs));
    fs::create_directories(logs);
    std::vector<std::string> all = {"IMG_SOURCE=" + image,
                                    "VM_FIRMWARE=" + firmware,
                                    "VM_ACCEL=tcg",
                                    "VM_MEMORY=512M",
                                    "NO_VNC=1",
                                    "BERTH_SHUTDOWN_TIMEOUT=30"};
    // The pod's folders, each in this pod's own folder (the disk dir is the shared volume).
    for (const auto& [variable, folder] :
         {std::pair{"BERTH_DISK_DIR", "disks"}, std::pair{"BERTH_RUNTIME_DIR", "run"},
          std::pair{"BERTH_IMAGE_DIR", "images"}, std::pair{"BERTH_USERDATA", "userdata"},
          std::pair{"BERTH_METADATA", "metadata"}, std::pair{"BERTH_NETWORKDATA", "networkdata"}})
      all.push_back(std::string(variable) + "=" + (dir.path / folder).string());
    all.insert(all.end(), env.begin(), env.end());
    return std::make_unique<BerthProcess>(logs, all, net.in_pod());
  }

  // The files in the disk dir whose names end in `suffix`.
  std::vector<fs::path> disk_files(const std::string& suffix) const {
    std::vector<fs::path> found;
    for (const auto& entry : fs::directory_iterator(dir.path / "disks"))
      if (entry.path().filename().string().ends_with(suffix))
        found.push_back(entry.path());
    return found;
  }
};

}  // namespace berth::test
