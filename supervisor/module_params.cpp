#include "supervisor/module_params.hpp"

namespace berth {

MacAddress mac_for(const std::string& hostname) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (unsigned char c : hostname)
    hash = (hash ^ c) * 16777619u;
  return {0x52,
          0x54,
          0x00,
          static_cast<std::uint8_t>(hash >> 16),
          static_cast<std::uint8_t>(hash >> 8),
          static_cast<std::uint8_t>(hash)};
}

std::filesystem::path lazy_socket_path(const Config& config) {
  return config.runtime_dir / "image.nbd";
}

std::filesystem::path qmp_socket_path(const Config& config) {
  return config.runtime_dir / "qmp.sock";
}

std::filesystem::path agent_socket_path(const Config& config) {
  return config.runtime_dir / "agent.sock";
}

std::filesystem::path swtpm_socket_path(const Config& config) {
  return config.runtime_dir / "swtpm" / "swtpm.sock";
}

std::filesystem::path tpm_state_dir(const Config& config, const std::string& hostname) {
  return config.disk_dir / (hostname + ".tpm");
}

std::filesystem::path control_token_path(const Config& config) {
  return config.runtime_dir / "control-token";
}

std::filesystem::path viewer_dir(const Config& config) {
  return config.runtime_dir / "viewer";
}

std::filesystem::path viewer_socket_path(const Config& config) {
  return viewer_dir(config) / "vnc.sock";
}

std::vector<std::filesystem::path> web_dir_candidates(const Config& config,
                                                      const std::filesystem::path& exe) {
  if (config.web_dir)
    return {*config.web_dir};
  const auto prefix = exe.parent_path().parent_path();
  return {(prefix / "share" / "berth" / "web").lexically_normal(),
          (prefix / "web").lexically_normal()};
}

drive::FetchParams fetch_params(const Config& config) {
  drive::FetchParams fetch;
  fetch.source = config.img_source;
  fetch.image_dir = config.image_dir;
  fetch.target = config.img_target;
  fetch.sha256 = config.img_sha256;
  fetch.max_size = config.img_max_size;
  fetch.ca_file = config.ca_bundle;
  return fetch;
}

drive::LazyParams lazy_params(const Config& config) {
  drive::LazyParams lazy;
  lazy.url = config.img_source;
  lazy.image_dir = config.image_dir;
  lazy.target = config.img_target;
  lazy.sha256 = config.img_sha256;
  lazy.http.ca_file = config.ca_bundle;
  return lazy;
}

drive::FetchParams cdrom_fetch_params(const Config& config) {
  drive::FetchParams fetch = fetch_params(config);
  fetch.source = config.cdrom->source;
  fetch.target = config.cdrom->target;
  fetch.sha256 = config.cdrom_sha256;
  return fetch;
}

drive::PetDiskParams pet_disk_params(const Config& config, const std::string& hostname,
                                     const drive::CachedImage& image, bool image_is_iso) {
  drive::PetDiskParams pet;
  pet.disk_dir = config.disk_dir;
  pet.hostname = hostname;
  pet.base = image.path;
  pet.base_format = image.format;
  pet.base_sha256 = image.sha256;
  pet.size = config.vm_disk_size;
  if (image_is_iso)
    pet.install = drive::InstallMedium{image.path, image.sha256};
  return pet;
}

drive::ConfigDriveParams config_drive_params(const Config& config, const std::string& hostname) {
  drive::ConfigDriveParams params;
  params.layout = config.drive_format == DriveFormat::kNoCloud ? drive::DriveLayout::kNoCloud
                                                               : drive::DriveLayout::kConfigDrive;
  params.userdata = config.userdata;
  params.metadata = config.metadata;
  params.networkdata = config.networkdata;
  params.hostname = hostname;
  params.iso = config.runtime_dir / "config-drive.iso";
  return params;
}

std::optional<net::NatSpec6> ipv6_spec(const Config& config, const net::Pod& pod, MacAddress mac) {
  if (!pod.ipv6 || !config.vm_ip6)
    return std::nullopt;
  const auto prefix = config.vm_ip6->address();
  auto gateway = prefix.to_bytes();
  gateway.back() = 1;
  return net::NatSpec6{pod.ipv6->address().address(), dhcp::v6::eui64_address(prefix, mac),
                       boost::asio::ip::address_v6(gateway)};
}

net::NetworkSpec network_spec(const Config& config, const net::Pod& pod,
                              std::optional<net::NatSpec6> ipv6) {
  std::vector<net::ReservedPort> reserved = {{config.health_port, "health"}};
  if (config.vnc)
    reserved.push_back({5900, "vnc"});
  // A loopback control listener (the default) is for `kubectl port-forward` and sidecars: the port
  // stays with the pod only for local clients, and from eth0 it is the VM's like any other. A
  // non-loopback one (which needs a token) is meant for the cluster, so eth0 must not DNAT it to
  // the VM. From the guest it is refused either way (the input chain).
  std::vector<net::ReservedPort> local;
  const net::ReservedPort control{config.control_listen.port, "control"};
  if (config.control_listen.address.is_loopback())
    local.push_back(control);
  else
    reserved.push_back(control);
  auto spec =
      net::network_spec(pod, config.vm_ip, config.vm_gw, std::move(reserved), std::move(local));
  spec.ipv6 = std::move(ipv6);
  return spec;
}

