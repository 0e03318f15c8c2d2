#pragma once
// Live config drive: watches the user-data/metadata/network-data inputs with inotify (ConfigMap
// directories, where the kubelet swaps the `..data` symlink by rename, and plain files edited in
// place or replaced), debounces bursts, rebuilds the drive, and when its bytes changed writes it
// atomically and hands it to the VM through a callback (QMP blockdev-change-medium). Invalid new
// content keeps the current drive and logs why.

#include <spdlog/logger.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/error.hpp"
#include "common/metrics.hpp"
#include "drive/configdrive/config_drive.hpp"

namespace berth::drive {

// Puts the drive at `iso` into the running VM (the supervisor: QMP blockdev-change-medium on the
// device "configdrive"). Fails with why the VM did not take it.
using SwapMedium = std::function<boost::asio::awaitable<Result<void>>(std::filesystem::path iso)>;

class ConfigDriveWatcher : public std::enable_shared_from_this<ConfigDriveWatcher> {
 public:
  struct Stats {
    std::uint64_t rebuilds = 0;       // debounced bursts of changes handled
    std::uint64_t swaps = 0;          // new drives handed to the VM successfully
    std::uint64_t unchanged = 0;      // rebuilds that gave the same bytes (nothing to do)
    std::uint64_t rejected = 0;       // rebuilds refused for invalid content
    std::uint64_t swap_failures = 0;  // new drives written but not taken by the VM
  };

  // `params` as for build_config_drive; the drive at params.iso is the one the VM has.
  static std::shared_ptr<ConfigDriveWatcher> create(
      boost::asio::any_io_executor executor, ConfigDriveParams params, SwapMedium swap,
      std::shared_ptr<spdlog::logger> log,
      std::chrono::milliseconds debounce = std::chrono::milliseconds(500));
  ~ConfigDriveWatcher();

  // Starts watching (start it once the VM runs). Changes made since the drive was built are
  // picked up at once. Errors: inotify could not be set up (kSystem).
  Result<void> start();
  // Stops watching; a swap in progress completes.
  void stop();
  const Stats& stats() const { return stats_; }

  // Registers every Stats field as a berth_config_drive_*_total counter read from this watcher;
  // the registry must not be rendered after the watcher is destroyed.
  void register_metrics(MetricsRegistry& registry) const;

 private:
  struct Interest {
    std::set<std::string> names;  // entries of a watched directory that matter
    bool any = false;             // every event on this watch matters (a watched file)
  };

  ConfigDriveWatcher(boost::asio::any_io_executor executor, ConfigDriveParams params,
                     SwapMedium swap, std::shared_ptr<spdlog::logger> log,
                     std::chrono::milliseconds debounce);
  void arm();
  void add_watch(const std::filesystem::path& path, std::uint32_t mask, const std::string& name,
                 std::map<int, Interest>& into);
  bool relevant(const char* buffer, std::size_t size);
  boost::asio::awaitable<void> loop();
  boost::asio::awaitable<void> rebuild();

  boost::asio::any_io_executor executor_;
  ConfigDriveParams params_;
  SwapMedium swap_;
  std::shared_ptr<spdlog::logger> log_;
  std::chrono::milliseconds debounce_;
  int inotify_fd_ = -1;
  std::optional<boost::asio::posix::stream_descriptor> descriptor_;
  std::map<int, Interest> watches_;
  Stats stats_;
  bool stopped_ = false;
};

}  // namespace berth::drive
