#include "qemu/command_line.hpp"

#include <fmt/format.h>

namespace berth::qemu {
namespace {

std::string escape_commas(const std::string& value);

// A TPM backed by swtpm: the chardev to its control socket, the emulator backend, the device.
void add_tpm(const TpmSpec& tpm, std::vector<std::string>& argv) {
  argv.emplace_back("-chardev");
  argv.push_back(fmt::format("socket,id=chrtpm,path={}", escape_commas(tpm.socket.string())));
  argv.emplace_back("-tpmdev");
  argv.emplace_back("emulator,id=tpm0,chardev=chrtpm");
  argv.emplace_back("-device");
  argv.emplace_back(tpm.interface == TpmInterface::kCrb ? "tpm-crb,tpmdev=tpm0"
                                                        : "tpm-tis,tpmdev=tpm0");
}

// QEMU's option syntax escapes a comma in a value by doubling it.
std::string escape_commas(const std::string& value) {
  std::string out;
  for (char c : value) {
    out += c;
    if (c == ',')
      out += ',';
  }
  return out;
}

// The machine option: q35, the accelerator and, for Secure Boot, SMM.
std::string machine_option(const MachineSpec& spec) {
  return fmt::format("q35,accel={}{}", spec.accel == Accelerator::kKvm ? "kvm" : "tcg",
                     spec.firmware == Firmware::kUefiSecure ? ",smm=on" : "");
}

// OVMF's flash chips: unit 0 the code (read-only), unit 1 the VM's variables.
void add_firmware(const MachineSpec& spec, std::vector<std::string>& argv) {
  if (spec.firmware == Firmware::kBios)
    return;
  if (spec.firmware == Firmware::kUefiSecure) {
    argv.emplace_back("-global");
    argv.emplace_back("driver=cfi.pflash01,property=secure,value=on");
  }
  argv.emplace_back("-drive");
  argv.push_back(fmt::format("if=pflash,format=raw,unit=0,readonly=on,file={}",
                             escape_commas(spec.flash.code.string())));
  argv.emplace_back("-drive");
  argv.push_back(
      fmt::format("if=pflash,format=raw,unit=1,file={}", escape_commas(spec.flash.vars.string())));
}

// The pet disk: qcow2 over the base image, its own IOThread, one queue per vCPU; discards reach
// the file (discard=unmap) and written zeros become discards (detect-zeroes=unmap).
// IMG_LAZY: the backing image as two read-only nodes, NBD on berth's unix socket and the base's
// format over it, named by the pet disk's `backing` (which overrides the file its header names;
// dotted backing.file.* options would not: QEMU passes that name on and NBD refuses it).
constexpr const char* kLazyBackingNode = "lazy-base";

void add_lazy_backing(const NbdBacking& backing, std::vector<std::string>& argv) {
  argv.insert(
      argv.end(),
      {"-blockdev",
       fmt::format("driver=nbd,node-name=lazy-base-nbd,server.type=unix,server.path={},"
                   "export={},read-only=on",
                   escape_commas(backing.socket.string()), escape_commas(backing.export_name)),
       "-blockdev",
       fmt::format("driver={},node-name={},file=lazy-base-nbd,read-only=on",
                   backing.format == DiskFormat::kQcow2 ? "qcow2" : "raw", kLazyBackingNode)});
}

void add_pet_disk(const MachineSpec& spec, std::vector<std::string>& argv) {
  if (spec.lazy_backing)
    add_lazy_backing(*spec.lazy_backing, argv);
  argv.insert(argv.end(),
              {"-object", "iothread,id=io-disk0", "-drive",
               fmt::format("if=none,id=disk0,file={},format={},cache=writeback,discard=unmap,"
                           "detect-zeroes=unmap{}",
                           escape_commas(spec.disk.string()),
                           spec.disk_format == DiskFormat::kQcow2 ? "qcow2" : "raw",
                           spec.lazy_backing ? fmt::format(",backing={}", kLazyBackingNode)
                                             : std::string()),
               "-device",
               fmt::format("virtio-blk-pci,drive=disk0,bootindex=0,iothread=io-disk0,num-queues={}",
                           spec.cpus)});
}

}  // namespace

std::string data_disk_id(std::string_view name) {
  return fmt::format("disk-{}", name);
}

std::string data_disk_iothread(std::string_view name) {
  return fmt::format("io-{}", name);
}

std::string data_disk_port(std::string_view name) {
  return fmt::format("rp-{}", name);
}

std::string data_disk_blockdev(const DataDrive& drive) {
  const std::string file = escape_commas(drive.path.string());
  const std::string common =
      fmt::format("node-name={},discard=unmap,detect-zeroes=unmap", data_disk_id(drive.name));
  switch (drive.backend) {
    case DataBackend::kQcow2File:
      return fmt::format("driver=qcow2,{},file.driver=file,file.filename={},file.discard=unmap",
                         common, file);
    case DataBackend::kRawFile:
      return fmt::format("driver=file,{},filename={}", common, file);
    case DataBackend::kBlockDevice:
      break;
  }
  return fmt::format("driver=host_device,{},filename={},cache.direct=on,aio={}", common, file,
                     drive.aio == BlockAio::kIoUring ? "io_uring" : "native");
}

std::string data_disk_device(const DataDrive& drive, unsigned queues) {
  const std::string id = data_disk_id(drive.name);
  return fmt::format("virtio-blk-pci,id={},drive={},bus={},iothread={},num-queues={},serial={}", id,
                     id, data_disk_port(drive.name), data_disk_iothread(drive.name), queues,
                     drive.name);
}

namespace {

// Each data disk on a PCIe root port of its own (hot-plug), with its IOThread.
void add_data_disks(const MachineSpec& spec, std::vector<std::string>& argv) {
  unsigned chassis = 0;
  for (const auto& drive : spec.data_disks) {
    argv.insert(argv.end(), {"-device", fmt::format("pcie-root-port,id={},chassis={}",
                                                    data_disk_port(drive.name), ++chassis)});
    argv.insert(argv.end(), {"-object", "iothread,id=" + data_disk_iothread(drive.name)});
    argv.insert(argv.end(), {"-blockdev", data_disk_blockdev(drive)});
    argv.insert(argv.end(), {"-device", data_disk_device(drive, spec.cpus)});
  }
}

// The SCSI bus with the config drive (never bootable) and the bootable CD-ROMs after the disk.
void add_cdroms(const MachineSpec& spec, std::vector<std::string>& argv) {
  argv.insert(argv.end(), {"-device", "virtio-scsi-pci,id=scsi0"});
  const std::string config_drive =
      spec.config_drive ? fmt::format("if=none,id={},media=cdrom,readonly=on,format=raw,file={}",
                                      kConfigDriveDrive, escape_commas(spec.config_drive->string()))
                        : fmt::format("if=none,id={},media=cdrom", kConfigDriveDrive);
  argv.insert(argv.end(), {"-drive", config_drive});
  argv.insert(argv.end(), {"-device", fmt::format("scsi-cd,bus=scsi0.0,drive={},id={}",
                                                  kConfigDriveDrive, kConfigDriveDevice)});
  for (std::size_t i = 0; i < spec.cdroms.size(); ++i) {
    argv.insert(argv.end(),
                {"-drive", fmt::format("if=none,id=cdrom{}-media,media=cdrom,readonly=on,"
                                       "format=raw,file={}",
                                       i, escape_commas(spec.cdroms[i].string()))});
    argv.insert(argv.end(),
                {"-device", fmt::format("scsi-cd,bus=scsi0.0,drive=cdrom{}-media,id=cdrom{},"
                                        "bootindex={}",
                                        i, i, i + 1)});
  }
}

}  // namespace

std::string cpu_model(Accelerator accel) {
  return accel == Accelerator::kKvm ? "host,arch-capabilities=off" : "max";
}

std::vector<std::string> build_command_line(const MachineSpec& spec, const InheritedFds& fds) {
  std::vector<std::string> argv = {
      spec.binary,
      "-name",
      "berth,debug-threads=on",
      "-machine",
      machine_option(spec),
      "-cpu",
      cpu_model(spec.accel),
      "-smp",
      std::to_string(spec.cpus),
      "-m",
      fmt::format("{}M", spec.memory_mib),
      "-nodefaults",
      "-no-user-config",
      "-sandbox",
      "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
      "-chardev",
      fmt::format("socket,id=qmp,fd={},server=on,wait=off", fds.qmp),
      "-mon",
      "chardev=qmp,mode=control",
      "-chardev",
      "stdio,id=console,signal=off",
      "-serial",
      "chardev:console",
      "-device",
      "virtio-rng-pci",
  };
  add_firmware(spec, argv);
  auto add = [&argv](std::string option, std::string value) {
    argv.push_back(std::move(option));
    argv.push_back(std::move(value));
  };
  if (spec.vnc == Vnc::kOn || spec.viewer_socket)
    add("-vga", "std");
  // The pod-IP display comes first: QMP's change-vnc-password sets the first display's password.
  if (spec.vnc == Vnc::kOn) {
    std::string listen = fmt::format("vnc={}:0", spec.vnc_address.to_string());
    if (!spec.vnc_address.is_loopback())
      listen += ",vnc=127.0.0.1:0";
    add("-display",
        fmt::format("{},password={}", listen, spec.vnc_auth == VncAuth::kPassword ? "on" : "off"));
  } else {
    add("-display", "none");
  }
  if (spec.viewer_socket)
    add("-vnc",
        fmt::format("unix:{},id=viewer,password=off", escape_commas(spec.viewer_socket->string())));
  add_pet_disk(spec, argv);
  add_data_disks(spec, argv);
  add_cdroms(spec, argv);
  if (fds.tap >= 0) {
    add("-netdev", fmt::format("tap,id=net0,fd={}", fds.tap));
    add("-device", fmt::format("virtio-net-pci,netdev=net0,mac={},host_mtu={}",
                               format_mac(spec.mac), spec.mtu));
  }
  if (spec.tpm)
    add_tpm(*spec.tpm, argv);
  if (fds.agent >= 0) {
    add("-chardev", fmt::format("socket,id=agent,fd={},server=on,wait=off", fds.agent));
    add("-device", "virtio-serial-pci,id=agent-serial");
    add("-device",
        fmt::format("virtserialport,bus=agent-serial.0,chardev=agent,name={}", kAgentPort));
  }
  argv.insert(argv.end(), spec.extra_args.begin(), spec.extra_args.end());
  return argv;
}

}  // namespace berth::qemu
