// The serial console through berth's own stdin and stdout, with the real berth binary, real QEMU
// (TCG) and the built-in guest in a pod-like network namespace: a terminal (a pty, as `kubectl
// attach -it` gives the container) logs in on ttyS0 and runs commands, Ctrl-C reaches the guest,
// and berth leaves the terminal as it found it; with BERTH_LOG_FORMAT=json and stdout a file
// (`kubectl logs`), every console line is a JSON record.

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/support/berth_process.hpp"
#include "test/support/pty_berth.hpp"

namespace berth::test {
namespace {

using Clock = std::chrono::steady_clock;

// The built-in guest has no getty: this user-data starts one on ttyS0 (respawned) and lets root
// in without a password, as a cloud image's serial-getty would with a user set up.
constexpr const char* kGettyUserdata =
    "#!/bin/sh\n"
    "sed -i 's/^root:x:/root::/' /etc/passwd\n"
    "(while :; do setsid getty -L 115200 ttyS0 vt100; sleep 1; done) </dev/null >/dev/null 2>&1 &\n"
    "printf 'json-\\033[1mbold\\033[0m \\377 caf\\303\\251\\n' > /dev/console\n";

std::vector<std::string> guest_env(const fs::path& dir) {
  std::ofstream(dir / "user-data") << kGettyUserdata;
  return {"IMG_SOURCE=" + test_guest(),
          "BERTH_DISK_DIR=" + (dir / "disks").string(),
          "BERTH_RUNTIME_DIR=" + (dir / "run").string(),
          "BERTH_IMAGE_DIR=" + (dir / "images").string(),
          "BERTH_USERDATA=" + (dir / "user-data").string(),
          "BERTH_METADATA=" + (dir / "none").string(),
          "BERTH_NETWORKDATA=" + (dir / "none").string(),
          "VM_ACCEL=tcg",
          "VM_MEMORY=256M",
          "NO_VNC=1",
          "BERTH_VIEWER=no"};
}

}  // namespace

TEST_CASE("serial console on a pty: log in and run a command", "[serial]") {
  TempDir dir;
  PodNet net;
  auto prefix = net.in_pod();
  PtyBerth berth(prefix, guest_env(dir.path), dir.path / "berth.log");
  auto at = berth.wait_for("login: ", 0, 180s);
  REQUIRE(at);
  // Raw mode while berth runs: no signals, no echo, no line editing on berth's side.
  termios during{};
  REQUIRE(::tcgetattr(berth.slave, &during) == 0);
  CHECK((during.c_lflag & (ISIG | ICANON | ECHO)) == 0);

  berth.type("root\r");
  at = berth.wait_for("# ", *at, 30s);
  REQUIRE(at);
  const auto typed = Clock::now();
  berth.type("echo serial-$((6*7))\r");
  at = berth.wait_for("serial-42", *at + 20, 30s);  // past the echoed command line
  REQUIRE(at);
  std::printf("serial console round trip (command to its output): %.0f ms\n",
              std::chrono::duration<double, std::milli>(Clock::now() - typed).count());

  // Ctrl-C is the guest's: it ends the guest's sleep, and berth keeps running.
  berth.type("sleep 120; echo late-$((5*5))\r");
  std::this_thread::sleep_for(2s);
  berth.type("\x03");
  berth.type("echo after-$((1+2))\r");
  at = berth.wait_for("after-3", *at, 20s);
  REQUIRE(at);
  CHECK(berth.seen.find("late-25") == std::string::npos);  // the echo shows only $((5*5))
  CHECK(slurp(berth.log).find("SIGINT") == std::string::npos);

  // A stop through the guest, as a user would: berth exits 0 and the terminal is as it was.
  berth.type("poweroff\r");
  const auto code = berth.wait_exit(120s);
  REQUIRE(code);
  CHECK(*code == 0);
  termios after{};
  REQUIRE(::tcgetattr(berth.slave, &after) == 0);
  CHECK(after.c_lflag == berth.before.c_lflag);
  CHECK(after.c_iflag == berth.before.c_iflag);
  CHECK(after.c_oflag == berth.before.c_oflag);
}

TEST_CASE("serial console with JSON logs: console lines are records", "[serial]") {
  TempDir dir;
  PodNet net;
  auto env = guest_env(dir.path);
  env.push_back("BERTH_LOG_FORMAT=json");
  BerthProcess berth(dir.path, env, net.in_pod());
  REQUIRE(berth.wait_console("berth-guest: ready"));
  REQUIRE(berth.wait_console("json-"));
  berth.signal(SIGTERM);
  REQUIRE(berth.wait_exit(120s));
  std::istringstream lines(slurp(berth.console));
  std::size_t records = 0;
  bool found = false;
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    const auto value = boost::json::parse(line);  // every stdout line is one JSON object
    const auto& record = value.as_object();
    CHECK(record.at("logger").as_string() == "console");
    CHECK(record.contains("time"));
    CHECK(record.at("level").as_string() == "info");
    const std::string msg(record.at("msg").as_string());
    if (msg.find("json-") != std::string::npos) {
      found = true;
      CHECK(msg == "json-\x1b[1mbold\x1b[0m \xEF\xBF\xBD caf\xC3\xA9");
    }
    ++records;
  }
  CHECK(records > 10);
  CHECK(found);
  // And berth's own log on stderr is JSON too, so one pipeline reads both.
  std::istringstream log(berth.log_text());
  for (std::string line; std::getline(log, line);) {
    INFO(line);
    CHECK(boost::json::parse(line).as_object().contains("logger"));
  }
}

}  // namespace berth::test
