// The hot swap end to end against a real QEMU (paused, no guest): the watcher sees a kubelet-style
// ConfigMap update, rebuilds the drive and swaps it with QMP blockdev-change-medium on the device
// id the QEMU command line gives the config drive, the way the supervisor wires it. Tier `root`
// (real QEMU under TCG).

#include <fcntl.h>

#include <boost/json.hpp>

#include "drive/configdrive/config_watch.hpp"
#include "qemu/command_line.hpp"
#include "qemu/qmp/qmp_client.hpp"
#include "supervisor/children.hpp"
#include "test/drive/support.hpp"

namespace berth::drive::test {
namespace {

namespace json = boost::json;

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

// The config drive's virtual size as QEMU sees it now.
std::int64_t medium_size(const json::value& blocks) {
  for (const auto& block : blocks.as_array()) {
    const auto& b = block.as_object();
    if (b.contains("qdev") && b.at("qdev").as_string() == qemu::kConfigDriveDevice
        && b.contains("inserted"))
      return b.at("inserted").at("image").at("virtual-size").to_number<std::int64_t>();
  }
  return -1;
}

TEST_CASE("drive watch: a ConfigMap update reaches a running QEMU by media change", "[qemu-swap]") {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;
  ChildReaper reaper(io);

  ConfigDriveParams params{DriveLayout::kConfigDrive, dir / "userdata", dir / "metadata",
                           dir / "networkdata",       "vm-0",           dir / "config-drive.iso"};
  write_configmap(params.userdata, "..1", "#cloud-config\nversion: 1\n");
  auto first = build_config_drive(params, *log.logger);
  REQUIRE(first);
  REQUIRE(
      run_command({"qemu-img", "create", "-q", "-f", "qcow2", (dir / "disk.qcow2").string(), "16M"})
      == 0);

  qemu::MachineSpec spec;
  spec.accel = qemu::Accelerator::kTcg;
  spec.memory_mib = 64;
  spec.disk = dir / "disk.qcow2";
  spec.config_drive = params.iso;
  spec.vnc = qemu::Vnc::kOff;
  spec.qmp_socket = dir / "qmp.sock";
  spec.extra_args = {"-S"};                             // paused: the devices exist, no guest runs
  auto listener = qmp::listen_socket(spec.qmp_socket);  // QEMU inherits it, as under berth
  REQUIRE(listener);
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  const int err_fd = ::open((dir / "qemu.err").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  std::optional<ExitStatus> exited;
  boost::system::error_code spawn_error;
  reaper.spawn(
      {.argv = qemu::build_command_line(spec, {.qmp = *listener}),
       .stdout_fd = null_fd,
       .stderr_fd = err_fd,
       .inherit_fds = {*listener}},
      [&](ExitStatus status) { exited = status; }, spawn_error);
  ::close(null_fd);
  ::close(err_fd);
  ::close(*listener);
  REQUIRE_FALSE(spawn_error);

  auto qmp = qmp::Client::create(io.get_executor(), log.logger);
  auto connected = run_sync(io, qmp->connect(spec.qmp_socket, std::chrono::seconds(20)));
  INFO(slurp(dir / "qemu.err"));
  REQUIRE_FALSE(connected);

  // The supervisor's SwapMedium, in essence.
  SwapMedium swap = [qmp](fs::path iso) -> boost::asio::awaitable<berth::Result<void>> {
    json::object arguments;  // built outside the co_await: GCC 12 miscompiles literals there
    arguments["id"] = qemu::kConfigDriveDevice;
    arguments["filename"] = iso.string();
    arguments["format"] = "raw";
    auto result = co_await qmp->execute("blockdev-change-medium", std::move(arguments));
    if (!result.ok())
      co_return berth::Error{berth::ErrorKind::kSystem, result.describe()};
    co_return berth::Result<void>{};
  };
  auto before = run_sync(io, qmp->execute("query-block"));
  REQUIRE(before.ok());
  CHECK(medium_size(before.value) == static_cast<std::int64_t>(first->size));

  auto watcher = ConfigDriveWatcher::create(io.get_executor(), params, swap, log.logger, 100ms);
  REQUIRE(watcher->start());
  // A much larger user-data (still under the 64 KiB input limit) makes a larger ISO, so QEMU's
  // view shows which file it has open.
  const std::string big = "#cloud-config\nwrite_files:\n  - path: /big\n    content: \""
                          + std::string(60000, 'x') + "\"\n";
  write_configmap(params.userdata, "..2", big);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (watcher->stats().swaps + watcher->stats().swap_failures == 0
         && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(50ms);
  }
  INFO(log.text());
  REQUIRE(watcher->stats().swaps == 1);
  auto after = run_sync(io, qmp->execute("query-block"));
  REQUIRE(after.ok());
  CHECK(medium_size(after.value) == static_cast<std::int64_t>(fs::file_size(params.iso)));
  CHECK(medium_size(after.value) > medium_size(before.value));

  watcher->stop();
  run_sync(io, qmp->execute("quit"));
  const auto quit_deadline = std::chrono::steady_clock::now() + 10s;
  while (!exited && std::chrono::steady_clock::now() < quit_deadline) {
    io.restart();
    io.run_for(50ms);
  }
  CHECK(exited.has_value());
}

}  // namespace
}  // namespace berth::drive::test
