// VM_DISKS with real QEMU (TCG) through the berth binary on the test guest: two data disks in
// folders (qcow2 and raw) and a loop device standing in for a block-mode volume. The guest's
// user-data (data_disks_userdata.sh) prints each disk's serial and size, keeps a marker on each,
// and fills, deletes and trims a file on the qcow2 disk.

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>

#include "test/support/berth_process.hpp"
#include "test/support/data_disks.hpp"

using namespace berth::test;

namespace {

constexpr auto kBoot = 240s;

// The folders of the two file-backed data disks, vol-data and vol-scratch, in `dir`, and
// test/supervisor/<script> as the guest's user-data.
void make_volumes(const fs::path& dir, const std::string& script) {
  fs::create_directories(dir / "vol-data");
  fs::create_directories(dir / "vol-scratch");
  fs::copy_file(std::string(BERTH_SOURCE_DIR) + "/test/supervisor/" + script, dir / "userdata");
}

std::vector<std::string> disks_env(const fs::path& dir, const std::string& disks) {
  std::vector<std::string> env = test_berth_env(dir);
  env.insert(env.end(), {"IMG_SOURCE=" + test_guest(), "VM_DISKS=" + disks, "VM_CPUS=2",
                         "BERTH_SHUTDOWN_TIMEOUT=60"});
  return env;
}

}  // namespace

