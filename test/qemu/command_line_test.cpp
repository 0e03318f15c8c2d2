#include "qemu/command_line.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>

using namespace berth::qemu;
using Argv = std::vector<std::string>;

namespace {

MachineSpec sample() {
  MachineSpec spec;
  spec.accel = Accelerator::kTcg;
  spec.cpus = 2;
  spec.memory_mib = 2048;
  spec.disk = "/var/lib/berth/disks/vm-0.qcow2";
  spec.config_drive = "/run/berth/config-drive.iso";
  spec.tap = "tap0";
  spec.mac = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
  spec.mtu = 1450;
  spec.qmp_socket = "/run/berth/qmp.sock";
  spec.vnc_address = boost::asio::ip::make_address_v4("10.77.0.5");
  return spec;
}

// What berth hands QEMU in the sample: the QMP listener, the tap and the agent's listener.
constexpr InheritedFds kFds{.qmp = 7, .tap = 8, .agent = 9};

// The value following `option` (the n-th occurrence), or "" when absent.
std::string value_of(const Argv& argv, const std::string& option, int nth = 0) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == option && nth-- == 0)
      return argv[i + 1];
  return "";
}

bool has_pair(const Argv& argv, const std::string& option, const std::string& value) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == option && argv[i + 1] == value)
      return true;
  return false;
}

}  // namespace

TEST_CASE("the command line for TCG with every device", "[qemu]") {
  const Argv argv = build_command_line(sample(), kFds);
  CHECK(argv.front() == "qemu-system-x86_64");
  CHECK(value_of(argv, "-machine") == "q35,accel=tcg");
  CHECK(value_of(argv, "-cpu") == "max");
  CHECK(value_of(argv, "-smp") == "2");
  CHECK(value_of(argv, "-m") == "2048M");
  CHECK(std::count(argv.begin(), argv.end(), "-nodefaults") == 1);
  CHECK(std::count(argv.begin(), argv.end(), "-no-user-config") == 1);
  CHECK(value_of(argv, "-sandbox").starts_with("on,"));
  // QMP on the listening socket berth made (QEMU cannot create files in the runtime folder).
  CHECK(value_of(argv, "-chardev", 0) == "socket,id=qmp,fd=7,server=on,wait=off");
  CHECK(value_of(argv, "-mon") == "chardev=qmp,mode=control");
  CHECK(value_of(argv, "-qmp").empty());
  // The guest agent's port on the listening socket berth made, under the name qemu-ga opens.
  CHECK(value_of(argv, "-chardev", 2) == "socket,id=agent,fd=9,server=on,wait=off");
  CHECK(has_pair(argv, "-device", "virtio-serial-pci,id=agent-serial"));
  CHECK(has_pair(argv, "-device",
                 "virtserialport,bus=agent-serial.0,chardev=agent,name=org.qemu.guest_agent.0"));
  CHECK(has_pair(argv, "-drive",
                 "if=none,id=disk0,file=/var/lib/berth/disks/vm-0.qcow2,format=qcow2,"
                 "cache=writeback,discard=unmap,detect-zeroes=unmap"));
  CHECK(has_pair(argv, "-object", "iothread,id=io-disk0"));
  CHECK(has_pair(argv, "-device",
                 "virtio-blk-pci,drive=disk0,bootindex=0,iothread=io-disk0,num-queues=2"));
  // The config drive: a virtio-scsi CD-ROM with fixed ids (cloud kernels lack AHCI).
  CHECK(has_pair(argv, "-device", "virtio-scsi-pci,id=scsi0"));
  CHECK(has_pair(argv, "-drive",
                 "if=none,id=configdrive-media,media=cdrom,readonly=on,format=raw,"
                 "file=/run/berth/config-drive.iso"));
  CHECK(has_pair(argv, "-device", "scsi-cd,bus=scsi0.0,drive=configdrive-media,id=configdrive"));
  // The tap berth opened: QEMU needs no CAP_NET_ADMIN and no /dev/net/tun.
  CHECK(value_of(argv, "-netdev") == "tap,id=net0,fd=8");
  CHECK(
      has_pair(argv, "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:ab:cd:ef,host_mtu=1450"));
  CHECK(value_of(argv, "-display") == "vnc=10.77.0.5:0,vnc=127.0.0.1:0,password=on");
  CHECK(value_of(argv, "-serial") == "chardev:console");
}

