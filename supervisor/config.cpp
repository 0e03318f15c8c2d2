#include "supervisor/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "drive/image/source.hpp"
#include "qemu/shell_words.hpp"

namespace berth {
namespace {

namespace ip = boost::asio::ip;

constexpr std::uint64_t kMiB = 1024 * 1024;

const std::vector<VariableDoc> kDocs = {
    {"IMG_SOURCE", "", "http(s) URL or absolute path",
     "Base image (qcow2 or raw; .gz/.xz/.zst are decompressed), or an installer ISO: then the "
     "ISO is a bootable CD-ROM and the pet disk a blank disk of VM_DISK_SIZE. Required."},
    {"IMG_TARGET", "basename of IMG_SOURCE", "file name",
     "Name of the base image in the image cache (a compression suffix is dropped)."},
    {"IMG_CHECKSUM", "", "sha256:<64 hex digits>", "Checksum verified while the image streams in."},
    {"IMG_MAX_SIZE", "64Gi", "size, e.g. 20Gi (binary units)",
     "Largest download and decompressed image accepted; a larger one fails and nothing is cached."},
    {"IMG_LAZY", "no", "yes/no (1/true/yes/on, 0/false/no/off)",
     "First start boots while the base image downloads: QEMU reads it through berth, which "
     "fetches missing blocks on demand (http(s) sources with Range, not compressed); the "
     "checksum is checked when the download ends (the guest reads bytes before that)."},
    {"BERTH_CA_BUNDLE", "", "absolute path",
     "PEM file of CAs trusted for an https IMG_SOURCE, besides the system's."},
    {"VM_CDROM", "", "http(s) URL or absolute path",
     "An ISO attached as a bootable CD-ROM, booted when the disk is not bootable; fetched and "
     "cached like IMG_SOURCE, under its file name."},
    {"VM_CDROM_CHECKSUM", "", "sha256:<64 hex digits>",
     "Checksum of VM_CDROM, verified while it streams in."},
    {"VM_IP", "192.168.254.2", "an IPv4 address such as 192.168.254.2",
     "The VM's address on the private /30."},
    {"VM_GW", "192.168.254.1", "an IPv4 address such as 192.168.254.1",
     "The gateway (bridge) address on the same /30."},
    {"VM_IP6", "fd62:6572:7468::/64", "an IPv6 /64 prefix such as fd62:6572:7468::/64, or off",
     "The VM's private IPv6 prefix, used when the pod has IPv6: the guest gets the EUI-64 "
     "address of its MAC in it (SLAAC and DHCPv6), the bridge <prefix>::1. off: no IPv6 for the "
     "VM."},
    {"NO_VNC", "", "yes/no (1/true/yes/on, 0/false/no/off)",
     "Set: no VNC; TCP 5900 is forwarded to the VM like every other port."},
    {"BERTH_VNC_PASSWORD_FILE", "", "absolute path",
     "File holding the VNC password (only its first 8 characters count); required while VNC is "
     "on."},
    {"BERTH_VNC_INSECURE_NO_AUTH", "", "yes/no (1/true/yes/on, 0/false/no/off)",
     "UNSAFE: VNC without a password; whoever reaches the pod IP gets the screen and keyboard."},
    {"VM_CPUS", "1", "integer 1-255", "Number of vCPUs."},
    {"VM_MEMORY", "1Gi", "size, e.g. 1024M or 2Gi (binary units)", "Guest memory, at least 64Mi."},
    {"VM_DISK_SIZE", "", "size, e.g. 20Gi",
     "Grow the pet disk to this size (never shrinks); required when IMG_SOURCE is an ISO."},
    {"VM_DISKS", "", "name=/folder:SIZE[:raw],name=/dev/... (names [a-z0-9-], at most 20)",
     "Data disks on virtio-blk, serial = name (/dev/disk/by-id/virtio-<name> in the guest). A "
     "folder gets <name>.qcow2 (or .raw) made once at SIZE and grown, never shrunk; a block "
     "device is used raw with cache=none."},
    {"VM_ACCEL", "auto", "auto | kvm | tcg",
     "auto: KVM when a guest really runs under it, else TCG (logged)."},
    {"VM_TPM", "no", "yes/no (1/true/yes/on, 0/false/no/off)",
     "A TPM 2.0 (swtpm, supervised by berth); its state persists in "
     "BERTH_DISK_DIR/<hostname>.tpm. BERTH_DISK_DIR and BERTH_RUNTIME_DIR must have no comma."},
    {"VM_FIRMWARE", "bios", "bios | uefi | uefi-secure",
     "bios: SeaBIOS; uefi: OVMF; uefi-secure: OVMF with Secure Boot enforced (Microsoft's keys "
     "enrolled, SMM on; VM_MEMORY at least 384Mi). UEFI keeps its variables in "
     "<hostname>.efivars.fd next to the pet disk."},
    {"VM_EFIVARS_RESET", "", "yes/no (1/true/yes/on, 0/false/no/off)",
     "Accept a VM_FIRMWARE change on an existing pet disk: the old variables file is renamed "
     "aside (never deleted) and a fresh one made. Ignored while the firmware is unchanged."},
    {"BERTH_OVMF_DIR", "/usr/share/OVMF", "absolute path",
     "Where OVMF's files are (Debian's package ovmf): OVMF_CODE_4M.fd, OVMF_VARS_4M.fd, "
     "OVMF_CODE_4M.secboot.fd, OVMF_VARS_4M.ms.fd."},
    {"VM_MAC", "derived from the hostname", "unicast MAC, e.g. 52:54:00:12:34:56",
     "The guest's MAC address."},
    {"BERTH_IMAGE_DIR", "/var/lib/berth/images", "absolute path",
     "Image cache (shared by a node)."},
    {"BERTH_DISK_DIR", "/var/lib/berth/disks", "absolute path", "Pet disks (one volume per VM)."},
    {"BERTH_RUNTIME_DIR", "/run/berth", "absolute path", "Sockets and scratch files (QMP socket)."},
    {"BERTH_USERDATA", "/userdata", "absolute path",
     "User-data file, or ConfigMap directory holding the key `userdata`."},
    {"BERTH_METADATA", "/metadata", "absolute path",
     "Meta-data file (JSON or YAML), or ConfigMap directory holding the key `metadata`."},
    {"BERTH_NETWORKDATA", "/networkdata", "absolute path",
     "Network-data file, or ConfigMap directory holding the key `networkdata`."},
    {"BERTH_DRIVE_FORMAT", "configdrive", "configdrive | nocloud",
     "Config drive layout: ConfigDrive v2 (label config-2) or NoCloud (label cidata)."},
    {"BERTH_HEALTH_PORT", "9250", "TCP port 1-65535",
     "Probes and metrics on the pod IP; never forwarded to the VM."},
    {"BERTH_CONTROL_LISTEN", "127.0.0.1:9251", "address:port, [v6]:port",
     "Control API and QMP console (loopback: reach it with kubectl port-forward)."},
    {"BERTH_VIEWER", "yes", "yes/no (1/true/yes/on, 0/false/no/off)",
     "The live screen in the browser at /web/screen.html of the control listener (noVNC; QEMU's "
     "second VNC display on a unix socket, independent of NO_VNC)."},
    {"BERTH_WEB_DIR", "next to berth: <prefix>/share/berth/web, else <build>/web", "absolute path",
     "The browser viewers' files (/usr/local/share/berth/web in the image); must exist while "
     "BERTH_VIEWER is on."},
    {"BERTH_CONTROL_TOKEN_FILE", "", "absolute path",
     "File holding the bearer token of the control API; required off loopback."},
    {"BERTH_READY_TCP", "", "TCP port 1-65535",
     "Readiness also requires the guest to accept TCP connections on this port."},
    {"BERTH_READY_AGENT", "no", "yes/no (1/true/yes/on, 0/false/no/off)",
     "Readiness also requires the QEMU guest agent in the guest to answer guest-ping."},
    {"BERTH_FSFREEZE_TIMEOUT", "60", "seconds 1-3600",
     "The longest a freeze (POST /api/v1/fsfreeze) lasts: berth then thaws the guest's "
     "filesystems itself."},
    {"BERTH_SHUTDOWN_TIMEOUT", "25", "seconds 1-3600",
     "Time the guest gets to power off after SIGTERM before QEMU is quit."},
    {"BERTH_PHASE_BUDGETS", "", "phase=seconds,... e.g. image=300,disk=600",
     "Start-up phase time budgets over the defaults; /healthz fails when a phase outruns its own."},
    {"BERTH_QEMU_ARGS", "", "words, quoted like a shell (never run by one)",
     "Extra QEMU arguments appended to the command line."},
    {"BERTH_QEMU_USER", "107:107", "uid:gid, numbers other than 0",
     "The unprivileged user and group QEMU runs as, without capabilities (berth itself stays "
     "root)."},
    {"BERTH_LOG_FORMAT", "text", "text | json",
     "Log format on stderr; json also makes the serial console's stdout lines records."},
    {"BERTH_LOG_LEVEL", "info", "trace | debug | info | warn | error", "Log verbosity."},
};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

template <typename Int>
std::optional<Int> parse_int(std::string_view text) {
  Int value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end)
    return std::nullopt;
  return value;
}

const VariableDoc& doc(std::string_view name) {
  for (const auto& d : kDocs)
    if (d.name == name)
      return d;
  std::abort();  // a name missing from the table is a programming error
}

// Collects errors and reads variables, falling back to the documented defaults.
class Reader {
 public:
  explicit Reader(const EnvLookup& env) : env_(env) {}

