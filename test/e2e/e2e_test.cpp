// End to end: the berth binary in a Calico-style pod namespace boots the built-in guest from an
// http:// IMG_SOURCE served by the "node" namespace, with ConfigMap-style user-data and metadata,
// and everything is checked from the node the way a cluster client would see it.

#include <signal.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "test/support/locked_tray.hpp"
#include "test/support/pod_cluster.hpp"
#include "test/support/qmp_probe.hpp"

using namespace berth::test;

namespace {

constexpr const char* kNodeIp = PodCluster::kNodeIp;

// The guest's user-data: what a user would write to make the guest show things from outside.
const char* kUserdata = R"(#!/bin/sh
echo "value-one" > /www/value
cat /sys/class/net/eth0/mtu > /www/mtu
nslookup e2e.berth.test > /www/dns 2>&1
date >> /data/e2e-file
cp /data/e2e-file /www/e2e-file
httpd -p 5900 -h /www
)";

// The busybox test guest with the user-data above and a hostname in its metadata.
struct Cluster : PodCluster {
  Cluster()
      : PodCluster(PodClusterOptions(test_guest(), kUserdata,
                                     R"({"uuid": "e2e-uuid-1", "hostname": "e2e-guest"})")) {}

  // GET http://<pod IP>/<path> from the node: the guest's httpd through the pod IP.
  std::string guest_http(const std::string& path) const {
    return in_ns(net.node(), std::string("curl -s -m 5 http://") + PodNet::kPodIp + path);
  }
};

}  // namespace

TEST_CASE("e2e: the guest answers on the pod IP with its data, DNS and MTU, and survives a restart",
          "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start();
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  REQUIRE(berth->wait_log("the guest took its lease 192\\.168\\.254\\.2", 10s));
  // TCP: the guest's httpd, with the hostname from metadata and a value from user-data.
  CHECK(cluster.guest_http("/") == "e2e-guest");
  CHECK(cluster.guest_http("/value") == "value-one");
  // The guest got the pod's MTU and resolves a name only the node's DNS knows, through berth.
  CHECK(cluster.guest_http("/mtu") == "1450");
  CHECK_THAT(cluster.guest_http("/dns"), Catch::Contains(kNodeIp));
  // UDP and ICMP to the pod IP reach the guest (its UDP echo on 7; the pod itself has neither).
  CHECK(in_ns(cluster.net.node(),
              "python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.settimeout(3); s.sendto(b\\\"udp-ping\\\", (\\\"10.77.0.5\\\", 7)); "
              "print(s.recv(64).decode())\"")
        == "udp-ping");
  CHECK(in_ns(cluster.net.node(), "ping -c 1 -W 3 10.77.0.5 >/dev/null && echo ok") == "ok");
  // VNC on 5900 is QEMU's, not the guest's listener there.
  CHECK_THAT(in_ns(cluster.net.node(), "timeout 3 busybox nc 10.77.0.5 5900 | head -c 12"),
             Catch::StartsWith("RFB 003.008"));
  // Probes, as the kubelet runs them against the pod IP.
  CHECK(
      in_ns(cluster.net.node(), "curl -s -o /dev/null -w %{http_code} http://10.77.0.5:9250/readyz")
      == "200");
  // SIGTERM: the guest powers off and berth exits 0 within the timeout.
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(30s) == 0);
  CHECK(berth->wait_console("berth-guest: powering off", 0ms));
  // Start again: the same pet disk, with what the guest wrote the first time.
  auto again = cluster.start();
  REQUIRE(again->wait_console("berth-guest: ready", 180s));
  CHECK(again->wait_log("pet disk .* reused|reusing", 0ms));
  const std::string lines = cluster.guest_http("/e2e-file");
  CHECK(std::count(lines.begin(), lines.end(), '\n') == 1);  // two lines: both boots wrote one
  CHECK(again->wait_log("cached", 0ms));                     // no second download
  again->signal(SIGTERM);
  CHECK(again->wait_exit(30s) == 0);
}

