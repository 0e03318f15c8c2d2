// The Debian cloud images (build-cloud-image.sh, README.md) under the real berth binary in a
// Calico-style pod namespace, the way test/e2e boots the busybox test guest: the image is served
// over HTTP by the node, user-data comes from a kubelet-style ConfigMap (an SSH key for the
// image's default user), and everything is checked from the node over SSH to the pod IP. Shared by
// the tests of the BIOS image and of its UEFI variant.
#pragma once

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>

#include "test/support/pod_cluster.hpp"

namespace berth::test {

// The pod's hostname (berth runs in a UTS namespace of its own that has it): the instance's
// hostname, since the metadata names none.
inline constexpr const char* kPodHostname = "cloud-pod-1";
inline constexpr auto kBootLimit = 300s;

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The user-data of a ConfigMap: an SSH key for the image's default user ("debian"), a file
// written by cloud-init, and a command that it runs.
inline std::string cloud_config(const std::string& public_key, const std::string& marker) {
  return "#cloud-config\n"
         "ssh_authorized_keys:\n"
         "  - "
         + public_key
         + "\n"
           "write_files:\n"
           "  - path: /var/tmp/berth-marker\n"
           "    content: "
         + marker
         + "\n"
           "runcmd:\n"
           "  - [sh, -c, 'echo runcmd-ran > /var/tmp/berth-runcmd']\n";
}

// The image, 1 GiB for cloud-init's Python, and time for systemd to stop its services under TCG,
// in a pod of podnet.sh's `style`; the user-data is written once the SSH key exists.
inline PodClusterOptions options_for_cloud_image(const fs::path& image, const std::string& style) {
  PodClusterOptions options(image, "");
  REQUIRE(fs::exists(options.image));
  options.style = style;
  options.memory = "1G";
  options.shutdown_timeout_s = 120;
  return options;
}

struct CloudCluster : PodCluster {
  fs::path key;

  explicit CloudCluster(const fs::path& image, const std::string& style = "calico")
      : PodCluster(options_for_cloud_image(image, style)) {
    key = dir.path / "id_ed25519";
    REQUIRE(std::system(("ssh-keygen -q -t ed25519 -N '' -C berth-test -f " + key.string()).c_str())
            == 0);
    write_userdata(cloud_config(public_key(), "marker-one"));
  }

  std::string public_key() const {
    std::string text = slurp(key.string() + ".pub");
    while (!text.empty() && text.back() == '\n')
      text.pop_back();
    return text;
  }

  // berth in its own UTS namespace, named kPodHostname like a pod, with `extra` in its
  // environment.
  std::unique_ptr<BerthProcess> start_pod(std::vector<std::string> extra = {}) {
    extra.emplace_back("NO_VNC=1");
    return start(std::move(extra), {"unshare", "--uts", "sh", "-c",
                                    std::string("hostname ") + kPodHostname + " && exec \"$0\""});
  }

  // Runs `command` (no single quotes in it) as the image's default user over SSH from the node
  // to the pod's address `host`; its stdout, trimmed. SSH's own complaints go to ssh.log.
  std::string ssh(const std::string& command, int seconds = 60,
                  const std::string& host = PodNet::kPodIp) const {
    std::string out = capture(
        "ip netns exec " + net.node() + " timeout " + std::to_string(seconds) + " ssh -i "
        + key.string()
        + " -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
          " -o ConnectTimeout=5 -o LogLevel=ERROR debian@"
        + host + " '" + command + "' 2>>" + (dir.path / "ssh.log").string());
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
      out.pop_back();
    return out;
  }

  // Waits until SSH logs in with the key (sshd up, cloud-init has installed the key) at the pod's
  // address `host`.
  bool wait_ssh(BerthProcess& berth, std::chrono::seconds limit,
                const std::string& host = PodNet::kPodIp) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline && !berth.poll_exit()) {
      if (ssh("echo ssh-ok", 15, host) == "ssh-ok")
        return true;
      std::this_thread::sleep_for(2s);
    }
    berth.report("an SSH login to the guest");
    std::fprintf(stderr, "--- ssh.log:\n%s\n", slurp(dir.path / "ssh.log").c_str());
    return false;
  }

  // The config drive's user_data as the guest reads it now: the CD mounted, read, unmounted.
  std::string drive_userdata() const {
    return ssh(
        "sudo mount -o ro /dev/disk/by-label/config-2 /mnt && "
        "cat /mnt/openstack/latest/user_data; sudo umount /mnt");
  }
};

// SIGTERM to berth: the ACPI power button, systemd shuts the guest down, berth exits 0.
inline void power_off(CloudCluster& cluster, BerthProcess& berth) {
  const auto start = std::chrono::steady_clock::now();
  berth.signal(SIGTERM);
  CHECK(berth.wait_exit(std::chrono::seconds(cluster.options.shutdown_timeout_s + 20)) == 0);
  CHECK(berth.wait_console("reboot: Power down", 0ms));
  CHECK_FALSE(berth.wait_log("did not power off", 0ms));
  std::printf("cloud image: powered off %.1f s after SIGTERM\n", seconds_since(start));
}

}  // namespace berth::test