  // The value given, or nullopt when unset or empty (empty counts as unset: Helm renders "" for
  // values the user left out).
  std::optional<std::string> given(std::string_view name) const {
    auto value = env_(name);
    if (value && value->empty())
      return std::nullopt;
    return value;
  }
  std::string get(std::string_view name) const {
    return given(name).value_or(std::string(doc(name).default_value));
  }

  void fail(std::string_view name, std::string_view value, std::string_view what) {
    errors_.push_back(
        {std::string(name), std::string(value),
         fmt::format("{}: \"{}\" {}; expected {}", name, value, what, doc(name).form)});
  }
  void fail_message(std::string_view name, std::string_view value, std::string message) {
    errors_.push_back({std::string(name), std::string(value), std::move(message)});
  }

  template <typename T, typename Parse>
  T parse(std::string_view name, Parse parse_fn, std::string_view what, T fallback = T{}) {
    const std::string text = get(name);
    auto value = parse_fn(text);
    if (!value) {
      fail(name, text, what);
      return fallback;
    }
    return *value;
  }

  std::filesystem::path absolute_path(std::string_view name) {
    const std::string text = get(name);
    if (text.empty() || text.front() != '/')
      fail(name, text, "is not an absolute path");
    return std::filesystem::path(text).lexically_normal();
  }

  std::vector<ConfigError> take_errors() { return std::move(errors_); }

 private:
  const EnvLookup& env_;
  std::vector<ConfigError> errors_;
};

bool is_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](unsigned char c) { return std::isxdigit(c) != 0; });
}