TEST_CASE("VNC listens on the pod IP and loopback only and asks for a password unless opted out",
          "[qemu]") {
  auto spec = sample();
  // Password auth: the password itself goes over QMP, so nothing on argv can carry it.
  for (const auto& word : build_command_line(spec, kFds)) {
    CHECK_THAT(word, !Catch::Contains("password=off") && !Catch::Contains("0.0.0.0")
                         && !Catch::Contains("vnc=:"));
    CHECK_THAT(word, !Catch::Contains("password-secret") && !Catch::Contains("secret,"));
  }
  spec.vnc_auth = VncAuth::kNone;
  CHECK(value_of(build_command_line(spec, kFds), "-display")
        == "vnc=10.77.0.5:0,vnc=127.0.0.1:0,password=off");
  spec.vnc_address = boost::asio::ip::address_v4::loopback();
  CHECK(value_of(build_command_line(spec, kFds), "-display") == "vnc=127.0.0.1:0,password=off");
}

TEST_CASE("KVM gets a CPU model that nested KVM accepts", "[qemu]") {
  auto spec = sample();
  spec.accel = Accelerator::kKvm;
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-machine") == "q35,accel=kvm");
  CHECK(value_of(argv, "-cpu") == "host,arch-capabilities=off");
}

TEST_CASE("no VNC, no NIC, an empty CD-ROM, and extra arguments last", "[qemu]") {
  auto spec = sample();
  spec.vnc = Vnc::kOff;
  spec.tap.reset();
  spec.config_drive.reset();
  spec.extra_args = {"-device", "pvpanic"};
  const Argv argv = build_command_line(spec, {.qmp = 7});
  CHECK(value_of(argv, "-display") == "none");
  CHECK(value_of(argv, "-netdev").empty());
  CHECK(has_pair(argv, "-drive", "if=none,id=configdrive-media,media=cdrom"));
  CHECK(Argv(argv.end() - 2, argv.end()) == Argv{"-device", "pvpanic"});
}

TEST_CASE("bootable CD-ROMs boot after the disk, beside the config drive, in their order",
          "[qemu]") {
  auto spec = sample();
  const Argv none = build_command_line(spec, {.qmp = 7});
  CHECK(std::none_of(none.begin(), none.end(),
                     [](const std::string& arg) { return arg.find("guest_agent") != arg.npos; }));
  CHECK(std::count(none.begin(), none.end(),
                   "scsi-cd,bus=scsi0.0,drive=cdrom0-media,id=cdrom0,"
                   "bootindex=1")
        == 0);
  spec.cdroms = {"/images/debian,netinst.iso", "/images/virtio-win.iso"};
  const Argv argv = build_command_line(spec, {.qmp = 7});
  CHECK(std::any_of(argv.begin(), argv.end(), [](const std::string& arg) {
    return arg.starts_with("virtio-blk-pci,drive=disk0,bootindex=0,");
  }));
  CHECK(has_pair(argv, "-drive",
                 "if=none,id=cdrom0-media,media=cdrom,readonly=on,format=raw,"
                 "file=/images/debian,,netinst.iso"));
  CHECK(has_pair(argv, "-device", "scsi-cd,bus=scsi0.0,drive=cdrom0-media,id=cdrom0,bootindex=1"));
  CHECK(has_pair(argv, "-drive",
                 "if=none,id=cdrom1-media,media=cdrom,readonly=on,format=raw,"
                 "file=/images/virtio-win.iso"));
  CHECK(has_pair(argv, "-device", "scsi-cd,bus=scsi0.0,drive=cdrom1-media,id=cdrom1,bootindex=2"));
  // The config drive stays the first CD-ROM on the bus, with no boot index (it is not bootable).
  const auto config = std::find(
      argv.begin(), argv.end(),
      fmt::format("scsi-cd,bus=scsi0.0,drive={},id={}", kConfigDriveDrive, kConfigDriveDevice));
  const auto install = std::find(argv.begin(), argv.end(),
                                 "scsi-cd,bus=scsi0.0,drive=cdrom0-media,id=cdrom0,bootindex=1");
  CHECK(config < install);
}

