// A stock Debian 12 cloud image (test/cloudimage/build-cloud-image.sh: systemd, udev, cloud-init,
// netplan + systemd-networkd, sshd, Debian's cloud kernel) under the real berth binary in a
// Calico-style pod namespace, the way test/e2e boots the busybox test guest: the image is served
// over HTTP by the node, user-data comes from a kubelet-style ConfigMap, and everything is checked
// from the node over SSH to the pod IP. QEMU runs under TCG, so a boot takes minutes.

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>

#include "test/cloudimage/cloud_cluster.hpp"
#include "test/support/data_disks.hpp"
#include "test/support/pty_berth.hpp"

using namespace berth::test;

namespace {

#ifndef BERTH_TEST_CLOUD_IMAGE_PATH
#define BERTH_TEST_CLOUD_IMAGE_PATH ""
#endif
std::string cloud_image() {
  return env_or("BERTH_TEST_CLOUD_IMAGE", BERTH_TEST_CLOUD_IMAGE_PATH);
}

// Runs `command` in the guest until it prints `expected` (at most `limit`); whether it did.
bool wait_guest(const CloudCluster& cluster, const std::string& command,
                const std::string& expected, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const std::string out = cluster.ssh(command, 30);
    if (out == expected)
      return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "the guest's \"%s\" printed \"%s\", not \"%s\"\n", command.c_str(),
                   out.c_str(), expected.c_str());
      return false;
    }
    std::this_thread::sleep_for(1s);
  }
}

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / 1048576;
}

// The guest's disks as lsblk lists them (name, serial, bytes), once udev has settled.
constexpr const char* kDisks = "sudo udevadm settle && lsblk -bdnr -o NAME,SERIAL,SIZE";
constexpr const char* kData = "/dev/disk/by-id/virtio-data";
constexpr const char* kBlk = "/dev/disk/by-id/virtio-blk";

// A DNS query for the AAAA records of argv[2] sent straight to the server argv[1] over IPv6 (the
// image has no dig): the addresses of the answer, one a line. Written into the guest by
// cloud-init (write_files) and run there by python3; not a file the host runs.
constexpr const char* kAaaaQuery = R"(import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 0x6265, 0x0100, 1, 0, 0, 0)
for label in name.split("."):
    query += bytes([len(label)]) + label.encode()
query += b"\0" + struct.pack(">HH", 28, 1)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, (server, 53))
reply, sender = s.recvfrom(4096)
answers = struct.unpack(">H", reply[6:8])[0]
i = len(query)
for _ in range(answers):
    while reply[i] and reply[i] < 0xC0:
        i += reply[i] + 1
    i += 2 if reply[i] >= 0xC0 else 1
    kind, _, _, size = struct.unpack(">HHIH", reply[i:i + 10])
    i += 10
    if kind == 28:
        print(socket.inet_ntop(socket.AF_INET6, reply[i:i + size]))
    i += size
)";

// The dual-stack test's user-data: the SSH key and the AAAA query script, no network settings.
std::string dual_stack_userdata(const std::string& public_key) {
  std::string text = "#cloud-config\nssh_authorized_keys:\n  - " + public_key
                     + "\nwrite_files:\n  - path: /var/tmp/berth-aaaa.py\n    content: |\n";
  std::istringstream lines(kAaaaQuery);
  for (std::string line; std::getline(lines, line);)
    text += "      " + line + "\n";
  return text;
}