// A checksum variable: "sha256:<64 hex digits>", any case; the digits in lower case.
std::optional<std::string> parse_checksum(Reader& r, std::string_view name) {
  auto checksum = r.given(name);
  if (!checksum)
    return std::nullopt;
  const std::string text = lower(*checksum);
  constexpr std::string_view kPrefix = "sha256:";
  const std::string_view hex = std::string_view(text).substr(std::min(text.size(), kPrefix.size()));
  if (!text.starts_with(kPrefix) || hex.size() != 64 || !is_hex(hex)) {
    r.fail(name, *checksum, "is not a SHA-256 checksum");
    return std::nullopt;
  }
  return std::string(hex);
}

// VM_CDROM: a second source, an ISO attached as a bootable CD-ROM, cached under its file name.
void parse_cdrom(Reader& r, Config& c) {
  c.cdrom_sha256 = parse_checksum(r, "VM_CDROM_CHECKSUM");
  auto source = r.given("VM_CDROM");
  if (!source) {
    if (c.cdrom_sha256)
      r.fail_message("VM_CDROM_CHECKSUM", "sha256:" + *c.cdrom_sha256,
                     "VM_CDROM_CHECKSUM: set, but VM_CDROM is not");
    return;
  }
  auto parsed = drive::parse_image_source(*source);
  if (!parsed) {
    r.fail_message("VM_CDROM", *source, "VM_CDROM" + parsed.error().message.substr(10));
    return;
  }
  if (!drive::check_image_target(parsed->default_target)) {
    r.fail_message("VM_CDROM", *source,
                   fmt::format("VM_CDROM: \"{}\" does not end in a file name (the ISO's name in "
                               "the image cache)",
                               *source));
    return;
  }
  if (parsed->default_target == c.img_target && *source != c.img_source) {
    r.fail_message("VM_CDROM", *source,
                   fmt::format("VM_CDROM: \"{}\" would be cached as {}, the name IMG_SOURCE's "
                               "image has in the cache; set IMG_TARGET to another name",
                               *source, c.img_target));
    return;
  }
  c.cdrom = Config::Cdrom{*source, parsed->default_target};
}

void parse_image(Reader& r, Config& c) {
  auto source = r.given("IMG_SOURCE");
  std::string default_target;
  if (!source) {
    r.fail_message("IMG_SOURCE", "",
                   "IMG_SOURCE: not set; expected an http(s) URL or an absolute path of the base "
                   "image, e.g. IMG_SOURCE=https://example.org/disk.qcow2");
  } else if (auto parsed = drive::parse_image_source(*source); !parsed) {
    r.fail_message("IMG_SOURCE", *source, parsed.error().message);
  } else {
    c.img_source = *source;
    c.img_source_kind =
        parsed->kind == drive::ImageSourceKind::kUrl ? SourceKind::kUrl : SourceKind::kPath;
    default_target = parsed->default_target;
  }

  if (auto target = r.given("IMG_TARGET")) {
    if (auto ok = drive::check_image_target(*target); !ok)
      r.fail_message("IMG_TARGET", *target, ok.error().message);
    else
      c.img_target = *target;
  } else if (!c.img_source.empty()) {
    c.img_target = default_target;
    if (!drive::check_image_target(c.img_target))
      r.fail_message("IMG_SOURCE", c.img_source,
                     fmt::format("IMG_SOURCE: \"{}\" does not end in a file name; set IMG_TARGET "
                                 "to the name the image should have in the cache",
                                 c.img_source));
  }
  auto positive_size = [](std::string_view text) {
    auto bytes = parse_size(text);
    return bytes && *bytes > 0 ? bytes : std::nullopt;
  };
  c.img_max_size = r.parse<std::uint64_t>("IMG_MAX_SIZE", positive_size, "is not a size above zero",
                                          drive::kDefaultMaxImageSize);

  if (auto bundle = r.given("BERTH_CA_BUNDLE")) {
    if (bundle->front() != '/')
      r.fail("BERTH_CA_BUNDLE", *bundle, "is not an absolute path");
    else
      c.ca_bundle = *bundle;
  }
  c.img_sha256 = parse_checksum(r, "IMG_CHECKSUM");
  c.img_lazy = r.parse<bool>("IMG_LAZY", parse_bool, "is not a yes/no value");
  parse_cdrom(r, c);
}

// NO_VNC, and VNC's credential: a password file unless the unsafe opt-out is set.
void parse_vnc(Reader& r, Config& c) {
  if (auto no_vnc = r.given("NO_VNC")) {
    auto value = parse_bool(*no_vnc);
    if (!value)
      r.fail("NO_VNC", *no_vnc, "is not a yes/no value");
    else
      c.vnc = !*value;
  }
  bool insecure = false;
  const auto no_auth = r.given("BERTH_VNC_INSECURE_NO_AUTH");
  if (no_auth) {
    auto value = parse_bool(*no_auth);
    if (!value)
      r.fail("BERTH_VNC_INSECURE_NO_AUTH", *no_auth, "is not a yes/no value");
    else
      insecure = *value;
  }
  if (auto file = r.given("BERTH_VNC_PASSWORD_FILE")) {
    if (file->front() != '/')
      r.fail("BERTH_VNC_PASSWORD_FILE", *file, "is not an absolute path");
    else
      c.vnc_password_file = std::filesystem::path(*file).lexically_normal();
  }
  if (!c.vnc)
    return;  // neither the file nor the opt-out matters without VNC
  if (insecure && c.vnc_password_file)
    r.fail_message("BERTH_VNC_INSECURE_NO_AUTH", *no_auth,
                   "BERTH_VNC_INSECURE_NO_AUTH: set together with BERTH_VNC_PASSWORD_FILE; "
                   "expected one of them: the password file (safe), or no authentication");
  else if (insecure)
    c.vnc_auth = VncAuth::kNone;
  else if (!c.vnc_password_file && !r.given("BERTH_VNC_PASSWORD_FILE"))
    r.fail_message("BERTH_VNC_PASSWORD_FILE", "",
                   "BERTH_VNC_PASSWORD_FILE: not set, but VNC (TCP 5900 on the pod IP) needs a "
                   "password; expected the path of a file holding it (e.g. a mounted Secret), "
                   "or NO_VNC=1 for no VNC at all (BERTH_VNC_INSECURE_NO_AUTH=1 lets anyone who "
                   "reaches the pod IP in without one: unsafe)");
}

