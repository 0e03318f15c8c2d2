// The ConfigMap watch: a kubelet-style `..data` swap, bursts debounced into one swap, invalid
// content rejected with the old drive kept, plain files edited in place or replaced.

#include <atomic>

#include "drive/configdrive/config_watch.hpp"
#include "test/drive/support.hpp"

namespace berth::drive {
namespace {

using namespace test;

// Updates a ConfigMap volume the way the kubelet's atomic writer does: a new timestamped
// directory, a `..data_tmp` symlink to it renamed over `..data`, key symlinks created once, the
// old directory removed.
void kubelet_update(const fs::path& dir, const std::map<std::string, std::string>& data) {
  static int generation = 0;
  const std::string stamp = fmt::format("..2024_01_01_00_00_00.{:09}", ++generation);
  fs::create_directories(dir / stamp);
  for (const auto& [key, value] : data)
    spit(dir / stamp / key, value);
  std::error_code ec;
  const fs::path old = fs::read_symlink(dir / "..data", ec);
  fs::create_directory_symlink(stamp, dir / "..data_tmp");
  fs::rename(dir / "..data_tmp", dir / "..data");
  for (const auto& [key, value] : data)
    if (!fs::is_symlink(dir / key))
      fs::create_symlink("..data/" + key, dir / key);
  if (!old.empty())
    fs::remove_all(dir / old);
}

struct WatchFixture {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;
  ConfigDriveParams params;
  std::vector<std::string> swapped;  // the user-data in the ISO at each swap
  std::optional<std::string> swap_failure;
  std::shared_ptr<ConfigDriveWatcher> watcher;

  WatchFixture() {
    params = {DriveLayout::kNoCloud, dir / "userdata", dir / "metadata",
              dir / "networkdata",   "vm-0",           dir / "run" / "drive.iso"};
    kubelet_update(params.userdata, {{"userdata", "#cloud-config\nversion: 1\n"}});
    spit(params.metadata, "instance-id: i-1\n");
    REQUIRE(build_config_drive(params, *log.logger));
    SwapMedium swap = [this](fs::path iso) -> boost::asio::awaitable<berth::Result<void>> {
      const std::string bytes = slurp(iso);
      const auto at = bytes.find("version: ");
      swapped.push_back(at == std::string::npos ? "" : bytes.substr(at, 10));
      if (swap_failure)
        co_return berth::Error{berth::ErrorKind::kSystem, *swap_failure};
      co_return berth::Result<void>{};
    };
    watcher = ConfigDriveWatcher::create(io.get_executor(), params, swap, log.logger, 250ms);
    REQUIRE(watcher->start());
    settle();
  }
  ~WatchFixture() {
    watcher->stop();
    io.restart();
    io.run_for(50ms);
  }
  void settle(std::chrono::milliseconds time = 700ms) {
    io.restart();
    io.run_for(time);
  }
};

TEST_CASE_METHOD(WatchFixture, "drive watch: a kubelet ..data swap reaches the VM", "[drive]") {
  CHECK(watcher->stats().unchanged == 1);  // the look at start found nothing new
  CHECK(swapped.empty());

  kubelet_update(params.userdata, {{"userdata", "#cloud-config\nversion: 2\n"}});
  settle();
  INFO(log.text());
  REQUIRE(swapped.size() == 1);
  CHECK(swapped[0] == "version: 2");
  CHECK(slurp(params.iso).find("version: 2") != std::string::npos);

  SECTION("a burst of updates is one swap, of the last content") {
    for (int i = 3; i <= 7; ++i) {
      kubelet_update(params.userdata,
                     {{"userdata", fmt::format("#cloud-config\nversion: {}\n", i)}});
      settle(20ms);
    }
    settle();
    REQUIRE(swapped.size() == 2);
    CHECK(swapped[1] == "version: 7");
  }
  SECTION("invalid content keeps the old drive") {
    const std::string before = slurp(params.iso);
    kubelet_update(params.userdata, {{"userdata", "#cloud-config\nversion: [3\n"}});
    settle();
    CHECK(swapped.size() == 1);
    CHECK(watcher->stats().rejected == 1);
    CHECK((slurp(params.iso) == before));
    CHECK_THAT(log.text(), Catch::Contains("keeps its current drive")
                               && Catch::Contains("is not valid YAML: line 3"));
    // ... until it is fixed.
    kubelet_update(params.userdata, {{"userdata", "#cloud-config\nversion: 4\n"}});
    settle();
    REQUIRE(swapped.size() == 2);
    CHECK(swapped[1] == "version: 4");
  }
  SECTION("oversize user-data keeps the old drive") {
    const std::string before = slurp(params.iso);
    kubelet_update(params.userdata,
                   {{"userdata", "#!/bin/sh\n" + std::string(64 * 1024 - 9, '#')}});
    settle();
    CHECK(swapped.size() == 1);
    CHECK(watcher->stats().rejected == 1);
    CHECK((slurp(params.iso) == before));
    CHECK_THAT(log.text(), Catch::Contains("keeps its current drive")
                               && Catch::Contains("is 65537 bytes; the limit is 65536 bytes"));
  }
  SECTION("touching without changing is not a swap") {
    kubelet_update(params.userdata, {{"userdata", "#cloud-config\nversion: 2\n"}});
    settle();
    CHECK(swapped.size() == 1);
    CHECK(watcher->stats().unchanged == 2);
  }
  SECTION("a swap the VM refuses is counted and logged") {
    swap_failure = "Device 'configdrive' is locked";
    kubelet_update(params.userdata, {{"userdata", "#cloud-config\nversion: 5\n"}});
    settle();
    CHECK(watcher->stats().swap_failures == 1);
    CHECK_THAT(log.text(), Catch::Contains("is locked"));
  }
}

TEST_CASE_METHOD(WatchFixture, "drive watch: plain files edited in place or replaced", "[drive]") {
  spit(params.metadata, "instance-id: i-2\n");  // in place
  settle();
  INFO(log.text());
  CHECK(swapped.size() == 1);
  CHECK(slurp(params.iso).find("i-2") != std::string::npos);

  spit(dir / "metadata.new", "instance-id: i-3\n");  // an editor's atomic save
  fs::rename(dir / "metadata.new", params.metadata);
  settle();
  CHECK(swapped.size() == 2);
  CHECK(slurp(params.iso).find("i-3") != std::string::npos);

  spit(params.metadata, "instance-id: i-4\n");  // the new file is watched too
  settle();
  CHECK(swapped.size() == 3);

  spit(params.networkdata, "version: 2\n");  // an input that did not exist appears
  settle();
  CHECK(swapped.size() == 4);
  CHECK(watcher->stats().swaps == 4);
}

}  // namespace
}  // namespace berth::drive