TEST_CASE(
    "disks: two data disks and a loop device keep serials and data across a restart - "
    "fstrim thins the qcow2 - hot-plug out and back in",
    "[disks]") {
  TempDir dir;
  make_volumes(dir.path, "data_disks_userdata.sh");
  LoopDevice loop(dir.path / "block.img");
  const fs::path qcow2 = dir.path / "vol-data" / "data.qcow2";
  for (int boot = 1; boot <= 2; ++boot) {
    // The second start grows the raw disk from 48 to 64 MiB.
    const std::string disks = "data=" + (dir.path / "vol-data").string()
                              + ":96Mi,scratch=" + (dir.path / "vol-scratch").string()
                              + (boot == 1 ? ":48Mi:raw" : ":64Mi:raw")
                              + ",blk=" + loop.device.string();
    PodNet net;
    const fs::path out = dir.path / ("boot" + std::to_string(boot));
    fs::create_directories(out);
    BerthProcess berth(out, disks_env(dir.path, disks), net.in_pod());
    INFO("boot " << boot << ": " << berth.log_text());
    const auto aio = berth.wait_log(
        "data disk \"blk\": block device /dev/loop\\d+ \\(64.0 MiB\\), raw, cache=none, "
        "aio=(io_uring|native)");
    REQUIRE(aio);
    std::printf("boot %d: the loop device with aio=%s\n", boot, aio->c_str());
    // The guest's view: the pet disk first, then the data disks in the order of VM_DISKS.
    REQUIRE(berth.wait_console("berth-disks: disk vdb serial=data bytes=100663296", kBoot));
    CHECK(berth.wait_console(boot == 1 ? "berth-disks: disk vdc serial=scratch bytes=50331648"
                                       : "berth-disks: disk vdc serial=scratch bytes=67108864",
                             10s));
    CHECK(berth.wait_console("berth-disks: disk vdd serial=blk bytes=67108864", 10s));
    CHECK(berth.wait_console("berth-disks: disk vda serial= bytes=", 10s));
    for (const std::string serial : {"scratch", "blk", "data"})
      CHECK(berth.wait_console("berth-disks: marker " + serial + "=(\\S+)", 60s)
            == (boot == 1 ? "none" : "berth-marker-" + serial));
    if (boot == 1) {
      REQUIRE(berth.wait_console("berth-disks: filled", 120s));
      const auto filled = allocated(qcow2);
      REQUIRE(berth.wait_console("berth-disks: trimmed rc=(\\d+)", 120s) == "0");
      const auto trimmed = allocated(qcow2);
      std::printf("data.qcow2 allocated: %.1f MiB filled, %.1f MiB after fstrim\n",
                  static_cast<double>(filled) / 1048576, static_cast<double>(trimmed) / 1048576);
      CHECK(filled >= 32u << 20);
      CHECK(trimmed + (24u << 20) <= filled);
      // Per-disk I/O counters, labelled with the block node's name.
      const auto metrics =
          http_get(std::string("http://") + PodNet::kPodIp + ":9250/metrics", 5, net.node());
      CHECK_THAT(metrics.body,
                 Catch::Contains("berth_block_written_bytes_total{device=\"disk-data\"}")
                     && Catch::Contains("berth_block_read_bytes_total{device=\"disk-blk\"}")
                     && Catch::Contains("berth_block_read_bytes_total{device=\"disk0\"}"));
    }
    REQUIRE(berth.wait_console("berth-guest: ready", 120s));
    if (boot == 2) {
      // Hot-plug: out and back in through the control API, by name and by folder.
      const fs::path run = dir.path / "run";
      const auto t0 = std::chrono::steady_clock::now();
      auto out_reply = hotplug(net, run, "detach", "scratch");
      CHECK(out_reply.status == 200);
      CHECK(berth.wait_console("berth-disks: serials now: blk data\\s", 60s));
      const auto t1 = std::chrono::steady_clock::now();
      auto in_reply = hotplug(net, run, "attach", (dir.path / "vol-scratch").string());
      INFO(in_reply.body);
      CHECK(in_reply.status == 200);
      CHECK(berth.wait_console("berth-disks: serials now: blk data scratch", 60s));
      const auto t2 = std::chrono::steady_clock::now();
      std::printf("hot-plug: detach %.1f s, attach %.1f s (to the guest's view)\n",
                  std::chrono::duration<double>(t1 - t0).count(),
                  std::chrono::duration<double>(t2 - t1).count());
      CHECK(hotplug(net, run, "attach", "scratch").status == 409);
      // Nothing but the disks of VM_DISKS, and only with the token.
      CHECK(hotplug(net, run, "attach", (dir.path / "block.img").string()).status == 403);
      CHECK(hotplug(net, run, "attach", "/etc/passwd").status == 403);
      CHECK(hotplug(net, run, "attach", "other").status == 403);
      CHECK(hotplug(net, run, "detach", "scratch", false).status == 401);
    }
    berth.signal(SIGTERM);
    REQUIRE(berth.wait_exit(90s) == 0);
  }
  // QEMU's own: berth handed the files to QEMU's user (107 unless berth is not root).
  struct stat st {};
  REQUIRE(::stat(qcow2.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  if (::geteuid() == 0)
    CHECK(st.st_uid == 107);
}

TEST_CASE(
    "disks: a block device that is a folder or a data disk that would shrink or be the pet disk "
    "stops start-up with the disk named",
    "[disks]") {
  TempDir dir;
  fs::create_directories(dir.path / "vol");
  {
    BerthProcess berth(dir.path, disks_env(dir.path, "d=" + (dir.path / "vol").string()));
    CHECK(berth.wait_exit(60s) == 3);
    INFO(berth.log_text());
    CHECK(
        berth.wait_log("disk \"d\": \".*/vol\" \\(VM_DISKS, no size: a block device\\) is not a "
                       "block device",
                       0ms));
  }
  REQUIRE(
      std::system(("qemu-img create -q -f qcow2 " + (dir.path / "vol" / "d.qcow2").string() + " 4M")
                      .c_str())
      == 0);
  BerthProcess berth(dir.path, disks_env(dir.path, "d=" + (dir.path / "vol").string() + ":2Mi"));
  CHECK(berth.wait_exit(60s) == 3);
  CHECK(
      berth.wait_log("VM_DISKS gives the disk \"d\" 2.0 MiB but .*d.qcow2\" is 4.0 MiB; disks "
                     "are never shrunk",
                     0ms));
  // A data disk that would be the pet disk (<hostname>.qcow2 in BERTH_DISK_DIR).
  std::array<char, 256> host{};
  REQUIRE(::gethostname(host.data(), host.size() - 1) == 0);
  const std::string name = host.data();
  if (name.size() <= 20
      && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos) {
    fs::create_directories(dir.path / "pet");
    BerthProcess pet(dir.path / "pet",
                     disks_env(dir.path, name + "=" + (dir.path / "disks").string() + ":1Gi"));
    CHECK(pet.wait_exit(60s) == 3);
    CHECK(pet.wait_log("VM_DISKS: the disk \"" + name + "\" would be the pet disk", 0ms));
  }
}
