#pragma once
// The QMP arguments that hot-plug a data disk (VM_DISKS) into a running VM: blockdev-add with the
// options of its -blockdev, device_add with those of its -device (command_line.hpp).

#include <boost/json/object.hpp>

#include "qemu/command_line.hpp"

namespace berth::qemu {

// blockdev-add's arguments for `drive` (node "disk-<name>", discard and detect-zeroes unmap).
boost::json::object blockdev_add_arguments(const DataDrive& drive);
// device_add's arguments: virtio-blk-pci on its root port, with its IOThread, `queues` queues and
// its serial.
boost::json::object device_add_arguments(const DataDrive& drive, unsigned queues);

}  // namespace berth::qemu
