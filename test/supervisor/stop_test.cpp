// A stop at every start-up phase, and a stuck start-up made visible, with the real berth binary
// in a pod-like network namespace (test/e2e/podnet.sh). Each phase is held open on purpose: a
// slow or stalled image server (test/drive/fault_server.py, run in the pod's namespace), a cache
// lock held by another process, a qemu-img or QEMU on PATH that hangs. Each case checks the exit
// code, how long the stop took, and what is left on disk and in the network namespace. The stop
// latencies are printed ("stop latency <phase>: <s>") for the report in the README.

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "test/drive/support.hpp"
#include "test/support/berth_process.hpp"

namespace berth::test {
namespace {

using Clock = std::chrono::steady_clock;

const std::string kTarget = "guest.qcow2";

// What berth leaves in the pod's network namespace: its bridge, tap and nftables table.
struct NetnsLeftovers {
  bool bridge = false, tap = false, table = false;
  bool any() const { return bridge || tap || table; }
};
NetnsLeftovers leftovers(const PodNet& net) {
  const std::string links = capture("ip netns exec " + net.pod() + " ip -o link show 2>&1");
  const std::string tables = capture("ip netns exec " + net.pod() + " nft list tables 2>&1");
  return {links.find(" br0:") != std::string::npos, links.find(" tap0:") != std::string::npos,
          tables.find("table ip berth") != std::string::npos};
}

// An executable script at `path`, runnable by QEMU's unprivileged user too.
void script(const fs::path& path, const std::string& body) {
  fs::create_directories(path.parent_path());
  drive::test::spit(path, "#!/bin/sh\n" + body);
  fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec
                            | fs::perms::others_read | fs::perms::others_exec);
}

bool pid_alive(const fs::path& pidfile) {
  const std::string pid = slurp(pidfile);
  return !pid.empty() && fs::exists("/proc/" + pid.substr(0, pid.find('\n')));
}

// One berth's directories and environment in a pod namespace; berth runs as
// `ip netns exec <pod> [unshare --pid --fork --mount-proc] berth`.
struct StopFixture {
  TempDir dir;
  PodNet net;
  fs::path images = dir.path / "images";
  fs::path disks = dir.path / "disks";
  fs::path bin = dir.path / "bin";  // first on berth's PATH: fake qemu-img / QEMU go here

  std::vector<std::string> env(const std::string& source, std::vector<std::string> extra = {}) {
    extra.push_back("IMG_SOURCE=" + source);
    extra.push_back("IMG_TARGET=" + kTarget);
    extra.push_back("BERTH_DISK_DIR=" + disks.string());
    extra.push_back("BERTH_RUNTIME_DIR=" + (dir.path / "run").string());
    extra.push_back("BERTH_IMAGE_DIR=" + images.string());
    for (const char* input : {"USERDATA", "METADATA", "NETWORKDATA"})
      extra.push_back(std::string("BERTH_") + input + "=" + (dir.path / "none").string());
    extra.push_back("VM_MEMORY=256M");
    extra.push_back("NO_VNC=1");
    extra.push_back("BERTH_SHUTDOWN_TIMEOUT=30");
    extra.push_back("PATH=" + bin.string() + ":" + env_or("PATH", "/usr/bin:/bin"));
    return extra;
  }
  std::vector<std::string> in_pod(bool own_pid_namespace = false) const {
    auto argv = net.in_pod();
    if (own_pid_namespace)
      argv.insert(argv.end(), {"unshare", "--pid", "--fork", "--mount-proc"});
    return argv;
  }
  // A run directory of its own for each berth (its console and log files).
  fs::path run_dir(const std::string& name) const {
    const auto path = dir.path / name;
    fs::create_directories(path);
    return path;
  }

