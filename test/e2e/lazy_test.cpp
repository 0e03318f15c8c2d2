// IMG_LAZY end to end: berth in a pod namespace boots the built-in guest while its base image
// still downloads from the node (busybox httpd, which answers Range, behind a tc rate limit on the
// node's veth), the completed cache file is byte-identical to the source; a wrong IMG_CHECKSUM
// stops the VM with exit 4 once the fill ends; a server without Range falls back.

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "test/support/pod_cluster.hpp"

using namespace berth::test;

namespace {

const char* kUserdata = R"(#!/bin/sh
echo lazy-ok > /www/lazy
)";

// The guest image padded (a copy: the shared cache is never touched) to about 180 MB: QEMU never
// reads past the qcow2 clusters, so the padding only makes the fill long.
fs::path padded_guest(const fs::path& dir) {
  const fs::path copy = dir / "guest-padded.qcow2";
  fs::copy_file(test_guest(), copy);
  fs::resize_file(copy, fs::file_size(copy) + (std::uint64_t{160} << 20));
  return copy;
}

// 10 Mbit/s from the node to the pod (tc on the node's veth).
void throttle(const PodCluster& cluster) {
  REQUIRE(std::system(("ip netns exec " + cluster.net.node()
                       + " tc qdisc add dev cali0 root tbf rate 10mbit burst 64kb latency 500ms")
                          .c_str())
          == 0);
}

std::string node_cmd(const PodCluster& cluster, const std::string& command) {
  return in_ns(cluster.net.node(), command);
}

}  // namespace

TEST_CASE("e2e lazy: the guest answers while its image still fills, and the cache ends identical",
          "[e2e][lazy]") {
  TempDir pad;
  PodCluster cluster(PodClusterOptions(padded_guest(pad.path), kUserdata));
  // 10 Mbit/s from the node to the pod: the 180 MB fill takes about two and a half minutes.
  throttle(cluster);
  auto berth = cluster.start({"IMG_LAZY=yes"});
  const fs::path cached = cluster.dir.path / "images" / "guest.qcow2";
  const auto ready = berth->wait_console("berth-guest: ready", 240s);
  if (!ready)
    berth->report("berth-guest: ready");
  REQUIRE(ready);
  // The guest runs and answers on the pod IP while the fill is still going.
  const bool filling = !fs::exists(cached) && fs::exists(cached.string() + ".lazy");
  CHECK(node_cmd(cluster, "curl -s -m 10 http://10.77.0.5/lazy") == "lazy-ok");
  CHECK(filling);
  const auto metrics = node_cmd(cluster, "curl -s -m 5 http://10.77.0.5:9250/metrics");
  CHECK_THAT(metrics, Catch::Contains("berth_image_lazy_on_demand_bytes_total"));
  CHECK_THAT(metrics, Catch::Contains("berth_image_lazy_verified 0"));
  const auto verified = berth->wait_log("complete and verified", 400s);
  if (!verified)
    berth->report("complete and verified");
  REQUIRE(verified);
  CHECK(std::system(
            ("cmp " + cached.string() + " " + (cluster.dir.path / "www" / "guest.qcow2").string())
                .c_str())
        == 0);
  CHECK_FALSE(fs::exists(cached.string() + ".lazy"));
  CHECK_FALSE(fs::exists(cached.string() + ".chunks"));
  CHECK(fs::exists(cached.string() + ".berth.json"));
  CHECK(node_cmd(cluster, "curl -s -m 10 http://10.77.0.5/lazy") == "lazy-ok");
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(60s) == 0);
  // The next start uses the cached file directly.
  auto again = cluster.start({"IMG_LAZY=yes"});
  CHECK(
      again->wait_log("IMG_LAZY: a full download first, because the image is cached already", 60s));
  CHECK(again->wait_console("berth-guest: ready", 240s));
  again->signal(SIGTERM);
  CHECK(again->wait_exit(60s) == 0);
}

