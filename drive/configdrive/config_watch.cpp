#include "drive/configdrive/config_watch.hpp"

#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

#include "common/async.hpp"
#include "drive/files.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kDirMask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE
                                   | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF
                                   | IN_MOVE_SELF | IN_ONLYDIR;
constexpr std::uint32_t kFileMask =
    IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

std::shared_ptr<ConfigDriveWatcher> ConfigDriveWatcher::create(asio::any_io_executor executor,
                                                               ConfigDriveParams params,
                                                               SwapMedium swap,
                                                               std::shared_ptr<spdlog::logger> log,
                                                               std::chrono::milliseconds debounce) {
  return std::shared_ptr<ConfigDriveWatcher>(new ConfigDriveWatcher(
      std::move(executor), std::move(params), std::move(swap), std::move(log), debounce));
}

ConfigDriveWatcher::ConfigDriveWatcher(asio::any_io_executor executor, ConfigDriveParams params,
                                       SwapMedium swap, std::shared_ptr<spdlog::logger> log,
                                       std::chrono::milliseconds debounce)
    : executor_(std::move(executor)),
      params_(std::move(params)),
      swap_(std::move(swap)),
      log_(std::move(log)),
      debounce_(debounce) {}

ConfigDriveWatcher::~ConfigDriveWatcher() {
  if (!descriptor_ && inotify_fd_ >= 0)
    ::close(inotify_fd_);
}

Result<void> ConfigDriveWatcher::start() {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0)
    return system_error("inotify_init1", errno);
  descriptor_.emplace(executor_, inotify_fd_);
  arm();
  // loop() holds a reference to this watcher until it returns.
  asio::co_spawn(executor_, loop(), log_exceptions(log_, "the config drive watcher"));
  return {};
}

void ConfigDriveWatcher::stop() {
  stopped_ = true;
  if (descriptor_) {
    boost::system::error_code ec;
    descriptor_->close(ec);
  }
}

void ConfigDriveWatcher::add_watch(const fs::path& path, std::uint32_t mask,
                                   const std::string& name, std::map<int, Interest>& into) {
  const int wd = ::inotify_add_watch(inotify_fd_, path.c_str(), mask);
  if (wd < 0) {
    log_->debug("cannot watch {}: {}", path.string(), std::strerror(errno));
    return;
  }
  auto& interest = into[wd];
  if (name.empty())
    interest.any = true;
  else
    interest.names.insert(name);
}

// (Re)creates the watches for the inputs as they are now: a ConfigMap directory for its key and
// `..data`; a file (or a missing one) through its directory for its name, and the file itself
// (a bind-mounted file changes without its directory seeing it).
void ConfigDriveWatcher::arm() {
  std::map<int, Interest> next;
  const std::pair<const fs::path&, std::string_view> inputs[] = {
      {params_.userdata, kUserdataKey},
      {params_.metadata, kMetadataKey},
      {params_.networkdata, kNetworkdataKey},
  };
  for (const auto& [path, key] : inputs) {
    if (path.empty())
      continue;
    if (is_dir(path)) {
      add_watch(path, kDirMask, std::string(key), next);
      add_watch(path, kDirMask, "..data", next);
    } else {
      const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
      add_watch(parent, kDirMask, path.filename().string(), next);
      if (is_regular(path))
        add_watch(path, kFileMask, "", next);
    }
  }
  for (const auto& [wd, interest] : watches_)
    if (!next.contains(wd))
      ::inotify_rm_watch(inotify_fd_, wd);
  watches_ = std::move(next);
}

bool ConfigDriveWatcher::relevant(const char* buffer, std::size_t size) {
  bool result = false;
  for (std::size_t offset = 0; offset + sizeof(inotify_event) <= size;) {
    inotify_event event;
    std::memcpy(&event, buffer + offset, sizeof event);
    const char* name = buffer + offset + sizeof(inotify_event);
    offset += sizeof(inotify_event) + event.len;
    if (event.mask & IN_Q_OVERFLOW) {
      result = true;
      continue;
    }
    auto it = watches_.find(event.wd);
    if (it == watches_.end())
      continue;
    if (event.mask & IN_IGNORED) {
      result = true;  // the watched file or directory went away: re-arm and look
      continue;
    }
    const std::string entry = event.len > 0 ? std::string(name, ::strnlen(name, event.len)) : "";
    if (it->second.any || (!entry.empty() && it->second.names.contains(entry))) {
      log_->debug("config input event: {} mask {:#x}", entry.empty() ? "(watched file)" : entry,
                  event.mask);
      result = true;
    }
  }
  return result;
}

