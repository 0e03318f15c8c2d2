#pragma once
// The parameters of each module, built from the configuration and what start-up found: pure
// functions, no I/O, so each mapping is tested on its own (test/supervisor/module_params_test).

#include <filesystem>
#include <optional>
#include <string>

#include "common/mac.hpp"
#include "dhcp/dhcp_server.hpp"
#include "dhcp/dns/dns_forwarder.hpp"
#include "dhcp/v6/ipv6_server.hpp"
#include "drive/configdrive/config_drive.hpp"
#include "drive/disk/pet_disk.hpp"
#include "drive/image/image_cache.hpp"
#include "drive/image/lazy_image.hpp"
#include "net/network.hpp"
#include "net/pod.hpp"
#include "qemu/command_line.hpp"
#include "supervisor/config.hpp"

namespace berth {

// A locally administered unicast MAC (52:54:00:xx:xx:xx), stable for a hostname (and so for its
// pet disk).
MacAddress mac_for(const std::string& hostname);

// Berth's files in BERTH_RUNTIME_DIR, named in one place.
std::filesystem::path qmp_socket_path(const Config& config);     // QEMU's QMP socket
std::filesystem::path control_token_path(const Config& config);  // a generated control token
// The guest agent's socket: QEMU listens (a descriptor berth made, 0600), berth connects.
std::filesystem::path agent_socket_path(const Config& config);
// The browser viewer's VNC socket, in a folder of its own that QEMU's user owns (0700): QEMU
// creates the socket there, without write access to the runtime folder.
std::filesystem::path viewer_dir(const Config& config);
std::filesystem::path viewer_socket_path(const Config& config);

// Where the browser viewers' files may be, in order: BERTH_WEB_DIR when set, else next to the
// binary `exe`: <prefix>/share/berth/web (installed: /usr/local/bin/berth) and <build>/web (a
// build tree: build/supervisor/berth).
std::vector<std::filesystem::path> web_dir_candidates(const Config& config,
                                                      const std::filesystem::path& exe);

std::filesystem::path swtpm_socket_path(const Config& config);  // swtpm's control socket
// IMG_LAZY: the NBD export of the filling base image (berth listens, 0600, QEMU's user).
std::filesystem::path lazy_socket_path(const Config& config);

// VM_TPM's state folder on the pet-disk volume: <BERTH_DISK_DIR>/<hostname>.tpm (never wiped).
std::filesystem::path tpm_state_dir(const Config& config, const std::string& hostname);

// IMG_SOURCE, IMG_TARGET, IMG_CHECKSUM, BERTH_IMAGE_DIR and the CA bundle, for fetch_image.
drive::FetchParams fetch_params(const Config& config);
// The same, for the lazily filled image (IMG_LAZY); the cache record is written when it is
// verified.
drive::LazyParams lazy_params(const Config& config);

// VM_CDROM, VM_CDROM_CHECKSUM, BERTH_IMAGE_DIR and the CA bundle, for fetch_image; the limits as
// IMG_SOURCE's. Requires config.cdrom.
drive::FetchParams cdrom_fetch_params(const Config& config);

// The pet disk of `hostname` over the cached `image`, grown to VM_DISK_SIZE; when `image` is an
// installer ISO (`image_is_iso`), a blank disk of VM_DISK_SIZE made for it instead.
drive::PetDiskParams pet_disk_params(const Config& config, const std::string& hostname,
                                     const drive::CachedImage& image, bool image_is_iso = false);

// The config drive's sources and layout; the ISO goes to <BERTH_RUNTIME_DIR>/config-drive.iso.
drive::ConfigDriveParams config_drive_params(const Config& config, const std::string& hostname);

// The VM's IPv6 side, when the pod has IPv6 and VM_IP6 is not off: the pod's first usable IPv6
// address, the VM's address (the EUI-64 one of `mac` in VM_IP6, what SLAAC makes and DHCPv6 hands
// out) and the bridge's (<VM_IP6>::1). nullopt otherwise.
std::optional<net::NatSpec6> ipv6_spec(const Config& config, const net::Pod& pod, MacAddress mac);

// The pod network, with the health port (and VNC, when on) reserved from the VM's NAT and the
// control port kept local; `ipv6` (ipv6_spec) adds the ip6 side.
net::NetworkSpec network_spec(const Config& config, const net::Pod& pod,
                              std::optional<net::NatSpec6> ipv6 = std::nullopt);

// The DHCP server on `bridge`: the VM's /30 lease for `mac`, berth as router and DNS server.
dhcp::DhcpConfig dhcp_config(const Config& config, const net::Pod& pod, const std::string& bridge,
                             MacAddress mac);

// The DNS forwarder on `bridge` at VM_GW towards the pod's first three nameservers of a family
// the pod has (IPv4 when it has an IPv4 address, IPv6 when it has IPv6); nullopt when
// /etc/resolv.conf names none (the guest then gets no forwarder).
std::optional<dhcp::DnsConfig> dns_config(const Config& config, const net::Pod& pod,
                                          const std::string& bridge);

// The same forwarder's twin on the bridge's IPv6 address, answering the VM's /64 only.
std::optional<dhcp::DnsConfig> dns6_config(const Config& config, const net::Pod& pod,
                                           const std::string& bridge, const net::NatSpec6& ipv6);

// Router advertisements and DHCPv6 on `bridge`: VM_IP6 on-link and autonomous with the M and O
// flags, the bridge as default router, the pod MTU, the bridge's address as DNS server (RDNSS
// and DHCPv6 option 23) when `dns`, the pod's search list; DHCPv6 hands out ipv6.vm_ip.
dhcp::v6::Ipv6ServerConfig ipv6_server_config(const net::Pod& pod, const std::string& bridge,
                                              const net::NatSpec6& ipv6, bool dns);

// What start-up made that QEMU needs besides the configuration.
struct MachineInputs {
  qemu::Accelerator accel = qemu::Accelerator::kTcg;
  std::filesystem::path disk;                 // the pet disk (qcow2)
  std::filesystem::path config_drive;         // the ISO
  std::vector<std::filesystem::path> cdroms;  // bootable CD-ROMs, in boot order after the disk
  MacAddress mac{};
  unsigned mtu = 1500;             // the pod interface's
  std::optional<std::string> tap;  // none: no NIC
  boost::asio::ip::address_v4 pod_address = boost::asio::ip::address_v4::loopback();  // VNC's
  std::optional<qemu::FirmwareFlash> flash;      // UEFI's flash (prepare_firmware); none: BIOS
  std::vector<qemu::DataDrive> data_disks;       // VM_DISKS (prepare_data_disks)
  std::optional<qemu::NbdBacking> lazy_backing;  // IMG_LAZY while the base image fills
};

// QEMU's machine: VM_CPUS, VM_MEMORY, VNC (on the pod address, with its auth), the QMP socket in
// BERTH_RUNTIME_DIR, BERTH_QEMU_ARGS, VM_FIRMWARE with the flash prepare_firmware made, VM_TPM's
// device on swtpm's socket (tpm-crb under UEFI, tpm-tis under SeaBIOS, which drives only TIS).
qemu::MachineSpec machine_spec(const Config& config, const MachineInputs& inputs);

}  // namespace berth