// The fields of /proc/<pid>/status, by name ("Uid" -> "107\t107\t107\t107").
std::map<std::string, std::string> proc_status(pid_t pid) {
  std::map<std::string, std::string> fields;
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (const auto colon = line.find(':'); colon != std::string::npos) {
      const auto value = line.find_first_not_of(" \t", colon + 1);
      fields[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
    }
  return fields;
}

TEST_CASE(
    "e2e: QEMU runs as an unprivileged user without capabilities, and the guest still "
    "boots, networks and powers off",
    "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start({"BERTH_QEMU_USER=4242:4343"});
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  REQUIRE(berth->wait_log("the guest took its lease 192\\.168\\.254\\.2", 10s));
  const auto pid_text = berth->wait_log("QEMU running as pid ([0-9]+)", 0ms);
  REQUIRE(pid_text);
  const auto status = proc_status(std::stoi(*pid_text));
  INFO(berth->log_text());
  REQUIRE_THAT(status.at("Name"), Catch::StartsWith("qemu-system"));
  // Real, effective, saved and file-system ids, and no supplementary group (/dev/kvm is root's
  // or absent here).
  CHECK(status.at("Uid") == "4242\t4242\t4242\t4242");
  CHECK(status.at("Gid") == "4343\t4343\t4343\t4343");
  CHECK(status.at("Groups").empty());
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    CHECK(status.at(set) == "0000000000000000");
  CHECK(status.at("NoNewPrivs") == "1");
  CHECK(status.at("Seccomp") == "2");  // -sandbox on
  // The pet disk is QEMU's; the cached image stays root's and read-only to it.
  struct stat st {};
  fs::path pet;
  for (const auto& entry : fs::directory_iterator(cluster.dir.path / "disks"))
    if (entry.path().extension() == ".qcow2")
      pet = entry.path();
  REQUIRE(::stat(pet.c_str(), &st) == 0);
  CHECK(st.st_uid == 4242);
  CHECK((st.st_mode & 0077) == 0);
  REQUIRE(::stat((cluster.dir.path / "images" / "guest.qcow2").c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
  CHECK((st.st_mode & 0022) == 0);
  // The guest networks through the tap QEMU inherited: its httpd answers on the pod IP.
  CHECK(cluster.guest_http("/") == "e2e-guest");
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(30s) == 0);
  CHECK(berth->wait_console("berth-guest: powering off", 0ms));
}

TEST_CASE("e2e: NO_VNC forwards 5900 to the guest", "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start({"NO_VNC=1"});
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  // The guest's own httpd on 5900 answers, not QEMU's VNC.
  CHECK(in_ns(cluster.net.node(), "curl -s -m 5 http://10.77.0.5:5900/value") == "value-one");
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(30s) == 0);
}

TEST_CASE("e2e: a ConfigMap edit reaches the running guest without a restart", "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start({"NO_VNC=1"});
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  CHECK(cluster.guest_http("/value") == "value-one");
  cluster.write_userdata("#!/bin/sh\necho value-two > /www/value\n");
  REQUIRE(berth->wait_console("berth-guest: config-drive changed", 60s));
  std::string value;
  for (int i = 0; i < 50 && value != "value-two"; ++i) {
    value = cluster.guest_http("/value");
    std::this_thread::sleep_for(200ms);
  }
  CHECK(value == "value-two");
  CHECK_FALSE(berth->poll_exit());
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(30s) == 0);
}

// The config drive's entry in a query-block reply line (empty when absent).
boost::json::object config_drive_block(const std::string& reply) {
  const auto parsed = boost::json::parse(reply);
  for (const auto& block : parsed.at("return").as_array())
    if (block.as_object().contains("qdev") && block.at("qdev").as_string() == "configdrive")
      return block.as_object();
  return {};
}

std::size_t block_nodes(QmpProbe& probe) {
  return boost::json::parse(probe.execute("query-named-block-nodes"))
      .at("return")
      .as_array()
      .size();
}

