#pragma once
// The QEMU command line, built as an argv from a machine description (never a shell string).

#include <array>
#include <boost/asio/ip/address_v4.hpp>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/mac.hpp"

namespace berth::qemu {

enum class Accelerator { kKvm, kTcg };
enum class DiskFormat { kQcow2, kRaw };
enum class Vnc { kOff, kOn };
// kPassword: QEMU offers only VNC authentication and lets nobody in until a password is set over
// QMP (change-vnc-password); kNone offers no authentication at all (unsafe, an explicit opt-out).
enum class VncAuth { kPassword, kNone };
// kBios: SeaBIOS (QEMU's default); kUefi: OVMF; kUefiSecure: OVMF with Secure Boot, which needs
// SMM and a flash that only SMM code may write (the machine's smm=on, cfi.pflash01 secure=on).
enum class Firmware { kBios, kUefi, kUefiSecure };

// OVMF as two flash chips: the code, read-only, and the VM's own copy of the variables, writable.
struct FirmwareFlash {
  std::filesystem::path code;
  std::filesystem::path vars;
};

// The TPM's interface: tpm-crb (what UEFI guests and Windows 11 expect) or tpm-tis (for BIOS
// guests: SeaBIOS drives only TIS).
enum class TpmInterface { kCrb, kTis };

// A TPM 2.0 emulated by swtpm (VM_TPM): QEMU connects to swtpm's control socket.
struct TpmSpec {
  std::filesystem::path socket;  // swtpm's --ctrl unixio socket
  TpmInterface interface = TpmInterface::kCrb;
};

// The config drive's fixed ids: the device id is what QMP media change (blockdev-change-medium)
// names; the drive id is what the -drive option defines.
inline constexpr std::string_view kConfigDriveDevice = "configdrive";
inline constexpr std::string_view kConfigDriveDrive = "configdrive-media";

// A data disk (VM_DISKS) on virtio-blk: a qcow2 or raw file through QEMU's file driver, or a
// block device through host_device with O_DIRECT (cache=none). Each has its own IOThread; its
// serial number is its name, so the guest names it /dev/disk/by-id/virtio-<name>.
enum class DataBackend { kQcow2File, kRawFile, kBlockDevice };
// aio= of a block device: io_uring where QEMU can use it (probed at start), else native.
enum class BlockAio { kIoUring, kNative };
struct DataDrive {
  std::string name;  // [a-z0-9-], at most 20 characters (config.cpp checks)
  std::filesystem::path path;
  DataBackend backend = DataBackend::kQcow2File;
  BlockAio aio = BlockAio::kNative;  // kBlockDevice only
};

// The ids of a data disk: its block node and virtio-blk device "disk-<name>", its IOThread
// "io-<name>", the PCIe root port it sits on (hot-pluggable, unlike pcie.0) "rp-<name>".
std::string data_disk_id(std::string_view name);
std::string data_disk_iothread(std::string_view name);
std::string data_disk_port(std::string_view name);
// The -blockdev value of a data disk (discard=unmap, detect-zeroes=unmap).
std::string data_disk_blockdev(const DataDrive& drive);
// The -device value of a data disk: virtio-blk-pci on its root port with its IOThread, `queues`
// queues, its serial.
std::string data_disk_device(const DataDrive& drive, unsigned queues);

// IMG_LAZY: the pet disk's backing image read through berth's NBD export on a unix socket
// rather than from the (still filling) file the overlay names.
struct NbdBacking {
  std::filesystem::path socket;
  std::string export_name;
  DiskFormat format = DiskFormat::kRaw;  // the base image's format, over the export
  bool operator==(const NbdBacking&) const = default;
};

struct MachineSpec {
  std::string binary = "qemu-system-x86_64";
  Accelerator accel = Accelerator::kTcg;
  unsigned cpus = 1;
  std::uint64_t memory_mib = 1024;
  std::filesystem::path disk;  // the pet disk, on virtio-blk
  DiskFormat disk_format = DiskFormat::kQcow2;
  std::vector<DataDrive> data_disks;                  // after the pet disk, in this order
  std::optional<std::filesystem::path> config_drive;  // ISO on a virtio-scsi CD-ROM
  // Bootable CD-ROMs (an installer ISO, VM_CDROM), each read-only on the virtio-scsi bus beside
  // the config drive, booted in this order after the disk: bootindex 0 is the disk, so SeaBIOS and
  // OVMF boot it once it holds a system and fall through to the CD-ROM while it is blank.
  std::vector<std::filesystem::path> cdroms;
  std::optional<TpmSpec> tpm;  // none: no TPM
  std::optional<std::string>
      tap;  // tap for virtio-net, handed over as InheritedFds::tap; none: no NIC
  std::optional<NbdBacking> lazy_backing;  // set: the pet disk's backing node is this export
  MacAddress mac{};
  unsigned mtu = 1500;  // virtio-net host_mtu: the guest learns the pod MTU without DHCP too
  Vnc vnc = Vnc::kOn;   // VNC display 0 (TCP 5900) on vnc_address and on 127.0.0.1
  VncAuth vnc_auth = VncAuth::kPassword;
  // The pod IP: never 0.0.0.0, so VNC is not on VM_GW (br0), where the guest is. Loopback is added
  // for `kubectl port-forward`, which connects to 127.0.0.1 inside the pod.
  boost::asio::ip::address_v4 vnc_address = boost::asio::ip::address_v4::loopback();
  // The browser viewer's VNC display (id "viewer"): QEMU listens on this unix socket only, without
  // a password (the folder, QEMU's own 0700, is the guard; berth proxies it behind the control
  // API's token). Independent of `vnc`: either gives the machine its display adapter.
  std::optional<std::filesystem::path> viewer_socket;
  std::filesystem::path qmp_socket;  // where berth binds QMP's socket (InheritedFds::qmp)
  // Where berth binds the guest agent's socket (InheritedFds::agent); empty: no agent channel.
  std::filesystem::path agent_socket;
  Firmware firmware = Firmware::kBios;
  FirmwareFlash flash;                  // used with kUefi and kUefiSecure only
  std::vector<std::string> extra_args;  // BERTH_QEMU_ARGS, appended last
};

// The CPU model for an accelerator: `max` under TCG; under KVM `host` without the
// arch-capabilities MSR, which nested KVM refuses (QEMU aborts setting MSR 0x10a).
std::string cpu_model(Accelerator accel);

// Descriptors berth opens for QEMU, which inherits them at the same numbers: QEMU then needs no
// privilege for its network and no write access to the runtime folder.
struct InheritedFds {
  int qmp = -1;  // the listening unix socket of QMP (qmp::listen_socket); required
  int tap = -1;  // the tap, attached (net::open_tap); -1: no NIC
  // The listening unix socket of the guest agent's port (qmp::listen_socket); -1: no port.
  int agent = -1;
};

// The name of the virtio-serial port the QEMU guest agent (qemu-ga) opens in the guest.
inline constexpr std::string_view kAgentPort = "org.qemu.guest_agent.0";

// Builds the argv (argv[0] = spec.binary). The serial console is QEMU's stdout; QMP listens on
// fds.qmp, the NIC uses fds.tap, and with fds.agent a virtio-serial port named kAgentPort is
// connected to that socket; QEMU runs sandboxed (-sandbox on), without defaults or user
// config. No secret is ever part of it: VNC's password goes over QMP.
std::vector<std::string> build_command_line(const MachineSpec& spec, const InheritedFds& fds);

}  // namespace berth::qemu