TEST_CASE("IMG_LAZY: the pet disk's backing is the NBD export, as nodes the disk names", "[qemu]") {
  auto spec = sample();
  const Argv plain = build_command_line(spec, kFds);
  CHECK(value_of(plain, "-blockdev").empty());
  spec.lazy_backing = NbdBacking{"/run/berth/image.nbd", "base", DiskFormat::kQcow2};
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-blockdev", 0)
        == "driver=nbd,node-name=lazy-base-nbd,server.type=unix,server.path=/run/berth/image.nbd,"
           "export=base,read-only=on");
  CHECK(value_of(argv, "-blockdev", 1)
        == "driver=qcow2,node-name=lazy-base,file=lazy-base-nbd,read-only=on");
  CHECK(value_of(argv, "-drive").ends_with(",detect-zeroes=unmap,backing=lazy-base"));
}

TEST_CASE("commas in paths are doubled, as QEMU's option syntax requires", "[qemu]") {
  auto spec = sample();
  spec.disk = "/disks/a,b.qcow2";
  spec.config_drive = "/run/x,y/config-drive.iso";
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-drive").find("file=/disks/a,,b.qcow2,") != std::string::npos);
  CHECK(value_of(argv, "-drive", 1).find("file=/run/x,,y/config-drive.iso") != std::string::npos);
}

TEST_CASE("the browser viewer's display is a unix socket only, after the pod-IP display",
          "[qemu]") {
  auto spec = sample();
  spec.viewer_socket = "/run/berth/viewer/vnc,1.sock";
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-vnc") == "unix:/run/berth/viewer/vnc,,1.sock,id=viewer,password=off");
  CHECK(value_of(argv, "-vnc", 1).empty());  // one -vnc: no second TCP listener
  // change-vnc-password reaches the first display: the pod IP's must come before the viewer's.
  const auto display = std::find(argv.begin(), argv.end(), "-display");
  const auto viewer = std::find(argv.begin(), argv.end(), "-vnc");
  CHECK(display < viewer);
  CHECK(value_of(argv, "-vga") == "std");
}

TEST_CASE("the viewer keeps a display adapter when NO_VNC turns the pod-IP VNC off", "[qemu]") {
  auto spec = sample();
  spec.vnc = Vnc::kOff;
  spec.viewer_socket = "/run/berth/viewer/vnc.sock";
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-display") == "none");
  CHECK(value_of(argv, "-vga") == "std");
  CHECK(value_of(argv, "-vnc") == "unix:/run/berth/viewer/vnc.sock,id=viewer,password=off");
  spec.viewer_socket.reset();
  const Argv without = build_command_line(spec, kFds);
  CHECK(value_of(without, "-vga").empty());
  CHECK(value_of(without, "-vnc").empty());
}

