#include "qemu/data_disk_qmp.hpp"

namespace berth::qemu {

namespace json = boost::json;

json::object blockdev_add_arguments(const DataDrive& drive) {
  json::object node{
      {"node-name", data_disk_id(drive.name)}, {"discard", "unmap"}, {"detect-zeroes", "unmap"}};
  switch (drive.backend) {
    case DataBackend::kQcow2File:
      node["driver"] = "qcow2";
      node["file"] =
          json::object{{"driver", "file"}, {"filename", drive.path.string()}, {"discard", "unmap"}};
      break;
    case DataBackend::kRawFile:
      node["driver"] = "file";
      node["filename"] = drive.path.string();
      break;
    case DataBackend::kBlockDevice:
      node["driver"] = "host_device";
      node["filename"] = drive.path.string();
      node["cache"] = json::object{{"direct", true}};
      node["aio"] = drive.aio == BlockAio::kIoUring ? "io_uring" : "native";
      break;
  }
  return node;
}

json::object device_add_arguments(const DataDrive& drive, unsigned queues) {
  const std::string id = data_disk_id(drive.name);
  return {{"driver", "virtio-blk-pci"},
          {"id", id},
          {"drive", id},
          {"bus", data_disk_port(drive.name)},
          {"iothread", data_disk_iothread(drive.name)},
          {"num-queues", queues},
          {"serial", drive.name}};
}

}  // namespace berth::qemu