// BERTH_VIEWER and where its files are. Whether the folder exists is checked at start (the parser
// reads no files).
void parse_viewer(Reader& r, Config& c) {
  c.viewer = r.parse<bool>("BERTH_VIEWER", parse_bool, "is not a yes/no value", true);
  if (r.given("BERTH_WEB_DIR"))
    c.web_dir = r.absolute_path("BERTH_WEB_DIR");
}

void parse_network(Reader& r, Config& c) {
  c.vm_ip = r.parse<ip::address_v4>("VM_IP", parse_ipv4, "is not an IPv4 address");
  c.vm_gw = r.parse<ip::address_v4>("VM_GW", parse_ipv4, "is not an IPv4 address");
  if (!c.vm_ip.is_unspecified() && !c.vm_gw.is_unspecified()) {
    const auto ipn = c.vm_ip.to_uint(), gwn = c.vm_gw.to_uint();
    const bool same_net = (ipn & ~3u) == (gwn & ~3u);
    const bool hosts = (ipn & 3u) != 0 && (ipn & 3u) != 3 && (gwn & 3u) != 0 && (gwn & 3u) != 3;
    if (!same_net || !hosts || ipn == gwn) {
      r.fail_message(
          "VM_IP", c.vm_ip.to_string(),
          fmt::format("VM_IP/VM_GW: {} and {} are not the two host addresses of one /30; "
                      "expected e.g. VM_IP=192.168.254.2 VM_GW=192.168.254.1",
                      c.vm_ip.to_string(), c.vm_gw.to_string()));
    }
  }
  const std::string ip6 = r.get("VM_IP6");
  if (ip6 == "off") {
    c.vm_ip6.reset();
  } else if (auto prefix = parse_ipv6_prefix(ip6)) {
    c.vm_ip6 = *prefix;
  } else {
    r.fail("VM_IP6", ip6, "is not a /64 prefix of unicast addresses with its host bits zero");
    c.vm_ip6.reset();
  }
  if (auto mac_text = r.given("VM_MAC")) {
    auto mac = parse_mac(*mac_text);
    if (!mac)
      r.fail("VM_MAC", *mac_text, "is not a MAC address");
    else if (((*mac)[0] & 1) != 0 || *mac == MacAddress{})
      r.fail("VM_MAC", *mac_text, "is a multicast or zero address");
    else
      c.vm_mac = mac;
  }
  c.health_port = r.parse<std::uint16_t>(
      "BERTH_HEALTH_PORT",
      [](std::string_view t) {
        auto p = parse_int<std::uint16_t>(t);
        return p && *p != 0 ? p : std::nullopt;
      },
      "is not a TCP port");
  c.control_listen =
      r.parse<Endpoint>("BERTH_CONTROL_LISTEN", parse_endpoint, "is not an address:port");
  if (auto token = r.given("BERTH_CONTROL_TOKEN_FILE")) {
    if (token->front() != '/')
      r.fail("BERTH_CONTROL_TOKEN_FILE", *token, "is not an absolute path");
    else
      c.control_token_file = *token;
  }
  if (!c.control_listen.address.is_unspecified() || c.control_listen.port != 0) {
    if (!c.control_listen.address.is_loopback() && !c.control_token_file)
      r.fail_message(
          "BERTH_CONTROL_LISTEN", format_endpoint(c.control_listen),
          fmt::format("BERTH_CONTROL_LISTEN: \"{}\" is not a loopback address, so the "
                      "control API needs a token: set BERTH_CONTROL_TOKEN_FILE to a file "
                      "holding it, or listen on 127.0.0.1",
                      format_endpoint(c.control_listen)));
  }
  if (auto ready = r.given("BERTH_READY_TCP")) {
    auto port = parse_int<std::uint16_t>(*ready);
    if (!port || *port == 0)
      r.fail("BERTH_READY_TCP", *ready, "is not a TCP port");
    else
      c.ready_tcp = port;
  }
  if (c.vnc && c.health_port == 5900)
    r.fail_message(
        "BERTH_HEALTH_PORT", "5900",
        "BERTH_HEALTH_PORT: \"5900\" is VNC's port; choose another port or set NO_VNC=1");
  if (c.health_port != 0 && c.health_port == c.control_listen.port)
    r.fail_message("BERTH_CONTROL_LISTEN", format_endpoint(c.control_listen),
                   fmt::format("BERTH_CONTROL_LISTEN: port {} is also BERTH_HEALTH_PORT; expected "
                               "two different ports",
                               c.health_port));
}