TEST_CASE("e2e: a ConfigMap edit reaches a guest that holds its CD tray locked", "[e2e]") {
  Cluster cluster;
  cluster.write_userdata(tray_holding_userdata("one"));
  // A second QMP monitor for the test: it looks at the drive as QEMU sees it. QEMU, an
  // unprivileged user, creates this socket itself: its folder is open to everyone.
  const std::string probe_socket = (open_folder(cluster.dir.path / "probe") / "probe.qmp").string();
  auto berth = cluster.start(
      {"NO_VNC=1", "BERTH_QEMU_ARGS=-qmp unix:" + probe_socket + ",server=on,wait=off"});
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  REQUIRE(berth->wait_console("tray-test content: one", 0ms));
  QmpProbe probe;
  REQUIRE(probe.connect(probe_socket));
  // The guest holds the tray locked, and QEMU refuses a media change without force (what berth
  // sent before: "Device 'configdrive' is locked and force was not specified"). The script prints
  // its line while the background process that opens /dev/sr0 may not have opened it yet: wait
  // for the lock.
  boost::json::object block;
  for (const auto deadline = std::chrono::steady_clock::now() + 20s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
    block = config_drive_block(probe.execute("query-block"));
    if (block.contains("locked") && block.at("locked").as_bool())
      break;
  }
  REQUIRE(block.contains("locked"));
  REQUIRE(block.at("locked").as_bool());
  const std::string iso = boost::json::serialize(block.at("inserted").at("file"));
  CHECK_THAT(probe.execute("blockdev-change-medium",
                           "{\"id\":\"configdrive\",\"filename\":" + iso + ",\"format\":\"raw\"}"),
             Catch::Contains("is locked"));
  const std::size_t nodes = block_nodes(probe);

  cluster.write_userdata(tray_holding_userdata("two"));
  CHECK(berth->wait_log("the VM has the new config drive", 60s));
  CHECK(
      berth->wait_console("berth-guest: config-drive changed[\\s\\S]*tray-test content: two", 60s));
  CHECK_FALSE(berth->wait_log("did not take the new config drive", 0ms));
  CHECK(block_nodes(probe) == nodes);  // the old medium went with the swap
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(30s) == 0);
}

TEST_CASE("e2e: kill -9 of QEMU fails the pod with code 8 and a restart recovers", "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start({"NO_VNC=1"});
  REQUIRE(berth->wait_console("berth-guest: ready", 180s));
  const auto qemu = berth->wait_log("QEMU running as pid (\\d+)", 0ms);
  REQUIRE(qemu);
  ::kill(std::stoi(*qemu), SIGKILL);
  CHECK(berth->wait_exit(30s) == 8);
  // Nothing left behind: a new start plumbs and boots again.
  auto again = cluster.start({"NO_VNC=1"});
  REQUIRE(again->wait_console("berth-guest: ready", 180s));
  CHECK(cluster.guest_http("/value") == "value-one");
  again->signal(SIGTERM);
  CHECK(again->wait_exit(30s) == 0);
}

TEST_CASE("e2e: a wrong IMG_CHECKSUM is a clear error, nothing boots, the cache stays clean",
          "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start({"IMG_CHECKSUM=sha256:" + std::string(64, '0')});
  CHECK(berth->wait_exit(60s) == 4);
  CHECK(berth->wait_log("IMG_CHECKSUM", 0ms));
  CHECK_FALSE(berth->wait_log("starting QEMU", 0ms));
  CHECK_FALSE(fs::exists(cluster.dir.path / "images" / "guest.qcow2"));
  // The right checksum afterwards works from the same cache folder.
  auto good = cluster.start({"NO_VNC=1"});
  REQUIRE(good->wait_console("berth-guest: ready", 180s));
  good->signal(SIGTERM);
  CHECK(good->wait_exit(30s) == 0);
}

TEST_CASE("e2e: an unreachable IMG_SOURCE is a clear error", "[e2e]") {
  Cluster cluster;
  auto berth = cluster.start({"IMG_SOURCE=http://10.77.9.1:9/guest.qcow2"});
  CHECK(berth->wait_exit(180s) == 4);
  CHECK(berth->wait_log("10\\.77\\.9\\.1:9", 0ms));
  CHECK_FALSE(berth->wait_log("starting QEMU", 0ms));
}