// Runs `command` in the guest (over the pod's IPv4) until its output contains `expected`, at most
// `limit`; its last output.
std::string wait_guest_contains(const CloudCluster& cluster, const std::string& command,
                                const std::string& expected, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string out = cluster.ssh(command, 30);
  while (out.find(expected) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2s);
    out = cluster.ssh(command, 30);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "cloud image: Debian 12 takes berth's DHCP lease, runs cloud-init from the config"
    " drive, logs in over SSH on the pod IP and powers off on SIGTERM",
    "[cloudimage]") {
  CloudCluster cluster(cloud_image());
  const auto start = std::chrono::steady_clock::now();
  auto berth = cluster.start_pod();
  // The guest's own DHCP client (systemd-networkd, configured by netplan) takes berth's lease.
  REQUIRE(berth->wait_log("the guest took its lease 192\\.168\\.254\\.2", kBootLimit));
  std::printf("cloud image: lease taken %.1f s after berth started\n", seconds_since(start));
  REQUIRE(cluster.wait_ssh(*berth, kBootLimit));
  std::printf("cloud image: SSH login %.1f s after berth started\n", seconds_since(start));

  // cloud-init found berth's drive as a ConfigDrive and finished without errors.
  CHECK_THAT(cluster.ssh("cloud-init status --wait", 180), Catch::Contains("status: done"));
  std::printf("cloud image: cloud-init done %.1f s after berth started\n", seconds_since(start));
  CHECK_THAT(cluster.ssh("cat /run/cloud-init/result.json"),
             Catch::Contains("DataSourceConfigDrive") && Catch::Contains("/dev/sr0"));
  CHECK(cluster.ssh("hostname") == kPodHostname);
  CHECK(cluster.ssh("cat /var/tmp/berth-marker") == "marker-one");
  CHECK(cluster.ssh("cat /var/tmp/berth-runcmd") == "runcmd-ran");
  CHECK(cluster.ssh("sudo -n id -un") == "root");
  // The lease's address, and the pod's MTU (DHCP option 26) on the guest's interface.
  CHECK_THAT(cluster.ssh("ip -4 -o addr show scope global"), Catch::Contains("192.168.254.2/"));
  CHECK_THAT(cluster.ssh("ip -o link show"), Catch::Contains("mtu 1450"));
  // systemd-resolved asks berth's DNS forwarder, which asks the pod's (the node's) server.
  CHECK_THAT(cluster.ssh(std::string("getent hosts ") + PodCluster::kNodeOnlyName),
             Catch::Contains(PodCluster::kNodeIp));
  CHECK(cluster.ssh("systemctl is-system-running --wait", 120) == "running");

  power_off(cluster, *berth);
}

TEST_CASE("cloud image: a ConfigMap edit reaches the running guest's config drive",
          "[cloudimage]") {
  CloudCluster cluster(cloud_image());
  auto berth = cluster.start_pod();
  REQUIRE(cluster.wait_ssh(*berth, kBootLimit));
  CHECK_THAT(cluster.ssh("cloud-init status --wait", 180), Catch::Contains("status: done"));
  CHECK_THAT(cluster.drive_userdata(), Catch::Contains("marker-one"));
  const std::string instance_id = cluster.ssh("cloud-init query instance_id");
  CHECK_FALSE(instance_id.empty());

  // The kubelet swaps the ConfigMap; berth builds a new drive and changes the medium while the
  // stock kernel has the tray locked.
  cluster.write_userdata(cloud_config(cluster.public_key(), "marker-two"));
  const auto swapped = berth->wait_log(
      "(the VM has the new config drive|the VM did not take the new config drive.*)", 60s);
  REQUIRE(swapped);
  CHECK(*swapped == "the VM has the new config drive");
  std::string seen;
  for (int i = 0; i < 20 && seen.find("marker-two") == std::string::npos; ++i) {
    seen = cluster.drive_userdata();
    std::this_thread::sleep_for(1s);
  }
  CHECK_THAT(seen, Catch::Contains("marker-two"));

  // What a user should expect: the instance id is derived from the pod's hostname, so it stays
  // the same, and a stock cloud-init does not run its per-instance modules again on an edit.
  CHECK(cluster.ssh("sudo mount -o ro /dev/disk/by-label/config-2 /mnt && "
                    "grep -c "
                    + instance_id
                    + " /mnt/openstack/latest/meta_data.json; "
                      "sudo umount /mnt")
        == "1");
  CHECK(cluster.ssh("cat /var/tmp/berth-marker") == "marker-one");

  power_off(cluster, *berth);
}

