#include "supervisor/data_disks.hpp"

#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include "qemu/data_disk_qmp.hpp"

using namespace berth;

TEST_CASE("hotplug: only a disk of VM_DISKS by its name or folder or file or device", "[disks]") {
  const auto specs = parse_disk_list("data=/vol/data/:1Gi,blk=/dev/xvdb").disks;
  const std::vector<qemu::DataDrive> drives = {
      {"data", "/vol/data/data.qcow2", qemu::DataBackend::kQcow2File},
      {"blk", "/dev/xvdb", qemu::DataBackend::kBlockDevice, qemu::BlockAio::kNative}};
  for (const char* wanted : {"data", "/vol/data", "/vol/data/", "/vol//data/./data.qcow2"})
    CHECK(find_data_disk(drives, specs, wanted) == &drives[0]);
  CHECK(find_data_disk(drives, specs, "/dev/xvdb") == &drives[1]);
  for (const char* refused : {"", "/", "/vol", "/vol/data/../other", "/dev/xvdc", "/etc/passwd",
                              "Data", "disk-data", "vol/data", "/vol/data/data.raw"})
    CHECK(find_data_disk(drives, specs, refused) == nullptr);
}

TEST_CASE("hotplug: blockdev-add and device_add say what the command line says", "[disks]") {
  const qemu::DataDrive block{"blk", "/dev/xvdb", qemu::DataBackend::kBlockDevice,
                              qemu::BlockAio::kIoUring};
  CHECK(boost::json::serialize(qemu::blockdev_add_arguments(block))
        == R"({"node-name":"disk-blk","discard":"unmap","detect-zeroes":"unmap",)"
           R"("driver":"host_device","filename":"/dev/xvdb","cache":{"direct":true},)"
           R"("aio":"io_uring"})");
  const qemu::DataDrive qcow2{"data", "/vol/data.qcow2", qemu::DataBackend::kQcow2File};
  CHECK(boost::json::serialize(qemu::blockdev_add_arguments(qcow2))
        == R"({"node-name":"disk-data","discard":"unmap","detect-zeroes":"unmap",)"
           R"("driver":"qcow2","file":{"driver":"file","filename":"/vol/data.qcow2",)"
           R"("discard":"unmap"}})");
  CHECK(boost::json::serialize(qemu::device_add_arguments(qcow2, 4))
        == R"({"driver":"virtio-blk-pci","id":"disk-data","drive":"disk-data","bus":"rp-data",)"
           R"("iothread":"io-data","num-queues":4,"serial":"data"})");
}
