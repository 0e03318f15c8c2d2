// QEMU supervision with real QEMU (TCG) and the built-in test guest, through the berth binary:
// boot, power-off, ACPI timeout, QEMU killed, reboot, acceleration choice.

#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "test/support/berth_process.hpp"
#include "test/support/qmp_probe.hpp"
#include "test/support/rfb_client.hpp"

using namespace berth::test;

namespace {

enum class Probe { kNone, kAttached };  // kAttached: a second QMP monitor for the test itself

// berth on the test guest with its own disk and runtime folders; `env` adds or overrides.
struct GuestBerth {
  TempDir dir;
  PodNet net;
  BerthProcess process;

  explicit GuestBerth(std::vector<std::string> env = {}, Probe probe = Probe::kNone)
      : process(dir.path, defaults(dir.path, std::move(env), probe), net.in_pod()) {}

  // The health endpoints as the kubelet reaches them: the pod IP, from the node.
  HttpResult health(const std::string& path, double seconds = 5) const {
    return http_get(std::string("http://") + PodNet::kPodIp + ":9250" + path, seconds, net.node());
  }
  // The control API as `kubectl port-forward` reaches it: loopback inside the pod, with the token
  // berth generated (`with_token` false: without it).
  HttpResult control(const std::string& path, const std::string& method = "GET",
                     bool with_token = true) const {
    std::string token =
        with_token ? capture("cat " + (dir.path / "run/control-token").string()) : "";
    while (!token.empty() && token.back() == '\n')
      token.pop_back();
    return http_request("http://127.0.0.1:9251" + path, method, 5, net.pod(),
                        token.empty() ? "" : "Authorization: Bearer " + token);
  }

  static constexpr const char* kVncPassword = "vm-test-vnc-secret";

  // Every run has a VNC password file (VNC itself is off unless a test sets NO_VNC=0).
  static std::vector<std::string> defaults(const fs::path& dir, std::vector<std::string> env,
                                           Probe probe) {
    std::ofstream(dir / "vnc-password") << kVncPassword << "\n";
    std::vector<std::string> all = test_berth_env(dir);
    all.push_back("BERTH_VNC_PASSWORD_FILE=" + (dir / "vnc-password").string());
    all.push_back("IMG_SOURCE=" + test_guest());
    if (probe == Probe::kAttached)
      all.push_back("BERTH_QEMU_ARGS=-qmp unix:" + probe_path(dir).string()
                    + ",server=on,wait=off");
    all.insert(all.end(), env.begin(), env.end());  // later entries win in putenv order
    return all;
  }

  // QEMU, an unprivileged user, creates this socket itself: its folder is open to everyone.
  static fs::path probe_path(const fs::path& dir) {
    return open_folder(dir / "probe") / "probe.qmp";
  }
  std::string probe_socket() const { return probe_path(dir.path).string(); }
};

}  // namespace

TEST_CASE("vm: the guest boots to its ready line and SIGTERM powers it off with exit 0 in time",
          "[vm]") {
  GuestBerth berth({"BERTH_SHUTDOWN_TIMEOUT=20"});
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_console("berth-guest: ready"));
  CHECK(berth.process.wait_console("berth-guest: booted 6\\.", 0ms));  // console reaches stdout
  const auto stop = std::chrono::steady_clock::now();
  berth.process.signal(SIGTERM);
  REQUIRE(berth.process.wait_exit(30s) == 0);
  CHECK(std::chrono::steady_clock::now() - stop < 20s);
  CHECK(berth.process.wait_console("berth-guest: powering off", 0ms));
  CHECK(berth.process.wait_log("the guest powered off", 0ms));
}

TEST_CASE("vm: a guest that ignores ACPI is quit after BERTH_SHUTDOWN_TIMEOUT with exit 10",
          "[vm]") {
  // -S: the vCPUs never start, so nothing in the guest can answer the power button.
  GuestBerth berth({"BERTH_SHUTDOWN_TIMEOUT=3", "BERTH_QEMU_ARGS=-S"});
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_log("phase booting -> running"));
  const auto stop = std::chrono::steady_clock::now();
  berth.process.signal(SIGTERM);
  REQUIRE(berth.process.wait_exit(20s) == 10);
  const auto took = std::chrono::steady_clock::now() - stop;
  CHECK(took >= 3s);
  CHECK(took < 12s);
  CHECK(berth.process.wait_log("did not power off within 3s; quitting QEMU", 0ms));
}