void parse_machine(Reader& r, Config& c) {
  c.vm_cpus = r.parse<unsigned>(
      "VM_CPUS",
      [](std::string_view t) {
        auto n = parse_int<unsigned>(t);
        return n && *n >= 1 && *n <= 255 ? n : std::nullopt;
      },
      "is not a vCPU count");

  const std::string memory = r.get("VM_MEMORY");
  if (auto bytes = parse_size(memory); !bytes) {
    r.fail("VM_MEMORY", memory, "is not a size");
  } else if (*bytes < 64 * kMiB) {
    r.fail_message("VM_MEMORY", memory,
                   fmt::format("VM_MEMORY: \"{}\" is {} bytes, below the minimum 64Mi; a plain "
                               "number means bytes (did you mean {}M?)",
                               memory, *bytes, memory));
  } else if (*bytes % kMiB != 0) {
    r.fail("VM_MEMORY", memory, "is not a whole number of MiB");
  } else {
    c.vm_memory = *bytes;
  }

  if (auto disk = r.given("VM_DISK_SIZE")) {
    auto bytes = parse_size(*disk);
    if (!bytes || *bytes < kMiB)
      r.fail("VM_DISK_SIZE", *disk, "is not a size of at least 1Mi");
    else
      c.vm_disk_size = bytes;
  }

  if (auto disks = r.given("VM_DISKS")) {
    auto parsed = parse_disk_list(*disks);
    for (auto& error : parsed.errors)
      r.fail_message("VM_DISKS", *disks, "VM_DISKS: " + error);
    c.vm_disks = std::move(parsed.disks);
  }

  const std::string accel = lower(r.get("VM_ACCEL"));
  if (accel == "auto")
    c.vm_accel = Accel::kAuto;
  else if (accel == "kvm")
    c.vm_accel = Accel::kKvm;
  else if (accel == "tcg")
    c.vm_accel = Accel::kTcg;
  else
    r.fail("VM_ACCEL", r.get("VM_ACCEL"), "is not an accelerator");

  const std::string qemu_args = r.get("BERTH_QEMU_ARGS");
  if (auto words = qemu::split_shell_words(qemu_args))
    c.qemu_args = std::move(*words);
  else
    r.fail("BERTH_QEMU_ARGS", qemu_args, "has an unbalanced quote or a trailing backslash");

  if (const std::string user = r.get("BERTH_QEMU_USER"); parse_qemu_user(user))
    c.qemu_user = *parse_qemu_user(user);
  else
    r.fail_message("BERTH_QEMU_USER", user,
                   fmt::format("BERTH_QEMU_USER: \"{}\" is not a uid:gid pair of numbers other "
                               "than 0 (QEMU never runs as root); expected e.g. 107:107",
                               user));

  auto seconds_1_to_3600 = [](std::string_view t) {
    auto n = parse_int<unsigned>(t);
    return n && *n >= 1 && *n <= 3600 ? n : std::nullopt;
  };
  c.shutdown_timeout = std::chrono::seconds(
      r.parse<unsigned>("BERTH_SHUTDOWN_TIMEOUT", seconds_1_to_3600, "is not a number of seconds"));
  c.fsfreeze_timeout = std::chrono::seconds(
      r.parse<unsigned>("BERTH_FSFREEZE_TIMEOUT", seconds_1_to_3600, "is not a number of seconds"));
  c.ready_agent = r.parse<bool>("BERTH_READY_AGENT", parse_bool, "is not a yes/no value");

  if (auto budgets = r.given("BERTH_PHASE_BUDGETS")) {
    if (auto parsed = parse_phase_budgets(*budgets); parsed)
      c.phase_budgets = *parsed;
    else
      r.fail_message("BERTH_PHASE_BUDGETS", *budgets,
                     "BERTH_PHASE_BUDGETS: " + parsed.error().message);
  }
}

// VM_TPM: whether the VM gets a TPM. That swtpm is installed is checked at start (main.cpp).
void parse_tpm(Reader& r, Config& c) {
  const std::string text = r.get("VM_TPM");
  if (auto value = parse_bool(text))
    c.vm_tpm = *value;
  else
    r.fail("VM_TPM", text, "is not a yes/no value");
}

// VM_FIRMWARE, VM_EFIVARS_RESET, BERTH_OVMF_DIR; after parse_machine (Secure Boot's memory).
void parse_firmware(Reader& r, Config& c) {
  const std::string firmware = lower(r.get("VM_FIRMWARE"));
  if (auto parsed = parse_firmware_name(firmware))
    c.vm_firmware = *parsed;
  else if (firmware == "secure" || firmware == "secureboot" || firmware == "secure-boot")
    r.fail_message("VM_FIRMWARE", r.get("VM_FIRMWARE"),
                   fmt::format("VM_FIRMWARE: \"{}\": Secure Boot is a UEFI feature; expected "
                               "VM_FIRMWARE=uefi-secure (or bios | uefi)",
                               r.get("VM_FIRMWARE")));
  else
    r.fail("VM_FIRMWARE", r.get("VM_FIRMWARE"), "is not a firmware");
  if (c.vm_firmware == Firmware::kUefiSecure && c.vm_memory != 0
      && c.vm_memory < kSecureBootMinMemory)
    r.fail_message("VM_MEMORY", format_size(c.vm_memory),
                   fmt::format("VM_MEMORY: \"{}\" is too little for VM_FIRMWARE=uefi-secure, "
                               "which needs at least 384Mi (OVMF's Secure Boot and the signed "
                               "boot chain run out of memory at 256Mi); expected VM_MEMORY=384Mi "
                               "or more, or VM_FIRMWARE=uefi",
                               format_size(c.vm_memory)));
  if (auto reset = r.given("VM_EFIVARS_RESET")) {
    if (auto value = parse_bool(*reset))
      c.efivars_reset = *value;
    else
      r.fail("VM_EFIVARS_RESET", *reset, "is not a yes/no value");
  }
  c.ovmf_dir = r.absolute_path("BERTH_OVMF_DIR");
}