  bool cached() const {
    return fs::exists(images / kTarget) || fs::exists(images / (kTarget + ".berth.json"));
  }
  HttpResult healthz() const { return http_get("http://127.0.0.1:9250/healthz", 2, net.pod()); }
  // /healthz once it fails (503), or its last answer after 10s.
  HttpResult healthz_failing() const {
    HttpResult health;
    const auto deadline = Clock::now() + 10s;
    while ((health = healthz()).status != 503 && Clock::now() < deadline)
      std::this_thread::sleep_for(200ms);
    return health;
  }
  // Another "berth" holding the entry's cache lock (flock -o: only flock itself holds it, not
  // its child, so killing flock frees it).
  drive::test::ChildProcess hold_lock() const {
    fs::create_directories(images);
    return drive::test::ChildProcess({"flock", "-o", (images / (kTarget + ".lock")).string(), "sh",
                                      "-c", "exec sleep 60 >/dev/null 2>&1"},
                                     false);
  }

  // SIGTERM to `berth` now: its exit code and how long it took.
  // `pid`: berth's own, when it runs under unshare (which forwards no signal).
  std::pair<std::optional<int>, double> stop(BerthProcess& berth, const std::string& phase,
                                             pid_t pid = -1) {
    const auto sent = Clock::now();
    ::kill(pid > 0 ? pid : berth.pid, SIGTERM);
    const auto code = berth.wait_exit(60s);
    const double took = std::chrono::duration<double>(Clock::now() - sent).count();
    std::printf("stop latency %s: %.2fs (exit %d)\n", phase.c_str(), took, code.value_or(-1));
    std::fflush(stdout);
    return {code, took};
  }

  // Runs berth over the local test guest up to the network phase and stops it: the image is
  // cached and the pet disk made, at the guest's own size (512 MiB).
  void make_pet_disk() {
    BerthProcess first(run_dir("first"), env(test_guest(), {"VM_ACCEL=tcg"}), in_pod());
    REQUIRE(first.wait_log("phase disk -> drive"));
    first.signal(SIGTERM);
    REQUIRE(first.wait_exit(20s) == 0);
    REQUIRE(fs::exists(disks));
  }
};

// The test guest served by fault_server.py inside the pod namespace (berth fetches from loopback).
struct GuestServer {
  fs::path www;
  drive::test::FaultServer server;
  GuestServer(StopFixture& f)
      : www(make_www(f.dir.path)), server(www, f.dir.path, {}, {}, f.net.in_pod()) {}
  static fs::path make_www(const fs::path& dir) {
    fs::create_directories(dir / "www");
    fs::create_symlink(test_guest(), dir / "www" / kTarget);
    return dir / "www";
  }
  std::string url(const std::string& query) const {
    return server.url("/files/" + kTarget + query);
  }
};

}  // namespace

TEST_CASE_METHOD(StopFixture,
                 "stop: SIGTERM during the image download ends berth at once, nothing cached",
                 "[stop]") {
  GuestServer www(*this);
  // 1 MB/s: the 17 MiB guest takes ~17s. Moving, so its budget of 2s without progress holds.
  BerthProcess berth(run_dir("run"),
                     env(www.url("?rate=1000000"), {"VM_ACCEL=tcg", "BERTH_PHASE_BUDGETS=image=2"}),
                     in_pod());
  REQUIRE(berth.wait_log("fetching http"));
  std::this_thread::sleep_for(3s);
  const auto alive = healthz();
  CHECK(alive.status == 200);
  CHECK_THAT(alive.body, Catch::Contains("\"phase\":\"image\""));
  auto [code, took] = stop(berth, "image download");
  INFO(berth.log_text());
  CHECK(code == 0);
  CHECK(took < 2.0);
  CHECK(berth.wait_log("start-up stopped in phase image", 0ms));
  CHECK_FALSE(cached());
  CHECK_FALSE(fs::exists(images / (kTarget + ".part")));
  // What was fetched stays to be resumed (the cache's design, image_cache.hpp), with its source.
  CHECK(fs::exists(images / (kTarget + ".download")));
  CHECK(fs::exists(images / (kTarget + ".download.json")));
  CHECK_FALSE(leftovers(net).any());
}