TEST_CASE("cloud image: a login on ttyS0 through berth's terminal runs a command", "[cloudimage]") {
  CloudCluster cluster(cloud_image());
  // The default user gets a password: the serial console (systemd's serial-getty on ttyS0, from
  // the kernel's console=ttyS0) asks for one.
  cluster.write_userdata("#cloud-config\npassword: berth-serial-7\nchpasswd:\n  expire: false\n");
  const auto start = std::chrono::steady_clock::now();
  auto prefix = cluster.net.in_pod();
  PtyBerth berth(prefix, cluster.env({"NO_VNC=1", "BERTH_VIEWER=no"}),
                 cluster.dir.path / "berth.log");
  auto at = berth.wait_for("login: ", 0, kBootLimit);
  REQUIRE(at);
  std::printf("cloud image: serial login prompt %.1f s after berth started\n",
              seconds_since(start));
  // The getty can ask before cloud-init has set the password: log in again until it is.
  bool in = false;
  for (int attempt = 0; attempt < 12 && !in; ++attempt) {
    berth.type("debian\r");
    at = berth.wait_for("assword: ", *at, 60s);
    REQUIRE(at);
    berth.type("berth-serial-7\r");
    const auto shell = berth.wait_for("$ ", *at, 30s);
    in = shell && berth.seen.find("Login incorrect", *at) == std::string::npos;
    if (shell)
      at = shell;
    if (!in) {
      at = berth.wait_for("login: ", *at, 60s);
      REQUIRE(at);
    }
  }
  REQUIRE(in);
  std::printf("cloud image: logged in on ttyS0 %.1f s after berth started\n", seconds_since(start));
  berth.type("echo cloud-$((6*7)) $(id -un)\r");
  REQUIRE(berth.wait_for("cloud-42 debian", *at, 30s));
  ::kill(berth.pid, SIGTERM);
  const auto code = berth.wait_exit(std::chrono::seconds(cluster.options.shutdown_timeout_s + 20));
  REQUIRE(code);
  CHECK(*code == 0);
  termios after{};
  REQUIRE(::tcgetattr(berth.slave, &after) == 0);
  CHECK(after.c_lflag == berth.before.c_lflag);
}

