// The hot swap end to end against a real QEMU: the watcher sees a kubelet-style ConfigMap update,
// rebuilds the drive and swaps it with the supervisor's own media change
// (qemu::change_config_drive_medium) on the device id the QEMU command line gives the config
// drive. First a paused QEMU (no guest); then the test guest booted from its disk, holding the CD
// tray locked as a stock Linux distribution does, which must see each new drive. Tier `root`
// (real QEMU under TCG).

#include <fcntl.h>
#include <signal.h>

#include <boost/json.hpp>
#include <functional>

#include "drive/configdrive/config_watch.hpp"
#include "qemu/command_line.hpp"
#include "qemu/config_drive_medium.hpp"
#include "qemu/qmp/qmp_client.hpp"
#include "supervisor/children.hpp"
#include "test/drive/support.hpp"
#include "test/support/locked_tray.hpp"

#ifndef BERTH_TEST_GUEST_PATH
#define BERTH_TEST_GUEST_PATH ""
#endif

namespace berth::drive::test {
namespace {

namespace json = boost::json;
using berth::test::tray_holding_userdata;
using berth::test::TrayHolder;

void write_configmap(const fs::path& dir, const std::string& generation, const std::string& data) {
  fs::create_directories(dir / generation);
  spit(dir / generation / "userdata", data);
  std::error_code ec;
  const auto old = fs::read_symlink(dir / "..data", ec);
  fs::create_directory_symlink(generation, dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");
  if (!fs::is_symlink(dir / "userdata"))
    fs::create_symlink("..data/userdata", dir / "userdata");
  if (!old.empty())
    fs::remove_all(dir / old);
}

// The config drive's entry in query-block's answer (null when absent).
const json::object* config_drive_block(const json::value& blocks) {
  for (const auto& block : blocks.as_array()) {
    const auto& b = block.as_object();
    if (b.contains("qdev") && b.at("qdev").as_string() == qemu::kConfigDriveDevice)
      return &b;
  }
  return nullptr;
}

// The config drive's virtual size as QEMU sees it now.
std::int64_t medium_size(const json::value& blocks) {
  const auto* b = config_drive_block(blocks);
  if (!b || !b->contains("inserted"))
    return -1;
  return b->at("inserted").at("image").at("virtual-size").to_number<std::int64_t>();
}

// Whether the guest holds the config drive's tray locked now.
bool tray_locked(const json::value& blocks) {
  const auto* b = config_drive_block(blocks);
  return b && b->contains("locked") && b->at("locked").as_bool();
}

// One QEMU started from `spec` as the supervisor starts it (build_command_line): its serial
// console in DIR/console.log, its stderr in DIR/qemu.err, connected over QMP. Killed at the end
// if it has not quit.
struct Qemu {
  boost::asio::io_context& io;
  fs::path dir;
  ChildReaper reaper;
  pid_t pid = -1;
  std::optional<ExitStatus> exited;
  std::shared_ptr<qmp::Client> qmp;

  Qemu(boost::asio::io_context& context, const fs::path& folder, const qemu::MachineSpec& spec,
       std::shared_ptr<spdlog::logger> log)
      : io(context), dir(folder), reaper(context) {
    const int out_fd =
        ::open((dir / "console.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err_fd =
        ::open((dir / "qemu.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    auto listener = qmp::listen_socket(spec.qmp_socket);  // QEMU inherits it, as under berth
    REQUIRE(listener);
    boost::system::error_code spawn_error;
    pid = reaper.spawn(
        {.argv = qemu::build_command_line(spec, {.qmp = *listener}),
         .stdout_fd = out_fd,
         .stderr_fd = err_fd,
         .inherit_fds = {*listener}},
        [this](ExitStatus status) { exited = status; }, spawn_error);
    ::close(out_fd);
    ::close(err_fd);
    ::close(*listener);
    REQUIRE_FALSE(spawn_error);
    qmp = qmp::Client::create(io.get_executor(), std::move(log));
    auto connected = run_sync(io, qmp->connect(spec.qmp_socket, std::chrono::seconds(20)));
    INFO(slurp(dir / "qemu.err"));
    REQUIRE_FALSE(connected);
  }
  Qemu(const Qemu&) = delete;
  ~Qemu() {
    if (!exited && pid > 0)
      ::kill(pid, SIGKILL);
    run_until([this] { return exited.has_value(); }, 10s);
  }

  qmp::CommandResult execute(std::string command, json::object arguments = {}) {
    return run_sync(io, qmp->execute(std::move(command), std::move(arguments)));
  }
  json::value query_block() {
    auto blocks = execute("query-block");
    REQUIRE(blocks.ok());
    return blocks.value;
  }
  std::size_t block_nodes() {
    auto nodes = execute("query-named-block-nodes");
    REQUIRE(nodes.ok());
    return nodes.value.as_array().size();
  }
  std::string console() const { return slurp(dir / "console.log"); }
  // Runs the loop until `done` holds or `limit` passes; whether it holds.
  bool run_until(const std::function<bool()>& done, std::chrono::steady_clock::duration limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(50ms);
    }
    return done();
  }
  bool quit() {
    execute("quit");
    return run_until([this] { return exited.has_value(); }, 10s);
  }
};

// The supervisor's SwapMedium (Supervisor::start_drive_watch), on `qmp`.
SwapMedium swap_into(std::shared_ptr<qmp::Client> qmp) {
  return [qmp](fs::path iso) { return qemu::change_config_drive_medium(qmp, std::move(iso)); };
}

qemu::MachineSpec machine(const fs::path& dir, const fs::path& disk, const fs::path& iso) {
  qemu::MachineSpec spec;
  spec.accel = qemu::Accelerator::kTcg;
  spec.disk = disk;
  spec.config_drive = iso;
  spec.vnc = qemu::Vnc::kOff;
  spec.qmp_socket = dir / "qmp.sock";
  return spec;
}

TEST_CASE("drive watch: a ConfigMap update reaches a running QEMU by media change", "[qemu-swap]") {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;

  ConfigDriveParams params{DriveLayout::kConfigDrive, dir / "userdata", dir / "metadata",
                           dir / "networkdata",       "vm-0",           dir / "config-drive.iso"};
  write_configmap(params.userdata, "..1", "#cloud-config\nversion: 1\n");
  auto first = build_config_drive(params, *log.logger);
  REQUIRE(first);
  REQUIRE(
      run_command({"qemu-img", "create", "-q", "-f", "qcow2", (dir / "disk.qcow2").string(), "16M"})
      == 0);
  auto spec = machine(dir.path, dir / "disk.qcow2", params.iso);
  spec.memory_mib = 64;
  spec.extra_args = {"-S"};  // paused: the devices exist, no guest runs
  Qemu vm(io, dir.path, spec, log.logger);

  CHECK(medium_size(vm.query_block()) == static_cast<std::int64_t>(first->size));
  auto watcher =
      ConfigDriveWatcher::create(io.get_executor(), params, swap_into(vm.qmp), log.logger, 100ms);
  REQUIRE(watcher->start());
  // A much larger user-data (still under the 64 KiB input limit) makes a larger ISO, so QEMU's
  // view shows which file it has open.
  const std::string big = "#cloud-config\nwrite_files:\n  - path: /big\n    content: \""
                          + std::string(60000, 'x') + "\"\n";
  write_configmap(params.userdata, "..2", big);
  vm.run_until([&] { return watcher->stats().swaps + watcher->stats().swap_failures > 0; }, 10s);
  INFO(log.text());
  REQUIRE(watcher->stats().swaps == 1);
  const auto after = vm.query_block();
  CHECK(medium_size(after) == static_cast<std::int64_t>(fs::file_size(params.iso)));
  CHECK(medium_size(after) > static_cast<std::int64_t>(first->size));

  watcher->stop();
  CHECK(vm.quit());
}

TEST_CASE("drive watch: a ConfigMap edit reaches a guest that holds its CD tray locked",
          "[qemu-swap-locked]") {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;

  // The guest holds the tray with a mount of /dev/sr0 (the e2e test holds it with an open file).
  ConfigDriveParams params{DriveLayout::kNoCloud, dir / "userdata", dir / "metadata",
                           dir / "networkdata",   "vm-0",           dir / "config-drive.iso"};
  write_configmap(params.userdata, "..1", tray_holding_userdata("one", 0, TrayHolder::kMount));
  REQUIRE(build_config_drive(params, *log.logger));
  const std::string guest =
      std::getenv("BERTH_TEST_GUEST") ? std::getenv("BERTH_TEST_GUEST") : BERTH_TEST_GUEST_PATH;
  REQUIRE(run_command({"qemu-img", "create", "-q", "-f", "qcow2", "-b", guest, "-F", "qcow2",
                       (dir / "disk.qcow2").string()})
          == 0);
  auto spec = machine(dir.path, dir / "disk.qcow2", params.iso);
  spec.memory_mib = 256;
  Qemu vm(io, dir.path, spec, log.logger);
  const bool ready = vm.run_until(
      [&] { return vm.console().find("berth-guest: ready") != std::string::npos; }, 180s);
  INFO(vm.console());
  REQUIRE(ready);
  REQUIRE(vm.console().find("tray-test content: one") != std::string::npos);

  // The lock is real: QEMU reports it, and a media change without force is refused, as on a
  // Debian cloud image.
  REQUIRE(tray_locked(vm.query_block()));
  json::object plain = qemu::config_drive_media_change(params.iso).arguments;
  plain.erase("force");
  const auto refused = vm.execute("blockdev-change-medium", plain);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.describe(), Catch::Contains("is locked"));

  const std::size_t nodes = vm.block_nodes();
  auto watcher =
      ConfigDriveWatcher::create(io.get_executor(), params, swap_into(vm.qmp), log.logger, 100ms);
  REQUIRE(watcher->start());
  // Each edit is swapped in while the guest holds the tray locked, and the guest, reading the
  // drive again, runs the new user-data. The second edit makes a larger ISO: the guest sees the
  // new size too.
  const std::vector<std::pair<std::string, std::size_t>> edits = {
      {"two", 0}, {"three", 60000}, {"four", 0}};
  for (std::size_t i = 0; i < edits.size(); ++i) {
    INFO("edit " << edits[i].first);
    REQUIRE(vm.run_until([&] { return tray_locked(vm.query_block()); }, 30s));
    write_configmap(params.userdata, "..edit" + std::to_string(i),
                    tray_holding_userdata(edits[i].first, edits[i].second, TrayHolder::kMount));
    const std::string marker = "tray-test content: " + edits[i].first;
    const bool seen =
        vm.run_until([&] { return vm.console().find(marker) != std::string::npos; }, 60s);
    INFO(log.text());
    CHECK(watcher->stats().swap_failures == 0);
    REQUIRE(watcher->stats().swaps == i + 1);
    REQUIRE(seen);
  }
  CHECK_THAT(log.text(), Catch::Contains("the VM has the new config drive"));
  // The old media went with each swap: as many block nodes as before the first.
  CHECK(vm.block_nodes() == nodes);

  watcher->stop();
  CHECK(vm.quit());
}

}  // namespace
}  // namespace berth::drive::test