TEST_CASE_METHOD(StopFixture, "budget: a stalled download fails /healthz, naming the image phase",
                 "[stop]") {
  GuestServer www(*this);
  BerthProcess berth(run_dir("run"),
                     env(www.url("?stall=100000"), {"VM_ACCEL=tcg", "BERTH_PHASE_BUDGETS=image=2"}),
                     in_pod());
  REQUIRE(berth.wait_log("fetching http"));
  const HttpResult health = healthz_failing();
  INFO(berth.log_text());
  CHECK(health.status == 503);
  CHECK_THAT(health.body, Catch::Contains("\"phase\":\"image\"")
                              && Catch::Contains("phase image made no progress for")
                              && Catch::Contains("\"budget_seconds\":2"));
  auto [code, took] = stop(berth, "stalled download");
  CHECK(code == 0);
  CHECK(took < 2.0);
  CHECK_FALSE(cached());
}

TEST_CASE_METHOD(StopFixture, "stop: SIGTERM during the cache lock wait ends berth at once",
                 "[stop]") {
  auto holder = hold_lock();
  std::this_thread::sleep_for(200ms);
  BerthProcess berth(run_dir("run"), env(test_guest(), {"VM_ACCEL=tcg"}), in_pod());
  REQUIRE(berth.wait_log("waiting for another berth"));
  auto [code, took] = stop(berth, "cache lock wait");
  INFO(berth.log_text());
  CHECK(code == 0);
  CHECK(took < 2.0);
  CHECK(berth.wait_log("start-up stopped in phase image", 0ms));
  CHECK_FALSE(cached());
  CHECK_FALSE(leftovers(net).any());
}

TEST_CASE_METHOD(StopFixture,
                 "budget: a cache lock whose holder makes no progress fails /healthz, and its "
                 "holder's death frees it at once",
                 "[stop]") {
  auto holder = hold_lock();
  std::this_thread::sleep_for(200ms);
  BerthProcess berth(run_dir("run"),
                     env(test_guest(), {"VM_ACCEL=tcg", "BERTH_PHASE_BUDGETS=image=2"}), in_pod());
  REQUIRE(berth.wait_log("waiting for another berth"));
  const HttpResult health = healthz_failing();
  INFO(berth.log_text());
  CHECK(health.status == 503);
  CHECK_THAT(health.body, Catch::Contains("phase image made no progress"));
  // The holder dies (kill -9): the kernel drops its flock, and berth goes on within a poll.
  const auto killed = Clock::now();
  holder.stop(SIGKILL);
  REQUIRE(berth.wait_log("phase image -> disk", 10s));
  const double took = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("lock taken after its holder died: %.2fs\n", took);
  CHECK(took < 2.0);
  CHECK(cached());
  stop(berth, "after the lock");
}