TEST_CASE(
    "cloud image: VM_DISKS under systemd and udev - by-id names and sizes - fstrim thins the"
    " qcow2 - hot-plug out and back in - the data survives berth's restart",
    "[cloudimage]") {
  CloudCluster cluster(cloud_image());
  // A filesystem-mode volume (a folder: berth makes data.qcow2, 1 GiB) and a block-mode one (a
  // loop device over a sparse file in the test's folder).
  const fs::path folder = cluster.dir.path / "vol-data";
  fs::create_directories(folder);
  const fs::path qcow2 = folder / "data.qcow2";
  const fs::path block_file = cluster.dir.path / "block.img";
  LoopDevice loop(block_file, "64M");
  const std::string disks = "VM_DISKS=data=" + folder.string() + ":1Gi,blk=" + loop.device.string();
  const auto start = std::chrono::steady_clock::now();
  auto berth = cluster.start_pod({disks});
  REQUIRE(cluster.wait_ssh(*berth, kBootLimit));
  std::printf("cloud image disks: SSH login %.1f s after berth started\n", seconds_since(start));

  // udev's names from the serials, and the sizes berth gave.
  const std::string listed = cluster.ssh(kDisks);
  CHECK_THAT(listed, Catch::Contains("vdb data 1073741824") && Catch::Contains("vdc blk 67108864"));
  CHECK(cluster.ssh(std::string("readlink -f ") + kData + " " + kBlk) == "/dev/vdb\n/dev/vdc");
  CHECK(cluster.ssh(std::string("sudo blockdev --getsize64 ") + kData + " " + kBlk)
        == "1073741824\n67108864");

  // An ext4 file system on the qcow2 disk with a marker, and one written raw on the loop device
  // that the host reads back from the file under it.
  CHECK(cluster.ssh(std::string("sudo mkfs.ext4 -q -F -L berth-data -E "
                                "lazy_itable_init=0,lazy_journal_init=0 ")
                        + kData + " && sudo mkdir -p /mnt/data && sudo mount " + kData
                        + " /mnt/data && echo berth-cloud-data | sudo tee /mnt/data/marker"
                          " && sync",
                    180)
        == "berth-cloud-data");
  CHECK(cluster.ssh(std::string("echo berth-cloud-blk | sudo dd of=") + kBlk
                    + " conv=fsync status=none && echo written")
        == "written");
  CHECK(capture("head -c 15 " + block_file.string()) == "berth-cloud-blk");

  // 128 MiB of random data into the qcow2, deleted and trimmed: the file gives the space back.
  const auto formatted = allocated(qcow2);
  const auto fill_start = std::chrono::steady_clock::now();
  CHECK(cluster.ssh("sudo dd if=/dev/urandom of=/mnt/data/big bs=1M count=128 conv=fsync"
                    " status=none && echo filled",
                    300)
        == "filled");
  std::printf("cloud image disks: 128 MiB written in %.1f s\n", seconds_since(fill_start));
  const auto filled = allocated(qcow2);
  CHECK_THAT(cluster.ssh("sudo rm /mnt/data/big && sync && sudo fstrim -v /mnt/data", 120),
             Catch::Contains("/mnt/data: ") && Catch::Contains("trimmed"));
  const auto trimmed = allocated(qcow2);
  std::printf(
      "cloud image disks: data.qcow2 allocated %.1f MiB formatted, %.1f MiB filled, %.1f MiB after "
      "fstrim\n",
      mib(formatted), mib(filled), mib(trimmed));
  CHECK(filled >= formatted + (120u << 20));
  CHECK(trimmed + (112u << 20) <= filled);

  // Hot-plug through the control API: out of the running guest (unmounted first), and back.
  const fs::path run = cluster.dir.path / "run";
  CHECK(cluster.ssh("sudo umount /mnt/data && echo unmounted") == "unmounted");
  const auto t0 = std::chrono::steady_clock::now();
  const auto out_reply = hotplug(cluster.net, run, "detach", "data");
  CHECK(out_reply.status == 200);
  const std::string gone = std::string("test -e ") + kData + " && echo present || echo gone";
  CHECK(wait_guest(cluster, gone, "gone", 60s));
  const auto t1 = std::chrono::steady_clock::now();
  CHECK_THAT(cluster.ssh(kDisks), !Catch::Contains(" data ") && Catch::Contains("vdc blk"));
  const auto in_reply = hotplug(cluster.net, run, "attach", folder.string());
  INFO(in_reply.body);
  CHECK(in_reply.status == 200);
  CHECK(wait_guest(cluster, gone, "present", 60s));
  const auto t2 = std::chrono::steady_clock::now();
  std::printf("cloud image disks: hot-plug detach %.1f s, attach %.1f s (to udev's by-id link)\n",
              std::chrono::duration<double>(t1 - t0).count(),
              std::chrono::duration<double>(t2 - t1).count());
  CHECK_THAT(cluster.ssh(kDisks), Catch::Contains(" data 1073741824"));
  // Back with its data, and written to again; left mounted for systemd to unmount at power-off.
  CHECK(cluster.ssh(std::string("sudo mount ") + kData
                    + " /mnt/data && cat /mnt/data/marker && echo after-hotplug | sudo tee"
                      " /mnt/data/second")
        == "berth-cloud-data\nafter-hotplug");
  power_off(cluster, *berth);

  // berth again on the same folders: the same names, and both disks' data.
  const auto restart = std::chrono::steady_clock::now();
  berth = cluster.start_pod({disks});
  REQUIRE(cluster.wait_ssh(*berth, kBootLimit));
  std::printf("cloud image disks: restart: SSH login %.1f s after berth started\n",
              seconds_since(restart));
  CHECK(cluster.ssh(std::string("readlink -f ") + kData + " " + kBlk) == "/dev/vdb\n/dev/vdc");
  CHECK(cluster.ssh(std::string("sudo mount ") + kData
                    + " /mnt/data && cat /mnt/data/marker /mnt/data/second")
        == "berth-cloud-data\nafter-hotplug");
  CHECK(cluster.ssh(std::string("sudo head -c 15 ") + kBlk) == "berth-cloud-blk");
  power_off(cluster, *berth);
}

