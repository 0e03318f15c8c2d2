// The pure Config -> module parameter builders of the supervisor.

#include "supervisor/module_params.hpp"

#include <catch2/catch.hpp>

using namespace berth;
namespace ip = boost::asio::ip;

namespace {

net::Pod pod(std::vector<ip::address> nameservers) {
  net::Pod p;
  p.interface = "eth0";
  p.address = ip::make_network_v4("10.244.1.7/24");
  p.mtu = 1450;
  p.hostname = "vm-0";
  p.resolv_conf.nameservers = std::move(nameservers);
  p.resolv_conf.search = {"default.svc.cluster.local", "svc.cluster.local"};
  return p;
}

Config config() {
  Config c;
  c.vm_ip = ip::make_address_v4("10.0.2.2");
  c.vm_gw = ip::make_address_v4("10.0.2.1");
  c.runtime_dir = "/run/berth";
  c.health_port = 9250;
  c.control_listen = {ip::make_address("127.0.0.1"), 9251};
  return c;
}

}  // namespace

TEST_CASE("mac_for: a locally administered MAC, stable per hostname", "[module_params]") {
  const auto a = mac_for("vm-0");
  CHECK(a == mac_for("vm-0"));
  CHECK(a != mac_for("vm-1"));
  CHECK(a[0] == 0x52);
  CHECK(a[1] == 0x54);
  CHECK(a[2] == 0x00);
}

TEST_CASE("the network spec reserves health, VNC when on, and keeps control local",
          "[module_params]") {
  auto c = config();
  c.vnc = true;
  auto spec = network_spec(c, pod({}));
  REQUIRE(spec.reserved_tcp_ports.size() == 2);
  CHECK(spec.reserved_tcp_ports[0].port == 9250);
  CHECK(spec.reserved_tcp_ports[1].port == 5900);
  REQUIRE(spec.local_tcp_ports.size() == 1);
  CHECK(spec.local_tcp_ports[0].port == 9251);
  CHECK(spec.vm_ip == c.vm_ip);
  c.vnc = false;
  CHECK(network_spec(c, pod({})).reserved_tcp_ports.size() == 1);
}

TEST_CASE("a control listener meant for the cluster is kept from the VM's NAT on eth0 too",
          "[module_params]") {
  auto c = config();
  c.vnc = false;
  for (const char* address : {"0.0.0.0", "::", "10.77.0.5"}) {
    INFO(address);
    c.control_listen = {ip::make_address(address), 9251};
    const auto spec = network_spec(c, pod({}));
    CHECK(spec.local_tcp_ports.empty());
    REQUIRE(spec.reserved_tcp_ports.size() == 2);
    CHECK(spec.reserved_tcp_ports[1].port == 9251);
    CHECK(spec.reserved_tcp_ports[1].name == "control");
  }
  c.control_listen = {ip::make_address("::1"), 9251};
  CHECK(network_spec(c, pod({})).local_tcp_ports.size() == 1);
}

TEST_CASE("DHCP gives the VM its /30 with berth as router and DNS", "[module_params]") {
  const auto c = config();
  const MacAddress mac = mac_for("vm-0");
  const auto dhcp = dhcp_config(c, pod({}), "br0", mac);
  CHECK(dhcp.interface == "br0");
  CHECK(dhcp.client_address == c.vm_ip);
  CHECK(dhcp.server_address == c.vm_gw);
  CHECK(dhcp.router == c.vm_gw);
  CHECK(dhcp.prefix_length == 30);
  CHECK(dhcp.client_mac == mac);
  CHECK(dhcp.mtu == 1450);
  CHECK(dhcp.hostname == "vm-0");
  CHECK(dhcp.search_domains.size() == 2);
}

TEST_CASE("DNS forwards to the first three IPv4 nameservers, or is left out without one",
          "[module_params]") {
  const auto c = config();
  CHECK_FALSE(dns_config(c, pod({ip::make_address("fd00::10")}), "br0"));
  const auto dns = dns_config(c,
                              pod({ip::make_address("fd00::10"), ip::make_address("10.96.0.10"),
                                   ip::make_address("10.96.0.11"), ip::make_address("10.96.0.12"),
                                   ip::make_address("10.96.0.13")}),
                              "br0");
  REQUIRE(dns);
  REQUIRE(dns->upstreams.size() == 3);
  CHECK(dns->upstreams[0].address().to_string() == "10.96.0.10");
  CHECK(dns->upstreams[0].port() == 53);
  CHECK(dns->listen_address == c.vm_gw);
  CHECK(dns->allowed_clients.to_string() == "10.0.2.0/30");
}

namespace {

net::Pod dual_stack_pod(std::vector<ip::address> nameservers) {
  net::Pod p = pod(std::move(nameservers));
  p.ipv6 = net::PodIpv6{{ip::make_network_v6("2001:db8:7::5/128")},
                        ip::make_address_v6("fe80::ecee:eeff:feee:eeee"),
                        {}};
  return p;
}

}  // namespace