TEST_CASE_METHOD(StopFixture, "stop: SIGTERM during qemu-img ends it and berth, the disk intact",
                 "[stop]") {
  make_pet_disk();
  script(bin / "qemu-img",
         "echo $$ > " + (dir.path / "qemu-img.pid").string() + "\nwhile :; do sleep 0.1; done\n");
  // VM_DISK_SIZE above the disk's size: berth grows it with `qemu-img resize`, which hangs.
  BerthProcess berth(run_dir("run"), env(test_guest(), {"VM_ACCEL=tcg", "VM_DISK_SIZE=1Gi"}),
                     in_pod());
  const auto deadline = Clock::now() + 20s;
  while (!pid_alive(dir.path / "qemu-img.pid") && Clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  REQUIRE(pid_alive(dir.path / "qemu-img.pid"));
  auto [code, took] = stop(berth, "qemu-img");
  INFO(berth.log_text());
  CHECK(code == 0);
  CHECK(took < 2.0);
  CHECK(berth.wait_log("start-up stopped in phase disk", 0ms));
  CHECK_FALSE(pid_alive(dir.path / "qemu-img.pid"));
  fs::remove(bin / "qemu-img");
  std::string info;
  fs::path disk;
  for (const auto& entry : fs::directory_iterator(disks))
    if (entry.path().extension() == ".qcow2")
      disk = entry.path();
  REQUIRE(drive::test::run_command({"qemu-img", "info", "--output=json", disk.string()}, &info)
          == 0);
  CHECK(boost::json::parse(info).at("virtual-size").as_int64() == 512ll << 20);
  CHECK(drive::test::run_command({"qemu-img", "check", disk.string()}) == 0);
  CHECK_FALSE(leftovers(net).any());
}

TEST_CASE_METHOD(StopFixture, "budget: a hung qemu-img is stopped at the disk phase's deadline",
                 "[stop]") {
  make_pet_disk();
  script(bin / "qemu-img", "trap '' TERM\nwhile :; do sleep 0.1; done\n");  // deaf to SIGTERM
  BerthProcess berth(
      run_dir("run"),
      env(test_guest(), {"VM_ACCEL=tcg", "VM_DISK_SIZE=1Gi", "BERTH_PHASE_BUDGETS=disk=2"}),
      in_pod());
  REQUIRE(berth.wait_log("phase image -> disk"));
  const auto entered = Clock::now();
  INFO(berth.log_text());
  CHECK(berth.wait_exit(20s) == 5);  // ExitCode::kDisk
  const double took = std::chrono::duration<double>(Clock::now() - entered).count();
  std::printf("hung qemu-img ended after %.2fs (deadline 2s, then 2s to SIGKILL)\n", took);
  CHECK(took < 6.0);
  CHECK(berth.wait_log("qemu-img did not finish within its deadline", 0ms));
  CHECK_FALSE(leftovers(net).any());
}

TEST_CASE_METHOD(StopFixture, "stop: SIGTERM while QMP connects ends QEMU with SIGTERM, not KILL",
                 "[stop]") {
  const std::string qemu = capture("command -v qemu-system-x86_64");
  REQUIRE_FALSE(qemu.empty());
  // A QEMU that takes long to come up: its QMP socket is not there for 30s.
  // Its pid goes where QEMU's unprivileged user may write.
  const fs::path out = open_folder(dir.path / "qemu-out");
  script(bin / "qemu-system-x86_64", "echo $$ > " + (out / "qemu.pid").string()
                                         + "\nsleep 30\nexec " + qemu.substr(0, qemu.find('\n'))
                                         + " \"$@\"\n");
  BerthProcess berth(run_dir("run"), env(test_guest(), {"VM_ACCEL=tcg"}), in_pod());
  REQUIRE(berth.wait_log("QEMU running as pid"));
  std::this_thread::sleep_for(500ms);
  auto [code, took] = stop(berth, "QMP connect");
  INFO(berth.log_text());
  CHECK(code == 0);
  CHECK(took < 3.0);
  CHECK(berth.wait_log("start-up stopped in phase booting", 0ms));
  CHECK(berth.wait_log("asking QEMU to quit with SIGTERM", 0ms));
  CHECK_FALSE(berth.wait_log("killing it", 0ms));
  CHECK_FALSE(pid_alive(out / "qemu.pid"));
  CHECK_FALSE(leftovers(net).any());
}

TEST_CASE_METHOD(StopFixture, "stop: SIGTERM during the KVM probation powers the guest off",
                 "[stop]") {
  // QEMU runs as an unprivileged user, and this host's /dev/kvm may be root's only (0600): berth
  // runs in a mount namespace of its own where /dev/kvm is a node of the same device open to
  // everyone, as udev's 0660 root:kvm or 0666 is on a usual node. The host's node is untouched.
  std::vector<std::string> prefix = in_pod();
  if (fs::exists("/dev/kvm")) {
    const fs::path kvm = dir.path / "kvm";
    struct stat host_kvm {};
    REQUIRE(::stat("/dev/kvm", &host_kvm) == 0);
    REQUIRE(::mknod(kvm.c_str(), S_IFCHR | 0666, host_kvm.st_rdev) == 0);
    fs::permissions(kvm, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read
                             | fs::perms::group_write | fs::perms::others_read
                             | fs::perms::others_write);
    prefix.insert(prefix.end(), {"unshare", "--mount", "--propagation", "private", "sh", "-c",
                                 "mount --bind " + kvm.string() + " /dev/kvm && exec \"$0\""});
  }
  BerthProcess berth(run_dir("run"), env(test_guest(), {"VM_ACCEL=auto"}), prefix);
  REQUIRE(berth.wait_log("QMP connected|acceleration: TCG"));
  if (berth.wait_log("acceleration: TCG", 0ms)) {
    WARN("KVM is not usable here: no KVM probation to stop");
    stop(berth, "running (TCG)");
    return;
  }
  auto [code, took] = stop(berth, "KVM probation");
  INFO(berth.log_text());
  CHECK(took < 30.0);
  CHECK(berth.wait_log("start-up stopped in phase booting", 0ms));
  // The ACPI power-down path, never a bare SIGKILL.
  CHECK(berth.wait_log("asking the guest to power off \\(ACPI", 0ms));
  CHECK_FALSE(berth.wait_log("killing it", 0ms));
  if (berth.wait_log("internal error", 0ms)) {
    WARN("the guest failed under this host's KVM while powering off (nested KVM)");
  } else {
    CHECK(code == 0);
    CHECK(berth.wait_log("the guest powered off", 0ms));
  }
  CHECK_FALSE(leftovers(net).any());
}

TEST_CASE_METHOD(StopFixture,
                 "stop: SIGKILL of berth's PID namespace, then a restart in the same network "
                 "namespace",
                 "[stop]") {
  GuestServer www(*this);
  // The first request is slow (1 MB/s), the ones after it (the resume) are not.
  const std::string kSlowOnce = "?rate=1000000&rate_times=1";
  auto berth_in = [](BerthProcess& unshare) {
    pid_t pid = -1;
    for (int i = 0; i < 100 && pid < 0; ++i) {
      const std::string kids = slurp("/proc/" + std::to_string(unshare.pid) + "/task/"
                                     + std::to_string(unshare.pid) + "/children");
      if (!kids.empty())
        pid = std::stoi(kids);
      else
        std::this_thread::sleep_for(20ms);
    }
    REQUIRE(pid > 0);
    return pid;
  };
  {
    // Killed mid-download: the partial download stays to be resumed, nothing is cached.
    BerthProcess first(run_dir("first"), env(www.url(kSlowOnce), {"VM_ACCEL=tcg"}), in_pod(true));
    REQUIRE(first.wait_log("fetching http"));
    std::this_thread::sleep_for(1s);
    ::kill(berth_in(first), SIGKILL);
    CHECK(first.wait_exit(10s).has_value());
    CHECK_FALSE(cached());
    CHECK(fs::exists(images / (kTarget + ".download")));
  }
  {
    // Killed while the guest runs: QEMU dies with the namespace; bridge, tap and table stay.
    BerthProcess second(run_dir("second"), env(www.url(kSlowOnce), {"VM_ACCEL=tcg"}), in_pod(true));
    INFO(second.log_text());
    REQUIRE(second.wait_console("berth-guest: ready"));
    CHECK(second.wait_log("resuming", 0ms));
    ::kill(berth_in(second), SIGKILL);
    CHECK(second.wait_exit(10s).has_value());
    const auto left = leftovers(net);
    CHECK(left.bridge);
    CHECK(left.tap);
    CHECK(left.table);
    CHECK(cached());
  }
  // The restart replaces what the dead run left, reuses its pet disk and boots the guest again.
  BerthProcess third(run_dir("third"), env(www.url(kSlowOnce), {"VM_ACCEL=tcg"}), in_pod(true));
  INFO(third.log_text());
  REQUIRE(third.wait_console("berth-guest: ready"));
  CHECK(third.wait_log("reusing the pet disk", 0ms));
  auto [code, took] = stop(third, "running, after the restart", berth_in(third));
  CHECK(code == 0);
  CHECK_FALSE(leftovers(net).any());
}

}  // namespace berth::test