asio::awaitable<void> ConfigDriveWatcher::loop() {
  auto self = shared_from_this();
  alignas(inotify_event) char buffer[64 * 1024];
  bool pending = true;  // look once at start: the inputs may have changed since the build
  auto deadline = Clock::now();
  while (!stopped_) {
    if (!pending) {
      auto [ec, n] = co_await descriptor_->async_read_some(asio::buffer(buffer),
                                                           asio::as_tuple(asio::use_awaitable));
      if (ec)
        co_return;
      if (relevant(buffer, n)) {
        pending = true;
        deadline = Clock::now() + debounce_;
      }
      continue;
    }
    // Wait for quiet: another event before the deadline pushes it back. stop() closes the
    // descriptor, which ends the read.
    auto read = co_await with_deadline(
        descriptor_->async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable)),
        deadline - Clock::now());
    if (stopped_)
      co_return;
    if (read) {
      auto [ec, n] = *read;
      if (ec)
        co_return;
      if (relevant(buffer, n))
        deadline = Clock::now() + debounce_;  // still changing: wait for quiet
      continue;
    }
    pending = false;
    co_await rebuild();
  }
}

asio::awaitable<void> ConfigDriveWatcher::rebuild() {
  ++stats_.rebuilds;
  arm();  // follow replaced files and directories before reading them
  auto built = make_config_drive(params_, *log_);
  if (!built) {
    ++stats_.rejected;
    log_->error("the changed config drive inputs are invalid; the VM keeps its current drive: {}",
                built.error().message);
    co_return;
  }
  auto current = read_file(params_.iso, built->iso.size());
  if (current && *current == built->iso) {
    ++stats_.unchanged;
    log_->debug("config drive inputs touched, content unchanged");
    co_return;
  }
  // Atomic (QEMU never reads a torn ISO) but not fsync'd, as at start-up: the drive is rebuilt
  // from the ConfigMaps at every start, so losing it in a crash loses nothing.
  if (auto w = write_file_atomic(params_.iso, built->iso, Durability::kAtomicOnly); !w) {
    ++stats_.rejected;
    log_->error("cannot write the new config drive; the VM keeps its current drive: {}",
                w.error().message);
    co_return;
  }
  log_->info(
      "config drive inputs changed: rebuilt {} ({}, {} bytes, instance-id {}); swapping it "
      "into the VM",
      params_.iso.string(), built->content.label, built->iso.size(), built->content.instance_id);
  auto self = shared_from_this();
  auto swapped = co_await swap_(params_.iso);
  if (!swapped) {
    ++stats_.swap_failures;
    log_->warn("the VM did not take the new config drive ({}); it sees it after its next boot",
               swapped.error().message);
    co_return;
  }
  ++stats_.swaps;
  log_->info("the VM has the new config drive");
}

}  // namespace berth::drive

namespace berth::drive {

void ConfigDriveWatcher::register_metrics(MetricsRegistry& registry) const {
  static constexpr CounterField<Stats> kCounters[] = {
      {"berth_config_drive_rebuilds_total", "Debounced bursts of ConfigMap changes handled.",
       &Stats::rebuilds},
      {"berth_config_drive_swaps_total", "New config drives handed to the VM.", &Stats::swaps},
      {"berth_config_drive_unchanged_total", "Rebuilds that gave the same drive (nothing to do).",
       &Stats::unchanged},
      {"berth_config_drive_rejected_total", "ConfigMap changes refused as invalid.",
       &Stats::rejected},
      {"berth_config_drive_swap_failures_total",
       "New config drives written but not taken by the VM.", &Stats::swap_failures},
  };
  register_counter_fields(registry, kCounters, [this]() -> const Stats& { return stats_; });
}

}  // namespace berth::drive
