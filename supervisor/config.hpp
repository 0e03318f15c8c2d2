#pragma once
// The runtime contract: every environment variable Berth reads, parsed and validated in one place.
// Parsing is pure (the environment comes in through a lookup function) so tests can drive it.

#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mac.hpp"
#include "supervisor/phase_budget.hpp"

namespace berth {

enum class Accel { kAuto, kKvm, kTcg };
enum class DriveFormat { kConfigDrive, kNoCloud };
enum class LogFormat { kText, kJson };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };
enum class SourceKind { kUrl, kPath };
enum class VncAuth { kPassword, kNone };            // kNone only with BERTH_VNC_INSECURE_NO_AUTH
enum class Firmware { kBios, kUefi, kUefiSecure };  // VM_FIRMWARE: bios | uefi | uefi-secure

// The unprivileged identity QEMU runs as (BERTH_QEMU_USER): numeric, no /etc/passwd entry needed.
struct QemuUser {
  std::uint32_t uid = 107;
  std::uint32_t gid = 107;
  bool operator==(const QemuUser&) const = default;
};

// One VM_DISKS entry: a data disk on virtio-blk whose serial number is its name.
enum class DataDiskKind { kFile, kBlock };  // a file made in a folder, or a block device as it is
enum class DataDiskFormat { kQcow2, kRaw };
struct DataDiskSpec {
  std::string name;            // [a-z0-9-], 1-20 characters: the virtio serial
  std::filesystem::path path;  // kFile: the folder that holds <name>.qcow2 / <name>.raw
  DataDiskKind kind = DataDiskKind::kFile;
  std::uint64_t size = 0;  // kFile: bytes, a multiple of 512; kBlock: 0 (the device's size)
  DataDiskFormat format = DataDiskFormat::kQcow2;  // kFile only
  bool operator==(const DataDiskSpec&) const = default;
};
inline constexpr std::size_t kMaxDataDisks = 16;
inline constexpr std::size_t kMaxDiskName = 20;  // virtio-blk's serial holds 20 bytes

struct Endpoint {
  boost::asio::ip::address address;
  std::uint16_t port = 0;
};

struct Config {
  std::string img_source;
  SourceKind img_source_kind = SourceKind::kPath;
  std::string img_target;                 // file name inside image_dir
  std::optional<std::string> img_sha256;  // 64 lower-case hex digits
  std::uint64_t img_max_size = 0;         // bytes: of the download and of the image
  bool img_lazy = false;  // IMG_LAZY: boot while the base image fills (drive/image/lazy_image.hpp)
  std::optional<std::filesystem::path> ca_bundle;  // extra CAs for an https IMG_SOURCE
  // VM_CDROM: an ISO attached as a bootable CD-ROM, cached as `target` in image_dir.
  struct Cdrom {
    std::string source;  // http(s) URL or absolute path
    std::string target;  // its file name in image_dir
  };
  std::optional<Cdrom> cdrom;
  std::optional<std::string> cdrom_sha256;  // VM_CDROM_CHECKSUM: 64 lower-case hex digits
  boost::asio::ip::address_v4 vm_ip;
  boost::asio::ip::address_v4 vm_gw;
  // VM_IP6: the VM's private IPv6 /64 (used only when the pod has IPv6); nullopt: VM_IP6=off.
  std::optional<boost::asio::ip::network_v6> vm_ip6 =
      boost::asio::ip::make_network_v6("fd62:6572:7468::/64");
  bool vnc = true;  // false when NO_VNC is set
  VncAuth vnc_auth = VncAuth::kPassword;
  std::optional<std::filesystem::path> vnc_password_file;  // read at start, never logged
  unsigned vm_cpus = 1;
  std::uint64_t vm_memory = 0;                // bytes, a multiple of 1 MiB
  std::optional<std::uint64_t> vm_disk_size;  // bytes
  std::vector<DataDiskSpec> vm_disks;         // VM_DISKS, in the order given
  Accel vm_accel = Accel::kAuto;
  std::optional<MacAddress> vm_mac;
  Firmware vm_firmware = Firmware::kBios;
  std::filesystem::path ovmf_dir;  // BERTH_OVMF_DIR: OVMF's code and variables templates
  bool efivars_reset = false;      // VM_EFIVARS_RESET: a firmware change sets the variables aside
  std::filesystem::path image_dir;
  std::filesystem::path disk_dir;
  std::filesystem::path runtime_dir;
  std::filesystem::path userdata;
  std::filesystem::path metadata;
  std::filesystem::path networkdata;
  DriveFormat drive_format = DriveFormat::kConfigDrive;
  std::uint16_t health_port = 0;
  Endpoint control_listen;
  std::optional<std::filesystem::path> control_token_file;
  // BERTH_VIEWER: the browser viewer of the screen (QEMU's second VNC display, on a unix socket in
  // the runtime folder, proxied by the control listener); independent of NO_VNC.
  bool viewer = true;
  // BERTH_WEB_DIR: the pages and noVNC/xterm.js, served at /web/; unset: found next to the binary
  // at start (web_dir_candidates), and set there.
  std::optional<std::filesystem::path> web_dir;
  std::optional<std::uint16_t> ready_tcp;  // readiness also needs the guest to accept TCP here
  bool ready_agent = false;  // BERTH_READY_AGENT: readiness also needs the guest agent's guest-ping
  std::chrono::seconds shutdown_timeout{0};
  std::chrono::seconds fsfreeze_timeout{0};  // BERTH_FSFREEZE_TIMEOUT: the automatic thaw's delay
  PhaseBudgets phase_budgets;          // BERTH_PHASE_BUDGETS over the defaults (phase_budget.cpp)
  bool vm_tpm = false;                 // VM_TPM: a TPM 2.0 emulated by swtpm
  std::vector<std::string> qemu_args;  // BERTH_QEMU_ARGS, split like a shell would
  QemuUser qemu_user;                  // BERTH_QEMU_USER; never uid or gid 0
  LogFormat log_format = LogFormat::kText;
  LogLevel log_level = LogLevel::kInfo;
};