TEST_CASE("vm: kill -9 of QEMU ends berth with the QEMU failure code 8", "[vm]") {
  GuestBerth berth;
  INFO(berth.process.log_text());
  const auto qemu_pid = berth.process.wait_log("QEMU running as pid (\\d+)");
  REQUIRE(qemu_pid);
  REQUIRE(berth.process.wait_console("berth-guest: ready"));
  ::kill(std::stoi(*qemu_pid), SIGKILL);
  REQUIRE(berth.process.wait_exit(20s) == 8);
  CHECK(berth.process.wait_log("QEMU killed by signal 9 \\(SIGKILL\\) without the guest", 0ms));
}

TEST_CASE("vm: a guest reboot keeps the VM running and a guest power-off ends berth with 0",
          "[vm]") {
  GuestBerth berth({}, Probe::kAttached);
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_console("berth-guest: ready"));
  QmpProbe probe;
  REQUIRE(probe.connect(berth.probe_socket()));
  CHECK(probe.execute("system_reset").find("\"return\"") != std::string::npos);
  REQUIRE(berth.process.wait_log("the guest rebooted"));
  REQUIRE(berth.process.wait_console("boot-count 2[\\s\\S]*berth-guest: ready"));
  CHECK_FALSE(berth.process.poll_exit());
  // The power button pressed by someone else: the guest powers itself off, berth exits 0.
  CHECK(probe.execute("system_powerdown").find("\"return\"") != std::string::npos);
  REQUIRE(berth.process.wait_exit(30s) == 0);
  CHECK(berth.process.wait_log("the guest powered off", 0ms));
  CHECK_FALSE(berth.process.wait_log("SIGTERM", 0ms));
}

TEST_CASE("vm: QEMU that cannot start ends berth with code 8 and QEMU's own message", "[vm]") {
  GuestBerth berth({"BERTH_QEMU_ARGS=-no-such-option"});
  REQUIRE(berth.process.wait_exit(20s) == 8);
  INFO(berth.process.log_text());
  CHECK(berth.process.wait_log("QEMU exited with code 1 at start: .*invalid option", 0ms));
}

TEST_CASE("vm: VM_ACCEL=auto uses KVM only when a guest runs under it and says why not", "[vm]") {
  GuestBerth berth({"VM_ACCEL=auto"});
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_console("berth-guest: ready"));
  // The last decision is the one in effect (a late KVM failure falls back to TCG).
  const std::string log = berth.process.log_text();
  const std::regex decision("acceleration: (KVM \\(the guest ran|TCG, because [^\\n]*)");
  std::string last;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), decision);
       it != std::sregex_iterator(); ++it)
    last = (*it)[1].str();
  REQUIRE_FALSE(last.empty());
  WARN("this machine: acceleration " << last);
  const bool kvm_device = fs::exists("/dev/kvm");
  if (!kvm_device)
    CHECK_THAT(last, Catch::Contains("KVM is not usable"));
  // Where KVM is present but cannot run a guest (nested KVM here), the guest still came up, so the
  // decision in effect must be TCG; where KVM works it is KVM. QEMU's -accel shows which ran.
  const bool qemu_on_kvm =
      berth.process
          .wait_log("starting QEMU: [^\\n]*accel=kvm[^\\n]*\\n(?![\\s\\S]*starting QEMU)", 0ms)
          .has_value();
  CHECK(last.starts_with("KVM") == qemu_on_kvm);
  berth.process.signal(SIGTERM);
  CHECK(berth.process.wait_exit(30s) == 0);
}