TEST_CASE("IPv6: the VM is the EUI-64 address of its MAC in VM_IP6, the bridge <prefix>::1",
          "[module_params]") {
  auto c = config();
  const MacAddress mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  CHECK_FALSE(ipv6_spec(c, pod({}), mac));  // the pod has no IPv6
  auto six = ipv6_spec(c, dual_stack_pod({}), mac);
  REQUIRE(six);
  CHECK(six->vm_ip.to_string() == "fd62:6572:7468:0:5054:ff:fe12:3456");
  CHECK(six->vm_gw.to_string() == "fd62:6572:7468::1");
  CHECK(six->pod_ip.to_string() == "2001:db8:7::5");
  const auto spec = network_spec(c, dual_stack_pod({}), six);
  REQUIRE(spec.ipv6);
  CHECK(spec.ipv6->vm_ip == six->vm_ip);
  CHECK(spec.pod_ip == ip::make_address_v4("10.244.1.7"));
  c.vm_ip6.reset();  // VM_IP6=off
  CHECK_FALSE(ipv6_spec(c, dual_stack_pod({}), mac));
}

TEST_CASE("IPv6: router advertisements and DHCPv6 give the one address, DNS and the MTU",
          "[module_params]") {
  const auto c = config();
  const MacAddress mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  const auto p = dual_stack_pod({ip::make_address("10.96.0.10")});
  const auto six = *ipv6_spec(c, p, mac);
  const auto server = ipv6_server_config(p, "br0", six, true);
  CHECK(server.dhcp.interface == "br0");
  CHECK(server.dhcp.client_address == six.vm_ip);
  CHECK(server.dhcp.prefix.to_string() == "fd62:6572:7468::");
  CHECK(server.dhcp.dns_servers == std::vector{six.vm_gw});
  CHECK(server.dhcp.search_domains == p.resolv_conf.search);
  CHECK(server.advert.managed);
  CHECK(server.advert.other);
  CHECK(server.advert.router_lifetime > 0);
  CHECK(server.advert.mtu == 1450u);
  REQUIRE(server.advert.prefixes.size() == 1);
  CHECK(server.advert.prefixes[0].on_link);
  CHECK(server.advert.prefixes[0].autonomous);
  CHECK(server.advert.dns_servers == std::vector{six.vm_gw});
  CHECK(dhcp::v6::validate_config(server.dhcp));
  CHECK(ipv6_server_config(p, "br0", six, false).advert.dns_servers.empty());

  const auto dns6 = dns6_config(c, p, "br0", six);
  REQUIRE(dns6);
  CHECK(dns6->listen_address == ip::address(six.vm_gw));
  CHECK(dns6->allowed_clients6.to_string() == "fd62:6572:7468::/64");
  CHECK(dns6->upstreams[0].address().to_string() == "10.96.0.10");
}

TEST_CASE("IPv6-only pod: IPv6 nameservers are the upstreams, no IPv4 NAT", "[module_params]") {
  const auto c = config();
  auto p = dual_stack_pod({ip::make_address("10.96.0.10"), ip::make_address("fd00:96::a")});
  p.address.reset();
  const auto dns = dns_config(c, p, "br0");
  REQUIRE(dns);
  REQUIRE(dns->upstreams.size() == 1);
  CHECK(dns->upstreams[0].address().to_string() == "fd00:96::a");
  const auto spec = network_spec(c, p, ipv6_spec(c, p, mac_for("vm-0")));
  CHECK_FALSE(spec.pod_ip);
  CHECK(spec.ipv6);
}

TEST_CASE("image, disk and drive parameters come from the configuration", "[module_params]") {
  auto c = config();
  c.img_source = "https://example.com/img.qcow2";
  c.img_target = "img.qcow2";
  c.vm_disk_size = 10ull << 30;
  CHECK(fetch_params(c).source == c.img_source);
  CHECK(fetch_params(c).target == "img.qcow2");
  drive::CachedImage image;
  image.path = "/images/img.qcow2";
  image.sha256 = std::string(64, 'a');
  const auto pet = pet_disk_params(c, "vm-0", image);
  CHECK(pet.base == image.path);
  CHECK(pet.base_sha256 == image.sha256);
  CHECK(pet.size == c.vm_disk_size);
  CHECK(pet.hostname == "vm-0");
  CHECK_FALSE(pet.install);
  // An installer ISO as IMG_SOURCE: a blank disk made for it, the ISO recorded.
  const auto blank = pet_disk_params(c, "vm-0", image, true);
  REQUIRE(blank.install);
  CHECK(blank.install->iso == image.path);
  CHECK(blank.install->sha256 == image.sha256);
  CHECK(blank.size == c.vm_disk_size);
  // VM_CDROM: its own source, name and checksum, IMG_SOURCE's cache and limits.
  c.cdrom = Config::Cdrom{"https://cd.example.org/netinst.iso", "netinst.iso"};
  c.cdrom_sha256 = std::string(64, 'e');
  const auto cd = cdrom_fetch_params(c);
  CHECK(cd.source == "https://cd.example.org/netinst.iso");
  CHECK(cd.target == "netinst.iso");
  CHECK(cd.sha256 == c.cdrom_sha256);
  CHECK(cd.image_dir == fetch_params(c).image_dir);
  CHECK(cd.max_size == fetch_params(c).max_size);
  c.drive_format = DriveFormat::kNoCloud;
  const auto drive = config_drive_params(c, "vm-0");
  CHECK(drive.layout == drive::DriveLayout::kNoCloud);
  CHECK(drive.iso == std::filesystem::path("/run/berth/config-drive.iso"));
}