void parse_files(Reader& r, Config& c) {
  c.image_dir = r.absolute_path("BERTH_IMAGE_DIR");
  c.disk_dir = r.absolute_path("BERTH_DISK_DIR");
  c.runtime_dir = r.absolute_path("BERTH_RUNTIME_DIR");
  c.userdata = r.absolute_path("BERTH_USERDATA");
  c.metadata = r.absolute_path("BERTH_METADATA");
  c.networkdata = r.absolute_path("BERTH_NETWORKDATA");
  const std::string format = lower(r.get("BERTH_DRIVE_FORMAT"));
  if (format == "configdrive")
    c.drive_format = DriveFormat::kConfigDrive;
  else if (format == "nocloud")
    c.drive_format = DriveFormat::kNoCloud;
  else
    r.fail("BERTH_DRIVE_FORMAT", r.get("BERTH_DRIVE_FORMAT"), "is not a drive format");
}

void parse_logging(Reader& r, Config& c) {
  const std::string format = lower(r.get("BERTH_LOG_FORMAT"));
  if (format == "text")
    c.log_format = LogFormat::kText;
  else if (format == "json")
    c.log_format = LogFormat::kJson;
  else
    r.fail("BERTH_LOG_FORMAT", r.get("BERTH_LOG_FORMAT"), "is not a log format");

  static constexpr std::pair<std::string_view, LogLevel> kLevels[] = {{"trace", LogLevel::kTrace},
                                                                      {"debug", LogLevel::kDebug},
                                                                      {"info", LogLevel::kInfo},
                                                                      {"warn", LogLevel::kWarn},
                                                                      {"error", LogLevel::kError}};
  const std::string level = lower(r.get("BERTH_LOG_LEVEL"));
  auto it = std::find_if(std::begin(kLevels), std::end(kLevels),
                         [&](const auto& entry) { return entry.first == level; });
  if (it == std::end(kLevels))
    r.fail("BERTH_LOG_LEVEL", r.get("BERTH_LOG_LEVEL"), "is not a log level");
  else
    c.log_level = it->second;
}

std::string_view name_of(Accel accel) {
  switch (accel) {
    case Accel::kAuto:
      return "auto";
    case Accel::kKvm:
      return "kvm";
    case Accel::kTcg:
      return "tcg";
  }
  return "?";
}

// swtpm's options (--tpmstate dir=..., --ctrl ...,path=...) are comma-separated with no way to
// escape a comma (swtpm 0.7 splits on every one; QEMU's doubled `,,` is not understood), so
// VM_TPM refuses the folders its state and socket live in when they have one. QEMU's own options
// double commas (qemu/command_line.cpp) and take any path.
void check_tpm_paths(Reader& r, const Config& c) {
  if (!c.vm_tpm)
    return;
  for (const auto& [name, folder] : {std::pair{"BERTH_DISK_DIR", c.disk_dir.string()},
                                     std::pair{"BERTH_RUNTIME_DIR", c.runtime_dir.string()}})
    if (folder.find(',') != std::string::npos)
      r.fail_message(name, folder,
                     fmt::format("{}: \"{}\" has a comma, which swtpm (VM_TPM) cannot take in "
                                 "its state folder or socket path (its options are "
                                 "comma-separated, with no escape); expected a path without a "
                                 "comma, or VM_TPM=no",
                                 name, folder));
}

}  // namespace

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr)
      return std::nullopt;
    return std::string(value);
  };
}

const std::vector<VariableDoc>& variable_docs() {
  return kDocs;
}

ConfigResult parse_config(const EnvLookup& env) {
  Reader reader(env);
  Config config;
  parse_image(reader, config);
  parse_vnc(reader, config);
  parse_viewer(reader, config);
  parse_network(reader, config);
  parse_machine(reader, config);
  parse_tpm(reader, config);
  parse_firmware(reader, config);
  parse_files(reader, config);
  check_tpm_paths(reader, config);
  parse_logging(reader, config);
  auto errors = reader.take_errors();
  if (!errors.empty())
    return {std::nullopt, std::move(errors)};
  return {std::move(config), {}};
}