TEST_CASE(
    "http: probes and metrics and control against a running guest where a hung QEMU fails "
    "liveness within its deadline and recovers",
    "[vm][http]") {
  GuestBerth berth({"NO_VNC=0"});
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_console("berth-guest: ready"));
  auto live = berth.health("/healthz");
  CHECK(live.status == 200);
  CHECK_THAT(live.body, Catch::Contains("\"vm\":\"running\""));
  // Ready once the guest took its DHCP lease from berth.
  HttpResult ready;
  for (int i = 0; i < 100 && ready.status != 200; ++i) {
    ready = berth.health("/readyz");
    if (ready.status != 200)
      std::this_thread::sleep_for(200ms);
  }
  CHECK(ready.status == 200);
  CHECK_THAT(ready.body, Catch::Contains("\"status\":\"ready\""));
  auto metrics = berth.health("/metrics");
  CHECK(metrics.status == 200);
  CHECK_THAT(metrics.body, Catch::Contains("berth_phase{phase=\"running\"} 1")
                               && Catch::Contains("berth_block_read_bytes_total{device=")
                               && Catch::Contains("berth_info{version=")
                               && Catch::Contains("accel=\"tcg\""));
  auto status = berth.control("/api/v1/status");
  CHECK(status.status == 200);
  CHECK_THAT(status.body, Catch::Contains("\"status\":\"running\""));
  CHECK(berth.control("/api/v1/powerdown", "POST", false).status == 401);
  auto refused = berth.control("/api/v1/qmp", "POST");
  CHECK(refused.status == 400);  // {} has no "execute"
  auto shot = berth.control("/api/v1/screenshot.png");
  CHECK(shot.status == 200);
  CHECK(shot.body.substr(1, 3) == "PNG");

  // SIGSTOP on QEMU: QMP cannot answer, so liveness fails within its 2 s deadline.
  const auto qemu_pid = berth.process.wait_log("QEMU running as pid (\\d+)", 0ms);
  REQUIRE(qemu_pid);
  ::kill(std::stoi(*qemu_pid), SIGSTOP);
  const auto asked = std::chrono::steady_clock::now();
  auto hung = berth.health("/healthz", 10);
  const auto took = std::chrono::steady_clock::now() - asked;
  CHECK(hung.status == 503);
  CHECK_THAT(hung.body, Catch::Contains("timed out"));
  CHECK(took < 4s);
  ::kill(std::stoi(*qemu_pid), SIGCONT);
  std::this_thread::sleep_for(500ms);
  CHECK(berth.health("/healthz").status == 200);

  // Power down from the control API: the guest powers off and berth exits 0.
  CHECK(berth.control("/api/v1/powerdown", "POST").status == 200);
  CHECK(berth.process.wait_exit(30s) == 0);
}

namespace {

// The RFB security types QEMU offers at `ip`:5900, seen from network namespace `netns`.
std::vector<std::uint8_t> vnc_security_types(const std::string& netns, const std::string& ip) {
  RfbClient client(netns, ip, 5900);
  std::string version;
  auto types = client.connected() ? client.security_types(&version) : std::vector<std::uint8_t>{};
  if (!types.empty())
    CHECK(version == "RFB 003.008\n");
  return types;
}

// VNC authentication with `password` from the node: 0 accepted, 1 refused.
std::optional<std::uint32_t> vnc_login(const GuestBerth& berth, const std::string& password) {
  RfbClient client(berth.net.node(), PodNet::kPodIp, 5900);
  if (!client.connected() || client.security_types().empty())
    return std::nullopt;
  return client.vnc_auth(password);
}

// User-data for the guest: can it open VNC through its gateway (br0) or the pod IP?
constexpr const char* kGuestProbesVnc = R"(#!/bin/sh
for target in 192.168.254.1 10.77.0.5; do
  if echo | nc -w 3 $target 5900 | head -c 3 | grep -q RFB; then
    echo "vnc-from-guest $target: open"
  else
    echo "vnc-from-guest $target: closed"
  fi
done
)";

}  // namespace