TEST_CASE("VNC listens on the pod address, with a password unless the unsafe opt-out is set",
          "[module_params]") {
  auto c = config();
  MachineInputs inputs;
  inputs.pod_address = boost::asio::ip::make_address_v4("10.77.0.5");
  auto spec = machine_spec(c, inputs);
  CHECK(spec.vnc == qemu::Vnc::kOn);
  CHECK(spec.vnc_address == inputs.pod_address);
  CHECK(spec.vnc_auth == qemu::VncAuth::kPassword);
  c.vnc_auth = VncAuth::kNone;
  CHECK(machine_spec(c, inputs).vnc_auth == qemu::VncAuth::kNone);
}

TEST_CASE("the machine spec combines the configuration with what start-up made",
          "[module_params]") {
  auto c = config();
  c.vm_cpus = 2;
  c.vm_memory = 512ull << 20;
  c.vnc = false;
  MachineInputs inputs;
  inputs.accel = qemu::Accelerator::kKvm;
  inputs.disk = "/disks/vm-0.qcow2";
  inputs.config_drive = "/run/berth/config-drive.iso";
  inputs.mtu = 1450;
  inputs.tap = "tap0";
  inputs.cdroms = {"/images/netinst.iso"};
  const auto spec = machine_spec(c, inputs);
  CHECK(spec.cdroms == std::vector<std::filesystem::path>{"/images/netinst.iso"});
  CHECK(spec.accel == qemu::Accelerator::kKvm);
  CHECK(spec.cpus == 2);
  CHECK(spec.memory_mib == 512);
  CHECK(spec.vnc == qemu::Vnc::kOff);
  CHECK(spec.vnc_auth == qemu::VncAuth::kPassword);
  CHECK(spec.qmp_socket == std::filesystem::path("/run/berth/qmp.sock"));
  CHECK(spec.tap == std::optional<std::string>("tap0"));
  CHECK(spec.mtu == 1450);
}

TEST_CASE("the web files: BERTH_WEB_DIR, else next to the installed or the built binary",
          "[module_params]") {
  auto c = config();
  CHECK(web_dir_candidates(c, "/usr/local/bin/berth")
        == std::vector<std::filesystem::path>{"/usr/local/share/berth/web", "/usr/local/web"});
  CHECK(web_dir_candidates(c, "/work/berth/build/supervisor/berth")[1]
        == std::filesystem::path("/work/berth/build/web"));
  c.web_dir = "/opt/web";
  CHECK(web_dir_candidates(c, "/usr/local/bin/berth")
        == std::vector<std::filesystem::path>{"/opt/web"});
}

TEST_CASE("the viewer's VNC socket is in a folder of its own, with or without NO_VNC",
          "[module_params]") {
  auto c = config();
  c.vnc = false;
  const MachineInputs inputs;
  CHECK(machine_spec(c, inputs).viewer_socket
        == std::filesystem::path("/run/berth/viewer/vnc.sock"));
  CHECK(viewer_dir(c) == std::filesystem::path("/run/berth/viewer"));
  c.viewer = false;
  CHECK_FALSE(machine_spec(c, inputs).viewer_socket);
}

TEST_CASE("VM_TPM: tpm-crb (UEFI) or tpm-tis (BIOS) on swtpm's socket, state beside the pet disk",
          "[module_params]") {
  auto c = config();
  c.disk_dir = "/var/lib/berth/disks";
  CHECK_FALSE(machine_spec(c, MachineInputs{}).tpm);
  c.vm_tpm = true;
  c.vm_firmware = Firmware::kUefi;
  const auto spec = machine_spec(c, MachineInputs{});
  REQUIRE(spec.tpm);
  CHECK(spec.tpm->socket == std::filesystem::path("/run/berth/swtpm/swtpm.sock"));
  CHECK(spec.tpm->interface == qemu::TpmInterface::kCrb);
  c.vm_firmware = Firmware::kUefiSecure;
  CHECK(machine_spec(c, MachineInputs{}).tpm->interface == qemu::TpmInterface::kCrb);
  c.vm_firmware = Firmware::kBios;  // SeaBIOS drives only TIS
  CHECK(machine_spec(c, MachineInputs{}).tpm->interface == qemu::TpmInterface::kTis);
  CHECK(tpm_state_dir(c, "vm-0") == std::filesystem::path("/var/lib/berth/disks/vm-0.tpm"));
}