std::string describe_config(const Config& c, const EnvLookup& env) {
  const std::vector<std::pair<std::string_view, std::string>> values = {
      {"IMG_SOURCE", c.img_source},
      {"IMG_TARGET", c.img_target},
      {"IMG_CHECKSUM", c.img_sha256 ? "sha256:" + *c.img_sha256 : ""},
      {"IMG_MAX_SIZE", format_size(c.img_max_size)},
      {"IMG_LAZY", c.img_lazy ? "yes" : "no"},
      {"BERTH_CA_BUNDLE", c.ca_bundle ? c.ca_bundle->string() : ""},
      {"VM_CDROM", c.cdrom ? c.cdrom->source : ""},
      {"VM_CDROM_CHECKSUM", c.cdrom_sha256 ? "sha256:" + *c.cdrom_sha256 : ""},
      {"VM_IP", c.vm_ip.to_string()},
      {"VM_GW", c.vm_gw.to_string()},
      {"VM_IP6", c.vm_ip6 ? c.vm_ip6->to_string() : "off"},
      {"NO_VNC", c.vnc ? "no" : "yes"},
      {"BERTH_VNC_PASSWORD_FILE", c.vnc_password_file ? c.vnc_password_file->string() : ""},
      {"BERTH_VNC_INSECURE_NO_AUTH", c.vnc_auth == VncAuth::kNone ? "yes" : "no"},
      {"VM_CPUS", std::to_string(c.vm_cpus)},
      {"VM_MEMORY", format_size(c.vm_memory)},
      {"VM_DISK_SIZE", c.vm_disk_size ? format_size(*c.vm_disk_size) : ""},
      {"VM_DISKS", format_disk_list(c.vm_disks)},
      {"VM_ACCEL", std::string(name_of(c.vm_accel))},
      {"VM_TPM", c.vm_tpm ? "yes" : "no"},
      {"VM_FIRMWARE", std::string(firmware_name(c.vm_firmware))},
      {"VM_EFIVARS_RESET", c.efivars_reset ? "yes" : "no"},
      {"BERTH_OVMF_DIR", c.ovmf_dir.string()},
      {"VM_MAC", c.vm_mac ? format_mac(*c.vm_mac) : ""},
      {"BERTH_IMAGE_DIR", c.image_dir.string()},
      {"BERTH_DISK_DIR", c.disk_dir.string()},
      {"BERTH_RUNTIME_DIR", c.runtime_dir.string()},
      {"BERTH_USERDATA", c.userdata.string()},
      {"BERTH_METADATA", c.metadata.string()},
      {"BERTH_NETWORKDATA", c.networkdata.string()},
      {"BERTH_DRIVE_FORMAT",
       c.drive_format == DriveFormat::kConfigDrive ? "configdrive" : "nocloud"},
      {"BERTH_HEALTH_PORT", std::to_string(c.health_port)},
      {"BERTH_CONTROL_LISTEN", format_endpoint(c.control_listen)},
      {"BERTH_VIEWER", c.viewer ? "yes" : "no"},
      {"BERTH_WEB_DIR", c.web_dir ? c.web_dir->string() : ""},
      {"BERTH_CONTROL_TOKEN_FILE", c.control_token_file ? c.control_token_file->string() : ""},
      {"BERTH_READY_TCP", c.ready_tcp ? std::to_string(*c.ready_tcp) : ""},
      {"BERTH_READY_AGENT", c.ready_agent ? "yes" : "no"},
      {"BERTH_FSFREEZE_TIMEOUT", std::to_string(c.fsfreeze_timeout.count())},
      {"BERTH_SHUTDOWN_TIMEOUT", std::to_string(c.shutdown_timeout.count())},
      {"BERTH_PHASE_BUDGETS", format_phase_budgets(c.phase_budgets)},
      {"BERTH_QEMU_ARGS", qemu::quote_command(c.qemu_args)},
      {"BERTH_QEMU_USER", fmt::format("{}:{}", c.qemu_user.uid, c.qemu_user.gid)},
      {"BERTH_LOG_FORMAT", c.log_format == LogFormat::kJson ? "json" : "text"},
      {"BERTH_LOG_LEVEL", std::string(std::array{"trace", "debug", "info", "warn",
                                                 "error"}[static_cast<int>(c.log_level)])},
  };
  std::string out;
  for (const auto& [name, value] : values) {
    const auto given = env(name);
    const bool set = given && !given->empty();
    const std::string_view fallback = doc(name).default_value;
    std::string origin = set ? "set" : fallback.empty() ? "unset" : "default";
    if (!set && name == "VM_MAC")
      origin = "derived from the hostname at start";
    if (!set && name == "IMG_TARGET")
      origin = "from IMG_SOURCE";
    out += fmt::format("{}={}  # {}\n", name, qemu::quote_shell_word(value), origin);
  }
  return out;
}

std::string_view firmware_name(Firmware firmware) {
  static constexpr std::array<std::string_view, 3> kNames = {"bios", "uefi", "uefi-secure"};
  return kNames.at(static_cast<std::size_t>(firmware));
}

std::optional<Firmware> parse_firmware_name(std::string_view name) {
  for (auto firmware : {Firmware::kBios, Firmware::kUefi, Firmware::kUefiSecure})
    if (firmware_name(firmware) == name)
      return firmware;
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  auto number = parse_int<std::uint64_t>(text.substr(0, digits));
  if (!number)
    return std::nullopt;
  const std::string unit = lower(text.substr(digits));
  static constexpr std::pair<std::string_view, unsigned> kUnits[] = {
      {"", 0},    {"b", 0},    {"k", 10},  {"ki", 10}, {"kib", 10}, {"m", 20},
      {"mi", 20}, {"mib", 20}, {"g", 30},  {"gi", 30}, {"gib", 30}, {"t", 40},
      {"ti", 40}, {"tib", 40}, {"kb", 10}, {"mb", 20}, {"gb", 30},  {"tb", 40}};
  for (const auto& [suffix, shift] : kUnits) {
    if (unit != suffix)
      continue;
    if (shift > 0 && *number > (UINT64_MAX >> shift))
      return std::nullopt;
    return *number << shift;
  }
  return std::nullopt;
}

namespace {

bool valid_disk_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxDiskName && name.front() != '-'
         && std::all_of(name.begin(), name.end(), [](unsigned char ch) {
              return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
            });
}

// The options after a folder's path: a size and a format word, in any order, each once.
void parse_disk_options(std::string_view options, DataDiskSpec& disk,
                        std::vector<std::string>& errors) {
  bool sized = false;
  bool formatted = false;
  for (std::size_t start = 0; start <= options.size();) {
    const auto end = std::min(options.find(':', start), options.size());
    const auto word = options.substr(start, end - start);
    start = end + 1;
    if (word == "raw" || word == "qcow2") {
      if (formatted)
        errors.push_back(fmt::format("disk \"{}\": more than one format", disk.name));
      formatted = true;
      disk.format = word == "raw" ? DataDiskFormat::kRaw : DataDiskFormat::kQcow2;
    } else if (auto bytes = parse_size(word);
               bytes && !sized && *bytes >= kMiB && *bytes <= (std::uint64_t{1} << 50)) {
      sized = true;
      disk.size = (*bytes + 511) / 512 * 512;
    } else {
      errors.push_back(fmt::format(
          "disk \"{}\": \"{}\" is neither a size from 1Mi to 1Pi (given once) nor raw/qcow2",
          disk.name, word));
    }
  }
  if (!sized)
    errors.push_back(fmt::format(
        "disk \"{}\": a folder needs a size, e.g. {}={}:10Gi (a block device has no options)",
        disk.name, disk.name, disk.path.string()));
}

