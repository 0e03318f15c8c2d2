#pragma once
// VM_DISKS at start: each folder's disk file made or grown, each block device checked and probed
// for io_uring, and all of them handed to QEMU's user (as the pet disk is).

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <vector>

#include "common/error.hpp"
#include "drive/program.hpp"
#include "qemu/command_line.hpp"
#include "supervisor/children.hpp"
#include "supervisor/config.hpp"

namespace berth {

// The data disks of `disks` as QEMU gets them, in the same order: a folder's file is created or
// grown (drive/disk/data_disk.hpp), a block device must be one and gets aio=io_uring where
// qemu-img could open it so. Errors: the first disk's that failed (kInvalidInput for a volume
// that is not what VM_DISKS says it is, or a shrink).
boost::asio::awaitable<Result<std::vector<qemu::DataDrive>>> prepare_data_disks(
    std::vector<DataDiskSpec> disks, drive::RunProgram run, std::shared_ptr<spdlog::logger> log);

// Gives each data disk to QEMU's user: uid:gid, mode 0600 (a block device's node too: the pod's
// own /dev entry), and checks that QEMU can reach it. Errors: kSystem (chown/chmod, with the
// path), kInvalidInput (a folder on the way QEMU may not traverse).
Result<void> hand_over_data_disks(const Credentials& who,
                                  const std::vector<qemu::DataDrive>& disks);

// The disk of `disks` (prepared from `specs`, same order) that `wanted` names: its name, its
// folder or file, or its block device. nullptr for anything else: the control API attaches
// nothing that VM_DISKS does not list.
const qemu::DataDrive* find_data_disk(const std::vector<qemu::DataDrive>& disks,
                                      const std::vector<DataDiskSpec>& specs,
                                      std::string_view wanted);

}  // namespace berth
