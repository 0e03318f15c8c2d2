#pragma once
// Putting a new config drive into the running VM: the one QMP command, as data, and the coroutine
// that runs it.
//
// A guest that has its CD-ROM open has locked the tray: Linux sends PREVENT MEDIUM REMOVAL on every
// open of /dev/sr0 unless /proc/sys/dev/cdrom/lock is 0, and its default is 1 (a stock Debian cloud
// image keeps the drive locked). QEMU then refuses a plain blockdev-change-medium ("Device
// 'configdrive' is locked and force was not specified"). With `force`, the same command opens the
// tray regardless of the guest's lock, removes the old medium, inserts the new one and closes the
// tray, in one step: the guest gets DEVICE_TRAY_MOVED open and closed, i.e. a UNIT ATTENTION and a
// media event on the scsi-cd, so its next open of the drive drops what it cached of the old ISO
// and reads the new one. The medium is an anonymous block node that goes with the old medium:
// nothing is named, nothing accumulates over many edits.

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "qemu/qmp/qmp_client.hpp"

namespace berth::qemu {

// One QMP command: its name and arguments.
struct QmpCommand {
  std::string name;
  boost::json::object arguments;
};

// The command that makes the raw ISO at `iso` the config drive's medium (read-only), whether or
// not the guest holds the tray locked.
QmpCommand config_drive_media_change(const std::filesystem::path& iso);

// Runs config_drive_media_change(iso) on `qmp` and waits at most `timeout` for QEMU's answer.
// The error names the ISO and QEMU's answer.
boost::asio::awaitable<Result<void>> change_config_drive_medium(
    std::shared_ptr<qmp::Client> qmp, std::filesystem::path iso,
    std::chrono::steady_clock::duration timeout = std::chrono::seconds(10));

}  // namespace berth::qemu