// One `name=/path[:options]` entry; nullopt (with its errors added) when it is not valid.
std::optional<DataDiskSpec> parse_disk_entry(std::string_view entry,
                                             std::vector<std::string>& errors) {
  const auto equals = entry.find('=');
  if (equals == std::string_view::npos) {
    errors.push_back(fmt::format("\"{}\" is not name=/path[:options]", entry));
    return std::nullopt;
  }
  DataDiskSpec disk;
  disk.name = std::string(entry.substr(0, equals));
  const std::size_t before = errors.size();
  if (!valid_disk_name(disk.name))
    errors.push_back(fmt::format(
        "disk name \"{}\" must be 1-{} characters of a-z, 0-9 and - (not first): it is the "
        "virtio serial number",
        disk.name, kMaxDiskName));
  const auto rest = entry.substr(equals + 1);
  const auto colon = std::min(rest.find(':'), rest.size());
  const auto path = rest.substr(0, colon);
  const std::filesystem::path given(path);
  disk.path = given.lexically_normal();
  if (!path.starts_with('/') || path.find('=') != std::string_view::npos
      || std::find(given.begin(), given.end(), "..") != given.end() || disk.path == "/")
    errors.push_back(
        fmt::format("disk \"{}\": \"{}\" is not an absolute path (without '..', ':', '=' or ',')",
                    disk.name, path));
  disk.kind = colon == rest.size() ? DataDiskKind::kBlock : DataDiskKind::kFile;
  if (disk.kind == DataDiskKind::kFile)
    parse_disk_options(rest.substr(colon + 1), disk, errors);
  if (errors.size() != before)
    return std::nullopt;
  return disk;
}

}  // namespace

DiskListResult parse_disk_list(std::string_view text) {
  DiskListResult result;
  std::size_t count = 0;
  for (std::size_t start = 0; start <= text.size();) {
    const auto end = std::min(text.find(',', start), text.size());
    const auto entry = text.substr(start, end - start);
    start = end + 1;
    if (entry.empty() && end == text.size() && count > 0)
      break;  // a trailing comma
    ++count;
    auto disk = parse_disk_entry(entry, result.errors);
    if (!disk)
      continue;
    for (const auto& other : result.disks) {
      if (other.name == disk->name)
        result.errors.push_back(fmt::format("disk name \"{}\" is used twice", disk->name));
      else if (other.path == disk->path && disk->kind == DataDiskKind::kBlock)
        result.errors.push_back(fmt::format("disks \"{}\" and \"{}\" are both {}", other.name,
                                            disk->name, disk->path.string()));
    }
    result.disks.push_back(std::move(*disk));
  }
  if (count > kMaxDataDisks)
    result.errors.push_back(
        fmt::format("{} disks given; at most {} are supported", count, kMaxDataDisks));
  if (!result.errors.empty())
    result.disks.clear();
  return result;
}

std::string format_disk_list(const std::vector<DataDiskSpec>& disks) {
  std::string out;
  for (const auto& disk : disks) {
    if (!out.empty())
      out += ',';
    out += disk.name + "=" + disk.path.string();
    if (disk.kind == DataDiskKind::kFile)
      out += ":" + format_size(disk.size) + (disk.format == DataDiskFormat::kRaw ? ":raw" : "");
  }
  return out;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::pair<std::string_view, unsigned> kUnits[] = {
      {"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}};
  for (const auto& [suffix, shift] : kUnits) {
    const std::uint64_t unit = std::uint64_t{1} << shift;
    if (bytes != 0 && bytes % unit == 0)
      return fmt::format("{}{}", bytes / unit, suffix);
  }
  return std::to_string(bytes);
}

std::optional<ip::address_v4> parse_ipv4(std::string_view text) {
  boost::system::error_code ec;
  auto address = ip::make_address_v4(std::string(text), ec);
  if (ec || address.is_unspecified())
    return std::nullopt;
  return address;
}

std::optional<ip::network_v6> parse_ipv6_prefix(std::string_view text) {
  boost::system::error_code ec;
  const auto prefix = ip::make_network_v6(std::string(text), ec);
  if (ec || prefix.prefix_length() != 64 || prefix.canonical() != prefix)
    return std::nullopt;
  const auto address = prefix.address();
  if (address.is_link_local() || address.is_multicast() || address.is_loopback()
      || address.is_unspecified() || address.is_v4_mapped() || address.is_site_local())
    return std::nullopt;
  return prefix;
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host, port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return std::nullopt;  // v6 needs brackets
  }
  boost::system::error_code ec;
  auto address = ip::make_address(std::string(host), ec);
  auto number = parse_int<std::uint16_t>(port);
  if (ec || !number || *number == 0)
    return std::nullopt;
  return Endpoint{address, *number};
}

std::string format_endpoint(const Endpoint& endpoint) {
  if (endpoint.address.is_v6())
    return fmt::format("[{}]:{}", endpoint.address.to_string(), endpoint.port);
  return fmt::format("{}:{}", endpoint.address.to_string(), endpoint.port);
}

std::optional<QemuUser> parse_qemu_user(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return std::nullopt;
  auto uid = parse_int<std::uint32_t>(text.substr(0, colon));
  auto gid = parse_int<std::uint32_t>(text.substr(colon + 1));
  auto usable = [](std::optional<std::uint32_t> id) { return id && *id != 0 && *id != UINT32_MAX; };
  if (!usable(uid) || !usable(gid))
    return std::nullopt;
  return QemuUser{*uid, *gid};
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string word = lower(text);
  for (std::string_view yes : {"1", "true", "yes", "on", "y"})
    if (word == yes)
      return true;
  for (std::string_view no : {"0", "false", "no", "off", "n"})
    if (word == no)
      return false;
  return std::nullopt;
}

}  // namespace berth