dhcp::DhcpConfig dhcp_config(const Config& config, const net::Pod& pod, const std::string& bridge,
                             MacAddress mac) {
  dhcp::DhcpConfig dhcp;
  dhcp.interface = bridge;
  dhcp.server_address = config.vm_gw;
  dhcp.client_address = config.vm_ip;
  dhcp.prefix_length = 30;
  dhcp.client_mac = mac;
  dhcp.router = config.vm_gw;
  dhcp.dns_servers = {config.vm_gw};
  dhcp.search_domains = pod.resolv_conf.search;
  dhcp.hostname = pod.hostname;
  dhcp.mtu = static_cast<std::uint16_t>(pod.mtu);
  return dhcp;
}

std::optional<dhcp::DnsConfig> dns_config(const Config& config, const net::Pod& pod,
                                          const std::string& bridge) {
  std::vector<boost::asio::ip::udp::endpoint> upstreams;
  for (const auto& server : pod.resolv_conf.nameservers)
    if ((server.is_v4() ? pod.address.has_value() : pod.ipv6.has_value()) && upstreams.size() < 3)
      upstreams.emplace_back(server, 53);
  if (upstreams.empty())
    return std::nullopt;
  dhcp::DnsConfig dns;
  dns.listen_address = config.vm_gw;
  dns.interface = bridge;
  dns.allowed_clients = boost::asio::ip::network_v4(config.vm_gw, 30).canonical();
  dns.upstreams = std::move(upstreams);
  return dns;
}

std::optional<dhcp::DnsConfig> dns6_config(const Config& config, const net::Pod& pod,
                                           const std::string& bridge, const net::NatSpec6& ipv6) {
  auto dns = dns_config(config, pod, bridge);
  if (!dns)
    return std::nullopt;
  dns->listen_address = ipv6.vm_gw;
  dns->allowed_clients6 = boost::asio::ip::network_v6(ipv6.vm_ip, 64).canonical();
  return dns;
}

dhcp::v6::Ipv6ServerConfig ipv6_server_config(const net::Pod& pod, const std::string& bridge,
                                              const net::NatSpec6& ipv6, bool dns) {
  constexpr std::uint32_t kValid = 7200, kPreferred = 3600, kRouter = 1800;
  const auto prefix = boost::asio::ip::network_v6(ipv6.vm_ip, 64).canonical().address();
  dhcp::v6::Ipv6ServerConfig server;
  auto& dhcp = server.dhcp;
  dhcp.interface = bridge;
  // DUID-LL (RFC 8415 §11.4) of a MAC made from the hostname: stable across restarts.
  const MacAddress duid_mac = mac_for(pod.hostname + "/dhcpv6");
  dhcp.server_duid = {0x00, 0x03, 0x00, 0x01};
  dhcp.server_duid.insert(dhcp.server_duid.end(), duid_mac.begin(), duid_mac.end());
  dhcp.client_address = ipv6.vm_ip;
  dhcp.prefix = prefix;
  dhcp.prefix_length = 64;
  if (dns)
    dhcp.dns_servers = {ipv6.vm_gw};
  dhcp.search_domains = pod.resolv_conf.search;
  auto& advert = server.advert;
  advert.managed = true;
  advert.other = true;
  advert.router_lifetime = kRouter;
  advert.mtu = pod.mtu;
  advert.prefixes.push_back({prefix, 64, true, true, kValid, kPreferred});
  advert.dns_servers = dhcp.dns_servers;
  advert.dns_lifetime = dns ? kRouter : 0;
  advert.search_domains = pod.resolv_conf.search;
  advert.search_lifetime = kRouter;
  return server;
}

qemu::MachineSpec machine_spec(const Config& config, const MachineInputs& inputs) {
  qemu::MachineSpec spec;
  spec.accel = inputs.accel;
  spec.cpus = config.vm_cpus;
  spec.memory_mib = config.vm_memory / (1024 * 1024);
  spec.disk = inputs.disk;
  spec.disk_format = qemu::DiskFormat::kQcow2;
  spec.data_disks = inputs.data_disks;
  spec.mac = inputs.mac;
  spec.mtu = inputs.mtu;
  spec.vnc = config.vnc ? qemu::Vnc::kOn : qemu::Vnc::kOff;
  spec.vnc_auth =
      config.vnc_auth == VncAuth::kNone ? qemu::VncAuth::kNone : qemu::VncAuth::kPassword;
  spec.vnc_address = inputs.pod_address;
  spec.qmp_socket = qmp_socket_path(config);
  spec.agent_socket = agent_socket_path(config);
  if (config.viewer)
    spec.viewer_socket = viewer_socket_path(config);
  spec.config_drive = inputs.config_drive;
  spec.cdroms = inputs.cdroms;
  spec.tap = inputs.tap;
  spec.lazy_backing = inputs.lazy_backing;
  if (config.vm_tpm)
    spec.tpm = qemu::TpmSpec{.socket = swtpm_socket_path(config),
                             .interface = config.vm_firmware == Firmware::kBios
                                              ? qemu::TpmInterface::kTis
                                              : qemu::TpmInterface::kCrb};
  spec.extra_args = config.qemu_args;
  if (inputs.flash) {
    spec.firmware = config.vm_firmware == Firmware::kUefiSecure ? qemu::Firmware::kUefiSecure
                                                                : qemu::Firmware::kUefi;
    spec.flash = *inputs.flash;
  }
  return spec;
}

}  // namespace berth