TEST_CASE("a TPM: swtpm's socket as a chardev, the emulator backend, tpm-crb or tpm-tis",
          "[qemu]") {
  auto spec = sample();
  CHECK(value_of(build_command_line(spec, kFds), "-tpmdev").empty());
  spec.tpm = TpmSpec{.socket = "/run/berth/swtpm/a,b.sock"};
  spec.extra_args = {"-device", "pvpanic"};
  Argv argv = build_command_line(spec, kFds);
  CHECK(has_pair(argv, "-chardev", "socket,id=chrtpm,path=/run/berth/swtpm/a,,b.sock"));
  CHECK(has_pair(argv, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm"));
  CHECK(has_pair(argv, "-device", "tpm-crb,tpmdev=tpm0"));
  CHECK(!has_pair(argv, "-device", "tpm-tis,tpmdev=tpm0"));
  CHECK(Argv(argv.end() - 2, argv.end()) == Argv{"-device", "pvpanic"});
  spec.tpm->interface = TpmInterface::kTis;
  argv = build_command_line(spec, kFds);
  CHECK(has_pair(argv, "-device", "tpm-tis,tpmdev=tpm0"));
  CHECK(!has_pair(argv, "-device", "tpm-crb,tpmdev=tpm0"));
}

TEST_CASE("BIOS firmware adds no flash and no SMM", "[qemu]") {
  const Argv argv = build_command_line(sample(), kFds);
  CHECK(value_of(argv, "-machine") == "q35,accel=tcg");
  CHECK(value_of(argv, "-global").empty());
  for (const auto& arg : argv)
    CHECK(arg.find("pflash") == std::string::npos);
}

TEST_CASE("UEFI: OVMF's code read-only on flash unit 0, the VM's variables on unit 1", "[qemu]") {
  MachineSpec spec = sample();
  spec.firmware = Firmware::kUefi;
  spec.flash = {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/var/lib/berth/disks/vm-0.efivars.fd"};
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-machine") == "q35,accel=tcg");
  CHECK(value_of(argv, "-global").empty());
  CHECK(value_of(argv, "-drive", 0)
        == "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd");
  CHECK(value_of(argv, "-drive", 1)
        == "if=pflash,format=raw,unit=1,file=/var/lib/berth/disks/vm-0.efivars.fd");
  // The disk comes first in OVMF's boot order (without it OVMF tries the network first).
  CHECK(has_pair(argv, "-device",
                 "virtio-blk-pci,drive=disk0,bootindex=0,iothread=io-disk0,num-queues=2"));
}

TEST_CASE("UEFI with Secure Boot: SMM on and the flash writable by SMM code only", "[qemu]") {
  MachineSpec spec = sample();
  spec.accel = Accelerator::kKvm;
  spec.firmware = Firmware::kUefiSecure;
  spec.flash = {"/ovmf/OVMF_CODE_4M.secboot.fd", "/d/a,b.efivars.fd"};
  const Argv argv = build_command_line(spec, kFds);
  CHECK(value_of(argv, "-machine") == "q35,accel=kvm,smm=on");
  CHECK(value_of(argv, "-global") == "driver=cfi.pflash01,property=secure,value=on");
  CHECK(value_of(argv, "-drive", 0)
        == "if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/OVMF_CODE_4M.secboot.fd");
  CHECK(value_of(argv, "-drive", 1) == "if=pflash,format=raw,unit=1,file=/d/a,,b.efivars.fd");
}

TEST_CASE("data disks: qcow2 and raw files and block devices each with its IOThread and serial",
          "[qemu][disks]") {
  MachineSpec spec = sample();
  spec.data_disks = {{"data", "/vol/data/data.qcow2", DataBackend::kQcow2File},
                     {"scratch", "/vol/s,x/scratch.raw", DataBackend::kRawFile},
                     {"blk", "/dev/xvdb", DataBackend::kBlockDevice, BlockAio::kIoUring},
                     {"old", "/dev/sdc", DataBackend::kBlockDevice, BlockAio::kNative}};
  const Argv argv = build_command_line(spec, kFds);
  CHECK(has_pair(argv, "-object", "iothread,id=io-data"));
  CHECK(has_pair(argv, "-blockdev",
                 "driver=qcow2,node-name=disk-data,discard=unmap,detect-zeroes=unmap,"
                 "file.driver=file,file.filename=/vol/data/data.qcow2,file.discard=unmap"));
  CHECK(has_pair(argv, "-device",
                 "virtio-blk-pci,id=disk-data,drive=disk-data,bus=rp-data,iothread=io-data,"
                 "num-queues=2,serial=data"));
  // Each on a PCIe root port of its own: q35's pcie.0 has no hotplug.
  CHECK(has_pair(argv, "-device", "pcie-root-port,id=rp-data,chassis=1"));
  CHECK(has_pair(argv, "-device", "pcie-root-port,id=rp-old,chassis=4"));
  // A raw file straight on the file driver, block devices on host_device with O_DIRECT.
  for (const char* blockdev :
       {"driver=file,node-name=disk-scratch,discard=unmap,detect-zeroes=unmap,"
        "filename=/vol/s,,x/scratch.raw",
        "driver=host_device,node-name=disk-blk,discard=unmap,detect-zeroes=unmap,"
        "filename=/dev/xvdb,cache.direct=on,aio=io_uring",
        "driver=host_device,node-name=disk-old,discard=unmap,detect-zeroes=unmap,"
        "filename=/dev/sdc,cache.direct=on,aio=native"})
    CHECK(has_pair(argv, "-blockdev", blockdev));
  // In the order given, after the pet disk: the guest's PCI slots stay the same across restarts.
  std::vector<std::string> order;
  for (std::size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == "-device" && argv[i + 1].starts_with("virtio-blk-pci"))
      order.push_back(argv[i + 1]);
  REQUIRE(order.size() == 5);
  CHECK(order[0].starts_with("virtio-blk-pci,drive=disk0"));
  CHECK(order[1].starts_with("virtio-blk-pci,id=disk-data,"));
  CHECK(order[4].starts_with("virtio-blk-pci,id=disk-old,"));
}