// One invalid variable: its name, the value it had, and a sentence saying what is accepted.
struct ConfigError {
  std::string variable;
  std::string value;
  std::string message;  // complete, e.g. `VM_IP: "300.1.1.1" is not an IPv4 address; expected ...`
};

// Returns the environment variable's value, or nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// The process environment (getenv).
EnvLookup process_env();

// Parses and validates the whole contract. On success `errors` is empty; otherwise it holds one
// entry per invalid variable (every one of them, not just the first) and `config` is unset.
struct ConfigResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
};
ConfigResult parse_config(const EnvLookup& env);

// What `berth --help` documents: each variable, its default and its accepted form.
struct VariableDoc {
  std::string_view name;
  std::string_view default_value;  // as the user would write it; "" = unset / required
  std::string_view form;
  std::string_view help;
};
const std::vector<VariableDoc>& variable_docs();

// The effective configuration as NAME=value lines, in variable_docs() order; `env` marks which
// values were given rather than defaulted.
std::string describe_config(const Config& config, const EnvLookup& env);

// "bios", "uefi", "uefi-secure": VM_FIRMWARE's words.
std::string_view firmware_name(Firmware firmware);
// The firmware a word names (exactly, lower case); nullopt for any other word.
std::optional<Firmware> parse_firmware_name(std::string_view name);

// The least guest memory Secure Boot boots with (at 256 MiB OVMF's secure code and the signed
// kernel ran out of memory; 384 MiB was enough).
inline constexpr std::uint64_t kSecureBootMinMemory = 384ull * 1024 * 1024;

// ---- Value parsers, exposed for tests. Each returns nullopt when the text is not of its form.

// "2Gi", "1024M", "512k", "1073741824": binary multiples (K=Ki=1024 ...), plain number = bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);
// Canonical form of a size for display: the largest binary unit that divides it, e.g. "2Gi".
std::string format_size(std::uint64_t bytes);
std::optional<boost::asio::ip::address_v4> parse_ipv4(std::string_view text);
// A /64 of unicast addresses (not link-local, site-local, multicast, loopback, unspecified nor
// IPv4-mapped) with its host bits zero: "fd62:6572:7468::/64".
std::optional<boost::asio::ip::network_v6> parse_ipv6_prefix(std::string_view text);
// "127.0.0.1:9251", "[::1]:9251", "0.0.0.0:9251".
std::optional<Endpoint> parse_endpoint(std::string_view text);
std::string format_endpoint(const Endpoint& endpoint);
// "107:107": a numeric uid and gid, both 1-4294967294 (0 is root; 4294967295 is "no id").
std::optional<QemuUser> parse_qemu_user(std::string_view text);
// VM_DISKS: `name=/folder:SIZE[:raw|:qcow2]` (a file in a folder) or `name=/dev/...` (a block
// device), comma-separated. `errors` holds a sentence per problem, every one of them; `disks` is
// meaningful only when there are none.
struct DiskListResult {
  std::vector<DataDiskSpec> disks;
  std::vector<std::string> errors;
};
DiskListResult parse_disk_list(std::string_view text);
// The canonical VM_DISKS text of `disks` (what describe_config shows).
std::string format_disk_list(const std::vector<DataDiskSpec>& disks);

// yes/no words: 1/true/yes/on/y and 0/false/no/off/n, case-insensitive.
std::optional<bool> parse_bool(std::string_view text);

}  // namespace berth