TEST_CASE(
    "vnc: only VNC authentication is offered (never None) on the pod IP and loopback, the password "
    "file's password is accepted, a wrong one refused, and the guest cannot reach it",
    "[vm][vnc]") {
  TempDir userdata;
  std::ofstream(userdata.path / "user.sh") << kGuestProbesVnc;
  GuestBerth berth({"NO_VNC=0", "BERTH_USERDATA=" + (userdata.path / "user.sh").string()});
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_log("VNC: password set over QMP"));

  // From the node (the cluster) and from inside the pod (kubectl port-forward): type 2 only.
  const std::vector<std::uint8_t> vnc_auth_only = {RfbClient::kVncAuth};
  CHECK(vnc_security_types(berth.net.node(), PodNet::kPodIp) == vnc_auth_only);
  CHECK(vnc_security_types(berth.net.pod(), "127.0.0.1") == vnc_auth_only);
  CHECK(vnc_login(berth, GuestBerth::kVncPassword) == 0u);
  CHECK(vnc_login(berth, "wrong-pw") == 1u);
  // Honest about DES: only the first 8 characters count, and berth says so.
  CHECK(vnc_login(berth, std::string(GuestBerth::kVncPassword).substr(0, 8)) == 0u);
  CHECK(
      berth.process.wait_log("VNC: the password in .* has 18 characters; VNC authentication "
                             "uses only the first 8",
                             0ms));

  // QEMU listens on the pod IP and loopback, not on every address (so not on br0's VM_GW).
  const std::string listening = capture("ip netns exec " + berth.net.pod()
                                        + " ss -Hltn 'sport = :5900' | awk '{print $4}' | sort");
  CHECK(listening == "10.77.0.5:5900\n127.0.0.1:5900\n");
  // The password is on no command line and in no log line.
  const auto qemu_pid = berth.process.wait_log("QEMU running as pid (\\d+)", 0ms);
  REQUIRE(qemu_pid);
  CHECK_THAT(slurp("/proc/" + *qemu_pid + "/cmdline"), !Catch::Contains("vnc-secret"));
  CHECK_THAT(berth.process.log_text(), !Catch::Contains("vnc-secret"));

  // From the guest: its gateway has no VNC, and the pod IP's 5900 is refused by the input chain.
  REQUIRE(berth.process.wait_console("vnc-from-guest 10\\.77\\.0\\.5: \\w+"));
  CHECK(berth.process.wait_console("vnc-from-guest 192\\.168\\.254\\.1: closed", 0ms));
  CHECK(berth.process.wait_console("vnc-from-guest 10\\.77\\.0\\.5: closed", 0ms));
  berth.process.signal(SIGTERM);
  CHECK(berth.process.wait_exit(30s) == 0);
}

TEST_CASE("vnc: BERTH_VNC_INSECURE_NO_AUTH offers no authentication and warns at start",
          "[vm][vnc]") {
  GuestBerth berth({"NO_VNC=0", "BERTH_VNC_PASSWORD_FILE=", "BERTH_VNC_INSECURE_NO_AUTH=1"});
  INFO(berth.process.log_text());
  REQUIRE(berth.process.wait_log("QMP connected"));
  CHECK(berth.process.wait_log("VNC: NO AUTHENTICATION \\(BERTH_VNC_INSECURE_NO_AUTH\\)", 0ms));
  CHECK(vnc_security_types(berth.net.node(), PodNet::kPodIp)
        == std::vector<std::uint8_t>{RfbClient::kNone});
}

TEST_CASE("vnc: an unreadable or empty password file stops berth before QEMU with exit 3",
          "[vm][vnc]") {
  GuestBerth missing({"NO_VNC=0", "BERTH_VNC_PASSWORD_FILE=/nonexistent/vnc-password"});
  REQUIRE(missing.process.wait_exit(20s) == 3);
  INFO(missing.process.log_text());
  CHECK(missing.process.wait_log("BERTH_VNC_PASSWORD_FILE /nonexistent/vnc-password: cannot read",
                                 0ms));
  CHECK_FALSE(missing.process.wait_log("starting QEMU", 0ms));

  TempDir dir;
  std::ofstream(dir.path / "empty") << "\n";
  GuestBerth empty({"NO_VNC=0", "BERTH_VNC_PASSWORD_FILE=" + (dir.path / "empty").string()});
  REQUIRE(empty.process.wait_exit(20s) == 3);
  CHECK(empty.process.wait_log("BERTH_VNC_PASSWORD_FILE .*: the file is empty", 0ms));
}