TEST_CASE("e2e lazy: a wrong IMG_CHECKSUM stops the VM with exit 4 once the fill ends",
          "[e2e][lazy]") {
  PodCluster cluster(PodClusterOptions(test_guest(), kUserdata));
  // 18 MB at 10 Mbit/s: QEMU runs for a while before the fill ends.
  throttle(cluster);
  auto berth = cluster.start({"IMG_LAZY=yes", "IMG_CHECKSUM=sha256:" + std::string(64, 'a')});
  const auto code = berth->wait_exit(300s);
  if (code != 4)
    berth->report("exit 4");
  CHECK(code == 4);
  CHECK(berth->wait_log("IMG_LAZY: .*IMG_CHECKSUM mismatch", 0ms));
  CHECK(berth->wait_log("QEMU reads the base image", 0ms));  // the VM had been started lazily
  const std::string log = berth->log_text();                 // QEMU ran before the fill ended
  CHECK(log.find("QMP connected") < log.find("IMG_CHECKSUM mismatch"));
  CHECK(log.find("IMG_CHECKSUM mismatch") != std::string::npos);
  const fs::path cached = cluster.dir.path / "images" / "guest.qcow2";
  CHECK_FALSE(fs::exists(cached));
  CHECK_FALSE(fs::exists(cached.string() + ".lazy"));
  // The pet disk made over it is gone too (other records, e.g. the firmware's, may stay).
  std::string listing;
  for (const auto& entry : fs::directory_iterator(cluster.dir.path / "disks"))
    listing += entry.path().filename().string() + " ";
  INFO("disks: " << listing);
  CHECK(listing.find(".qcow2 ") == std::string::npos);
}

TEST_CASE("e2e lazy: a server without Range falls back to the full download", "[e2e][lazy]") {
  PodCluster cluster(PodClusterOptions(test_guest(), kUserdata));
  // Python's http.server answers every GET 200, Range or not.
  Background plain(cluster.net.node(),
                   {"python3", "-m", "http.server", "--bind", PodCluster::kNodeIp, "--directory",
                    (cluster.dir.path / "www").string(), "8081"});
  // It resolves its own name before it listens (seconds without DNS): wait for it.
  const std::string url = std::string("http://") + PodCluster::kNodeIp + ":8081/guest.qcow2";
  REQUIRE(node_cmd(cluster, "for i in $(seq 60); do curl -s -o /dev/null -r 0-0 -w %{http_code} "
                                + url + " && break; sleep 0.5; done")
              .ends_with("200"));
  auto berth = cluster.start({"IMG_LAZY=yes", std::string("IMG_SOURCE=http://")
                                                  + PodCluster::kNodeIp + ":8081/guest.qcow2"});
  const auto fell_back =
      berth->wait_log("IMG_LAZY: a full download first, because the server answered 200", 90s);
  if (!fell_back)
    berth->report("the fallback");
  CHECK(fell_back);
  CHECK(berth->wait_log("cached .*guest\\.qcow2", 120s));
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(60s) == 0);
}

TEST_CASE("e2e lazy: kill -9 mid-fill, and the next start resumes from the chunk map",
          "[e2e][lazy]") {
  TempDir pad;
  PodCluster cluster(PodClusterOptions(padded_guest(pad.path), kUserdata));
  throttle(cluster);
  const fs::path cached = cluster.dir.path / "images" / "guest.qcow2";
  {
    auto berth = cluster.start({"IMG_LAZY=yes"});
    // The fill's progress line, every 5 s: some chunks are durable.
    const auto progress = berth->wait_log("lazy image: [1-9][0-9]* of [0-9]+ bytes present", 120s);
    if (!progress)
      berth->report("fill progress");
    REQUIRE(progress);
    berth->signal(SIGKILL);
    REQUIRE(berth->wait_exit(30s));
  }
  CHECK(fs::exists(cached.string() + ".chunks"));
  auto again = cluster.start({"IMG_LAZY=yes"});
  const auto resumed =
      again->wait_log("guest\\.qcow2\\.lazy: ([1-9][0-9]*) of [0-9]+ bytes present", 60s);
  if (!resumed)
    again->report("resumed");
  CHECK(resumed);
  again->signal(SIGTERM);
  CHECK(again->wait_exit(60s));
}
