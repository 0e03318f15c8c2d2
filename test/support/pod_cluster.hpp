#pragma once
// Test support for end-to-end tests: berth in a pod-like network namespace (PodNet) boots a guest
// image served over HTTP by the "node" namespace, with kubelet-style ConfigMap volumes for
// user-data and metadata, and a DNS server in the node namespace; clients run from the node the
// way a cluster client would. Used by test/e2e (the busybox test guest) and test/cloudimage (a
// stock Debian cloud image).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test/support/berth_process.hpp"

namespace berth::test {

// Runs `command` through sh in namespace `netns`; its stdout, trimmed.
inline std::string in_ns(const std::string& netns, const std::string& command) {
  std::string out = capture("ip netns exec " + netns + " sh -c '" + command + "' 2>/dev/null");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

// A background program in a namespace, killed at the end.
struct Background {
  pid_t pid = -1;
  Background(const std::string& netns, const std::vector<std::string>& argv) {
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      std::vector<std::string> all = {"ip", "netns", "exec", netns};
      all.insert(all.end(), argv.begin(), argv.end());
      std::vector<char*> args;
      for (auto& a : all)
        args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Background() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
};

inline std::string sha256_of(const fs::path& file) {
  return capture("sha256sum " + file.string()).substr(0, 64);
}

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A TCP listener in the node on [fd77:9::1]:9999 (calico6 and ipv6only pods) that writes each
// peer's address to `file`: where the guest's connections arrive from.
inline std::vector<std::string> peer_logger(const fs::path& file) {
  return {"python3", "-c",
          "import socket, sys\n"
          "s = socket.socket(socket.AF_INET6)\n"
          "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((\"fd77:9::1\", 9999))\n"
          "s.listen()\n"
          "while True:\n"
          "    c, a = s.accept()\n"
          "    open(sys.argv[1], \"a\").write(a[0] + \"\\n\")\n"
          "    c.close()\n",
          file.string()};
}

struct PodClusterOptions {
  fs::path image;                       // served as http://<node>:8080/guest.qcow2
  std::string userdata;                 // the userdata ConfigMap's key "userdata"
  std::optional<std::string> metadata;  // the metadata ConfigMap's key "metadata", if any
  std::string memory = "256M";          // VM_MEMORY
  int shutdown_timeout_s = 20;          // BERTH_SHUTDOWN_TIMEOUT
  std::string style = "calico";         // podnet.sh's: calico, plain, calico6, ipv6only

  PodClusterOptions(fs::path image_path, std::string user_data,
                    std::optional<std::string> meta_data = std::nullopt)
      : image(std::move(image_path)),
        userdata(std::move(user_data)),
        metadata(std::move(meta_data)) {}
};

struct PodCluster {
  static constexpr const char* kNodeIp = "10.77.9.1";
  static constexpr const char* kNodeIp6 = "fd77:9::1";  // calico6 and ipv6only pods
  static constexpr const char* kPodIp6 = "fd77::5";     // the pod's IPv6 address there
  // A name that only the node's DNS server knows (it answers kNodeIp).
  static constexpr const char* kNodeOnlyName = "e2e.berth.test";

  TempDir dir;
  PodNet net;
  PodClusterOptions options;
  std::unique_ptr<Background> http;
  std::unique_ptr<Background> dns;
  std::string checksum;

  explicit PodCluster(PodClusterOptions opts) : net(opts.style), options(std::move(opts)) {
    // The node serves the image over HTTP and answers DNS for kNodeOnlyName.
    fs::create_directories(dir.path / "www");
    fs::copy_file(options.image, dir.path / "www" / "guest.qcow2");
    checksum = sha256_of(dir.path / "www" / "guest.qcow2");
    // busybox httpd rather than Python's http.server, which resolves its own name before it
    // listens: 5 s without a DNS server in the node namespace, paid by every test as retries.
    http = std::make_unique<Background>(
        net.node(),
        std::vector<std::string>{"busybox", "httpd", "-f", "-p", std::string(kNodeIp) + ":8080",
                                 "-h", (dir.path / "www").string()});
    std::vector<std::string> dnsmasq{"dnsmasq",
                                     "--no-daemon",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--bind-interfaces",
                                     std::string("--listen-address=") + kNodeIp,
                                     std::string("--address=/") + kNodeOnlyName + "/" + kNodeIp,
                                     "--pid-file=" + (dir.path / "dnsmasq.pid").string()};
    if (options.style == "calico6" || options.style == "ipv6only") {  // AAAA too, over IPv6
      dnsmasq.push_back(std::string("--listen-address=") + kNodeIp6);
      dnsmasq.push_back(std::string("--address=/") + kNodeOnlyName + "/" + kNodeIp6);
    }
    dns = std::make_unique<Background>(net.node(), dnsmasq);
    write_text(dir.path / "vnc-password", "e2e-vnc\n");
    write_userdata(options.userdata);
    if (options.metadata) {
      write_text(dir.path / "meta.json", *options.metadata);
      configmap(dir.path / "metadata", "metadata", dir.path / "meta.json");
    }
  }

  // Writes `file` as key `key` of the ConfigMap volume `volume`, the way the kubelet does.
  static void configmap(const fs::path& volume, const std::string& key, const fs::path& file) {
    const std::string command = std::string(BERTH_SOURCE_DIR) + "/test/e2e/configmap.sh "
                                + volume.string() + " " + key + "=" + file.string();
    REQUIRE(std::system(command.c_str()) == 0);
  }
  // The first write of the user-data ConfigMap, and every edit.
  void write_userdata(const std::string& text) {
    write_text(dir.path / "user.sh", text);
    configmap(dir.path / "userdata", "userdata", dir.path / "user.sh");
  }

  std::vector<std::string> env(std::vector<std::string> extra = {}) const {
    std::vector<std::string> all = {
        std::string("IMG_SOURCE=http://") + kNodeIp + ":8080/guest.qcow2",
        "IMG_CHECKSUM=sha256:" + checksum,
        "BERTH_IMAGE_DIR=" + (dir.path / "images").string(),
        "BERTH_DISK_DIR=" + (dir.path / "disks").string(),
        "BERTH_RUNTIME_DIR=" + (dir.path / "run").string(),
        "BERTH_USERDATA=" + (dir.path / "userdata").string(),
        "BERTH_METADATA=" + (dir.path / "metadata").string(),
        "BERTH_NETWORKDATA=" + (dir.path / "networkdata").string(),
        "BERTH_VNC_PASSWORD_FILE=" + (dir.path / "vnc-password").string(),
        "VM_ACCEL=tcg",
        "VM_MEMORY=" + options.memory,
        "BERTH_SHUTDOWN_TIMEOUT=" + std::to_string(options.shutdown_timeout_s)};
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  }

  // Starts berth in the pod namespace, through `wrapper` (argv put between `ip netns exec POD`
  // and berth, e.g. to give the pod its own hostname). A fresh run folder per start keeps each
  // start's logs apart.
  std::unique_ptr<BerthProcess> start(std::vector<std::string> extra = {},
                                      const std::vector<std::string>& wrapper = {}) {
    static int runs = 0;
    const fs::path logs = dir.path / ("run-" + std::to_string(runs++));
    fs::create_directories(logs);
    std::vector<std::string> prefix = net.in_pod();
    prefix.insert(prefix.end(), wrapper.begin(), wrapper.end());
    return std::make_unique<BerthProcess>(logs, env(std::move(extra)), prefix);
  }
};

}  // namespace berth::test