TEST_CASE(
    "cloud image: in a dual-stack pod the guest gets its IPv6 address with no configuration - SSH"
    " over the pod's IPv6 - AAAA through berth",
    "[cloudimage][ipv6]") {
  // A Calico-style dual-stack pod (fd77::5/128 beside 10.77.0.5), berth's default config drive:
  // no network data, so cloud-init renders its fallback (DHCPv4 on the NIC) for netplan and
  // systemd-networkd, which takes IPv6 from berth's router advertisements and DHCPv6 by itself.
  CloudCluster cluster(cloud_image(), "calico6");
  cluster.write_userdata(dual_stack_userdata(cluster.public_key()));
  Background peers(cluster.net.node(), peer_logger(cluster.dir.path / "peers"));
  const auto start = std::chrono::steady_clock::now();
  auto berth = cluster.start_pod();
  const auto address = berth->wait_log("IPv6: dual-stack: the VM is (\\S+) in VM_IP6", 60s);
  REQUIRE(address);
  REQUIRE(cluster.wait_ssh(*berth, kBootLimit));
  std::printf("cloud image: SSH login over IPv4 %.1f s after berth started\n",
              seconds_since(start));
  CHECK_THAT(cluster.ssh("cloud-init status --wait", 180), Catch::Contains("status: done"));
  // Nothing about the network on the drive: cloud-init's fallback is what configured the NIC.
  CHECK(cluster.ssh("sudo mount -o ro /dev/disk/by-label/config-2 /mnt && "
                    "ls /mnt/openstack/latest; sudo umount /mnt")
        == "meta_data.json\nuser_data");

  // The EUI-64 address in VM_IP6's /64 that berth NATs the pod's IPv6 address to, no longer
  // tentative, and the default route through the bridge's fe80::1.
  const std::string addresses = wait_guest_contains(
      cluster, "ip -6 -o addr show scope global | grep -v tentative", *address + "/64", 120s);
  std::printf("cloud image: IPv6 addresses %.1f s after berth started:\n%s\n", seconds_since(start),
              addresses.c_str());
  std::printf("cloud image: IPv6 routes:\n%s\n", cluster.ssh("ip -6 route show").c_str());
  INFO(cluster.ssh("networkctl status --no-pager -n 0; cat /etc/netplan/*.yaml"));
  CHECK_THAT(addresses, Catch::Contains(*address + "/64"));
  CHECK_THAT(cluster.ssh("ip -6 route show default"), Catch::Contains("via fe80::1 "));
  // systemd-networkd's DHCPv6 client (the RA's M flag) asked berth too: the same address.
  const auto leased = berth->wait_log("DHCPv6: (\\S+) given", 0ms);
  std::printf("cloud image: DHCPv6 %s\n", leased ? leased->c_str() : "not asked");
  if (leased)
    CHECK(*leased == *address);

  // SSH from the node to the pod's IPv6 address reaches the guest's address (DNAT66 only: the
  // guest sees the node's own address).
  REQUIRE(cluster.wait_ssh(*berth, 60s, PodCluster::kPodIp6));
  const std::string connection = cluster.ssh("echo $SSH_CONNECTION", 30, PodCluster::kPodIp6);
  INFO(connection);
  CHECK(connection.rfind(std::string(PodCluster::kNodeIp6) + " ", 0) == 0);
  CHECK_THAT(connection, Catch::EndsWith(" " + *address + " 22"));
  std::printf("cloud image: SSH login over the pod's IPv6 %.1f s after berth started\n",
              seconds_since(start));

  // The guest's own connection to the node arrives from the pod's IPv6 address (SNAT66).
  CHECK(cluster.ssh("bash -c \"echo from-guest > /dev/tcp/fd77:9::1/9999\" && echo sent")
        == "sent");
  for (int i = 0; i < 10 && slurp(cluster.dir.path / "peers").empty(); ++i)
    std::this_thread::sleep_for(1s);
  CHECK(slurp(cluster.dir.path / "peers") == std::string(PodCluster::kPodIp6) + "\n");

  // AAAA: systemd-resolved learned berth's forwarder on <VM_IP6>::1 (RDNSS or DHCPv6) and
  // resolves the node-only name through it; the forwarder answers AAAA over IPv6 directly too.
  const std::string vm_gw6 = "fd62:6572:7468::1";
  CHECK_THAT(cluster.ssh("resolvectl dns"), Catch::Contains(vm_gw6));
  CHECK_THAT(cluster.ssh(std::string("getent ahostsv6 ") + PodCluster::kNodeOnlyName),
             Catch::Contains(PodCluster::kNodeIp6));
  CHECK(cluster.ssh("python3 /var/tmp/berth-aaaa.py " + vm_gw6 + " " + PodCluster::kNodeOnlyName)
        == PodCluster::kNodeIp6);

  power_off(cluster, *berth);
}
