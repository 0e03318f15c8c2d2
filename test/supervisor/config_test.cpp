#include "supervisor/config.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <map>

#include "drive/image/image_cache.hpp"

using namespace berth;

namespace {

using Env = std::map<std::string, std::string, std::less<>>;

EnvLookup lookup(const Env& env) {
  return [&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end())
      return std::nullopt;
    return it->second;
  };
}

Env minimal() {
  return {{"IMG_SOURCE", "https://images.example.org/debian-12.qcow2"},
          {"BERTH_VNC_PASSWORD_FILE", "/secrets/vnc/password"}};
}

Config parse_ok(const Env& env) {
  auto result = parse_config(lookup(env));
  INFO((result.errors.empty() ? "" : result.errors.front().message));
  REQUIRE(result.config);
  return *result.config;
}

// Parses `env` expecting exactly one error, and returns it.
ConfigError parse_one_error(const Env& env) {
  auto result = parse_config(lookup(env));
  REQUIRE_FALSE(result.config);
  REQUIRE(result.errors.size() == 1);
  return result.errors.front();
}

Env with(Env env, const std::string& name, const std::string& value) {
  env[name] = value;
  return env;
}

}  // namespace

TEST_CASE("every default of the runtime contract", "[config]") {
  const Config c = parse_ok(minimal());
  CHECK(c.img_source_kind == SourceKind::kUrl);
  CHECK(c.img_target == "debian-12.qcow2");
  CHECK_FALSE(c.img_sha256);
  CHECK(c.vm_ip.to_string() == "192.168.254.2");
  CHECK(c.vm_gw.to_string() == "192.168.254.1");
  CHECK(c.vnc);
  CHECK(c.vnc_auth == VncAuth::kPassword);
  CHECK(c.vnc_password_file == "/secrets/vnc/password");
  CHECK(c.vm_cpus == 1);
  CHECK(c.vm_memory == 1024ull * 1024 * 1024);
  CHECK_FALSE(c.vm_disk_size);
  CHECK(c.vm_accel == Accel::kAuto);
  CHECK_FALSE(c.vm_mac);
  CHECK(c.image_dir == "/var/lib/berth/images");
  CHECK(c.disk_dir == "/var/lib/berth/disks");
  CHECK(c.runtime_dir == "/run/berth");
  CHECK(c.userdata == "/userdata");
  CHECK(c.metadata == "/metadata");
  CHECK(c.networkdata == "/networkdata");
  CHECK(c.drive_format == DriveFormat::kConfigDrive);
  CHECK(c.health_port == 9250);
  CHECK(format_endpoint(c.control_listen) == "127.0.0.1:9251");
  CHECK(c.shutdown_timeout == std::chrono::seconds(25));
  CHECK_FALSE(c.control_token_file);
  CHECK_FALSE(c.ready_tcp);
  CHECK_FALSE(c.ready_agent);
  CHECK(c.fsfreeze_timeout == std::chrono::seconds(60));
  CHECK(c.qemu_args.empty());
  CHECK(c.qemu_user == QemuUser{107, 107});  // KubeVirt's qemu user; never root
  CHECK(c.log_format == LogFormat::kText);
  CHECK(c.log_level == LogLevel::kInfo);
  CHECK(c.viewer);
  CHECK_FALSE(c.web_dir);  // found next to the binary at start
}

TEST_CASE("every variable set to a valid non-default value", "[config]") {
  Env env = {{"IMG_SOURCE", "/images/cirros.img.xz"},
             {"IMG_CHECKSUM", "SHA256:" + std::string(64, 'A')},
             {"VM_IP", "10.9.8.5"},
             {"VM_GW", "10.9.8.6"},
             {"NO_VNC", "true"},
             {"VM_CPUS", "4"},
             {"VM_MEMORY", "2Gi"},
             {"VM_DISK_SIZE", "20G"},
             {"VM_ACCEL", "TCG"},
             {"VM_MAC", "52:54:00:AB:cd:01"},
             {"BERTH_IMAGE_DIR", "/cache/"},
             {"BERTH_DISK_DIR", "/pet"},
             {"BERTH_RUNTIME_DIR", "/tmp/run"},
             {"BERTH_USERDATA", "/cm/user"},
             {"BERTH_METADATA", "/cm/meta"},
             {"BERTH_NETWORKDATA", "/cm/net"},
             {"BERTH_DRIVE_FORMAT", "nocloud"},
             {"BERTH_HEALTH_PORT", "5900"},  // allowed once VNC is off
             {"BERTH_CONTROL_LISTEN", "[::1]:8080"},
             {"BERTH_SHUTDOWN_TIMEOUT", "90"},
             {"BERTH_PHASE_BUDGETS", "image=600,disk=900"},
             {"BERTH_CONTROL_TOKEN_FILE", "/secrets/token"},
             {"BERTH_READY_TCP", "22"},
             {"BERTH_READY_AGENT", "yes"},
             {"BERTH_FSFREEZE_TIMEOUT", "15"},
             {"BERTH_QEMU_ARGS", "-device 'virtio-rng-pci,id=rng 0' -smp \"2\""},
             {"BERTH_QEMU_USER", "64055:993"},
             {"BERTH_LOG_FORMAT", "json"},
             {"BERTH_LOG_LEVEL", "debug"},
             {"BERTH_VIEWER", "off"},
             {"BERTH_WEB_DIR", "/opt/berth/web/"}};
  const Config c = parse_ok(env);
  CHECK(c.img_source_kind == SourceKind::kPath);
  CHECK(c.img_target == "cirros.img");  // compression suffix dropped: the cache holds it unpacked
  CHECK(c.img_sha256 == std::string(64, 'a'));
  CHECK(c.vm_ip.to_string() == "10.9.8.5");
  CHECK_FALSE(c.vnc);
  CHECK(c.vm_cpus == 4);
  CHECK(c.vm_memory == 2ull << 30);
  CHECK(c.vm_disk_size == 20ull << 30);
  CHECK(c.vm_accel == Accel::kTcg);
  CHECK(format_mac(*c.vm_mac) == "52:54:00:ab:cd:01");
  CHECK(c.image_dir == "/cache/");
  CHECK(c.drive_format == DriveFormat::kNoCloud);
  CHECK(c.health_port == 5900);
  CHECK(format_endpoint(c.control_listen) == "[::1]:8080");
  CHECK(c.shutdown_timeout == std::chrono::seconds(90));
  CHECK(c.phase_budgets.of(Phase::kImage)->limit == std::chrono::seconds(600));
  CHECK(c.phase_budgets.of(Phase::kDisk)->limit == std::chrono::seconds(900));
  CHECK(c.phase_budgets.of(Phase::kNetwork)->limit == PhaseBudgets().of(Phase::kNetwork)->limit);
  CHECK(c.control_token_file == "/secrets/token");
  CHECK(c.ready_tcp == 22);
  CHECK(c.ready_agent);
  CHECK(c.fsfreeze_timeout == std::chrono::seconds(15));
  CHECK(c.qemu_args == std::vector<std::string>{"-device", "virtio-rng-pci,id=rng 0", "-smp", "2"});
  CHECK(c.qemu_user == QemuUser{64055, 993});
  CHECK(c.log_format == LogFormat::kJson);
  CHECK(c.log_level == LogLevel::kDebug);
  CHECK_FALSE(c.viewer);
  CHECK(c.web_dir == "/opt/berth/web/");
}

TEST_CASE("VM_CDROM: an ISO source cached under its file name, with its own checksum", "[config]") {
  CHECK_FALSE(parse_ok(minimal()).cdrom);
  const std::string sum = "sha256:" + std::string(64, 'B');
  auto env = with(with(minimal(), "VM_CDROM", "https://cd.example.org/debian-12-netinst.iso"),
                  "VM_CDROM_CHECKSUM", sum);
  const Config c = parse_ok(env);
  REQUIRE(c.cdrom);
  CHECK(c.cdrom->source == "https://cd.example.org/debian-12-netinst.iso");
  CHECK(c.cdrom->target == "debian-12-netinst.iso");
  CHECK(c.cdrom_sha256 == std::string(64, 'b'));
  CHECK_FALSE(c.img_sha256);
  CHECK(parse_ok(with(minimal(), "VM_CDROM", "/isos/virtio-win.iso.xz")).cdrom->target
        == "virtio-win.iso");

  auto alone = parse_one_error(with(minimal(), "VM_CDROM_CHECKSUM", sum));
  CHECK(alone.variable == "VM_CDROM_CHECKSUM");
  CHECK_THAT(alone.message, Catch::Contains("VM_CDROM is not"));
  auto bad_sum = parse_one_error(with(env, "VM_CDROM_CHECKSUM", "sha256:abc"));
  CHECK(bad_sum.variable == "VM_CDROM_CHECKSUM");
  // Two sources for one cache entry would overwrite each other's meaning.
  auto clash = parse_one_error(with(minimal(), "VM_CDROM", "/isos/debian-12.qcow2"));
  CHECK(clash.variable == "VM_CDROM");
  CHECK_THAT(clash.message, Catch::Contains("set IMG_TARGET"));
  CHECK(parse_ok(with(minimal(), "VM_CDROM", minimal().at("IMG_SOURCE"))).cdrom);
}

TEST_CASE("each invalid value is named with its value and the accepted form", "[config]") {
  struct Case {
    std::string variable, value, expected_fragment;
  };
  const std::vector<Case> cases = {
      {"VM_IP", "300.1.1.1", "is not an IPv4 address; expected an IPv4 address such as"},
      {"VM_GW", "192.168.254", "is not an IPv4 address"},
      {"IMG_SOURCE", "ftp://host/x.qcow2", "is neither an http(s) URL nor an absolute path"},
      {"IMG_SOURCE", "relative/path.qcow2", "is neither an http(s) URL nor an absolute path"},
      {"IMG_TARGET", "../escape.qcow2", "is not a plain file name"},
      {"IMG_CHECKSUM", "md5:d41d8cd98f00b204e9800998ecf8427e", "expected sha256:<64 hex digits>"},
      {"IMG_CHECKSUM", "sha256:" + std::string(63, 'a'), "is not a SHA-256 checksum"},
      {"IMG_CHECKSUM", "sha256:" + std::string(64, 'g'), "is not a SHA-256 checksum"},
      {"VM_CDROM", "ftp://host/x.iso", "is neither an http(s) URL nor an absolute path"},
      {"VM_CDROM", "https://host/", "does not end in a file name"},
      {"NO_VNC", "maybe", "is not a yes/no value"},
      {"BERTH_VNC_INSECURE_NO_AUTH", "maybe", "is not a yes/no value"},
      {"BERTH_VNC_PASSWORD_FILE", "secrets/vnc", "is not an absolute path"},
      {"VM_CPUS", "0", "is not a vCPU count; expected integer 1-255"},
      {"VM_CPUS", "four", "is not a vCPU count"},
      {"VM_MEMORY", "lots", "is not a size; expected size"},
      {"VM_MEMORY", "1024", "below the minimum 64Mi"},
      {"VM_MEMORY", "1.5Gi", "is not a size"},
      {"VM_MEMORY", "1048577Ki", "is not a whole number of MiB"},
      {"VM_DISK_SIZE", "10Q", "is not a size of at least 1Mi"},
      {"VM_ACCEL", "hvf", "is not an accelerator; expected auto | kvm | tcg"},
      {"VM_MAC", "52:54:00:12:34", "is not a MAC address"},
      {"VM_MAC", "01:00:5e:00:00:01", "is a multicast or zero address"},
      {"BERTH_IMAGE_DIR", "images", "is not an absolute path"},
      {"BERTH_DISK_DIR", "./disks", "is not an absolute path"},
      {"BERTH_RUNTIME_DIR", "run", "is not an absolute path"},
      {"BERTH_USERDATA", "userdata", "is not an absolute path"},
      {"BERTH_METADATA", "metadata", "is not an absolute path"},
      {"BERTH_NETWORKDATA", "networkdata", "is not an absolute path"},
      {"BERTH_DRIVE_FORMAT", "iso", "is not a drive format; expected configdrive | nocloud"},
      {"BERTH_HEALTH_PORT", "0", "is not a TCP port"},
      {"BERTH_HEALTH_PORT", "65536", "is not a TCP port"},
      {"BERTH_HEALTH_PORT", "5900", "is VNC's port"},
      {"BERTH_CONTROL_LISTEN", "9251", "is not an address:port"},
      {"BERTH_CONTROL_LISTEN", "::1:9251", "is not an address:port"},
      {"BERTH_CONTROL_LISTEN", "127.0.0.1:9250", "is also BERTH_HEALTH_PORT"},
      {"BERTH_CONTROL_LISTEN", "0.0.0.0:9251", "needs a token: set BERTH_CONTROL_TOKEN_FILE"},
      {"BERTH_CONTROL_TOKEN_FILE", "token", "is not an absolute path"},
      {"BERTH_READY_TCP", "http", "is not a TCP port"},
      {"BERTH_CA_BUNDLE", "ca.pem", "is not an absolute path"},
      {"BERTH_SHUTDOWN_TIMEOUT", "0", "is not a number of seconds"},
      {"BERTH_SHUTDOWN_TIMEOUT", "10m", "is not a number of seconds"},
      {"BERTH_PHASE_BUDGETS", "image=0", "is not <phase>=<seconds 1-86400>"},
      {"BERTH_PHASE_BUDGETS", "running=60", "does not name a phase with a budget"},
      {"BERTH_QEMU_ARGS", "-append 'console=ttyS0", "has an unbalanced quote"},
      {"BERTH_QEMU_USER", "0:0", "QEMU never runs as root"},
      {"BERTH_QEMU_USER", "107:0", "is not a uid:gid pair of numbers other than 0"},
      {"BERTH_QEMU_USER", "0:107", "is not a uid:gid pair"},
      {"BERTH_QEMU_USER", "107", "expected e.g. 107:107"},
      {"BERTH_QEMU_USER", "qemu:kvm", "is not a uid:gid pair"},
      {"BERTH_QEMU_USER", "107:107:1", "is not a uid:gid pair"},
      {"BERTH_QEMU_USER", "-1:107", "is not a uid:gid pair"},
      {"BERTH_QEMU_USER", "4294967295:107", "is not a uid:gid pair"},
      {"BERTH_QEMU_USER", "4294967296:107", "is not a uid:gid pair"},
      {"BERTH_LOG_FORMAT", "xml", "is not a log format"},
      {"BERTH_LOG_LEVEL", "verbose", "is not a log level"},
      {"BERTH_VIEWER", "maybe", "is not a yes/no value"},
      {"BERTH_WEB_DIR", "web", "is not an absolute path"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.variable << "=" << c.value) {
      const auto error = parse_one_error(with(minimal(), c.variable, c.value));
      CHECK(error.variable == c.variable);
      CHECK(error.value == c.value);
      CHECK_THAT(error.message, Catch::StartsWith(c.variable + ":"));
      CHECK_THAT(error.message, Catch::Contains(c.expected_fragment));
      if (c.variable != "BERTH_CONTROL_LISTEN" || c.value != "127.0.0.1:9250")
        CHECK_THAT(error.message,
                   Catch::Contains("\"" + c.value + "\"") || Catch::Contains(c.value));
    }
  }
}

TEST_CASE("IMG_SOURCE is required and must name a file", "[config]") {
  Env env = minimal();
  env.erase("IMG_SOURCE");
  auto error = parse_one_error(env);
  CHECK(error.variable == "IMG_SOURCE");
  CHECK_THAT(error.message, Catch::Contains("not set"));

  error = parse_one_error(with(env, "IMG_SOURCE", "https://example.org/"));
  CHECK_THAT(error.message, Catch::Contains("set IMG_TARGET"));
  CHECK(parse_ok(with(with(env, "IMG_SOURCE", "https://example.org/"), "IMG_TARGET", "base.qcow2"))
            .img_target
        == "base.qcow2");
  CHECK(parse_ok(with(env, "IMG_SOURCE", "http://h:8080/a/b/img.qcow2?token=x")).img_target
        == "img.qcow2");
}

TEST_CASE("VM_IP and VM_GW must be the two hosts of one /30", "[config]") {
  CHECK(parse_ok(with(with(minimal(), "VM_IP", "10.0.0.1"), "VM_GW", "10.0.0.2")).vm_ip
        == boost::asio::ip::make_address_v4("10.0.0.1"));
  for (auto [vm, gw] :
       std::vector<std::pair<std::string, std::string>>{
           {"192.168.254.2", "192.168.254.5"},   // different /30
           {"192.168.254.2", "192.168.254.2"},   // equal
           {"192.168.254.0", "192.168.254.1"},   // network address
           {"192.168.254.2", "192.168.254.3"}})  // broadcast address
  {
    DYNAMIC_SECTION(vm << " " << gw) {
      const auto error = parse_one_error(with(with(minimal(), "VM_IP", vm), "VM_GW", gw));
      CHECK(error.variable == "VM_IP");
      CHECK_THAT(error.message,
                 Catch::Contains("one /30") && Catch::Contains(vm) && Catch::Contains(gw));
    }
  }
}

TEST_CASE("VM_IP6 is a /64 of unicast addresses, a ULA by default, or off", "[config]") {
  CHECK(parse_ok(minimal()).vm_ip6->to_string() == "fd62:6572:7468::/64");
  CHECK(parse_ok(with(minimal(), "VM_IP6", "2001:db8:1:2::/64")).vm_ip6->to_string()
        == "2001:db8:1:2::/64");
  CHECK_FALSE(parse_ok(with(minimal(), "VM_IP6", "off")).vm_ip6);
  for (const std::string text : {"fd00::/48", "fd00::1/64", "fe80::/64", "ff02::/64", "::/64",
                                 "fd00::", "192.168.254.2", "off6", "fec0::/64"}) {
    DYNAMIC_SECTION(text) {
      const auto error = parse_one_error(with(minimal(), "VM_IP6", text));
      CHECK(error.variable == "VM_IP6");
      CHECK_THAT(error.message,
                 Catch::Contains("/64") && Catch::Contains(text) && Catch::Contains("off"));
    }
  }
}

TEST_CASE("every invalid variable is reported, not only the first", "[config]") {
  auto result =
      parse_config(lookup({{"VM_IP", "300.1.1.1"}, {"VM_IP6", "fd00::/8"}, {"VM_CPUS", "x"}}));
  REQUIRE_FALSE(result.config);
  std::vector<std::string> names;
  for (const auto& e : result.errors)
    names.push_back(e.variable);
  CHECK(names
        == std::vector<std::string>{"IMG_SOURCE", "BERTH_VNC_PASSWORD_FILE", "VM_IP", "VM_IP6",
                                    "VM_CPUS"});
}

TEST_CASE("empty values count as unset (Helm renders left-out values as \"\")", "[config]") {
  const Config c =
      parse_ok(with(with(with(minimal(), "NO_VNC", ""), "VM_MEMORY", ""), "IMG_CHECKSUM", ""));
  CHECK(c.vnc);
  CHECK(c.vm_memory == 1ull << 30);
  CHECK_FALSE(c.img_sha256);
}

TEST_CASE("NO_VNC accepts yes/no words", "[config]") {
  for (auto word : {"1", "true", "YES", "on", "y"})
    CHECK_FALSE(parse_ok(with(minimal(), "NO_VNC", word)).vnc);
  for (auto word : {"0", "false", "No", "off", "n"})
    CHECK(parse_ok(with(minimal(), "NO_VNC", word)).vnc);
}

TEST_CASE("VNC needs a password file unless NO_VNC or the unsafe opt-out is set", "[config]") {
  Env env = minimal();
  env.erase("BERTH_VNC_PASSWORD_FILE");
  const auto missing = parse_one_error(env);
  CHECK(missing.variable == "BERTH_VNC_PASSWORD_FILE");
  CHECK_THAT(missing.message, Catch::Contains("not set") && Catch::Contains("NO_VNC=1")
                                  && Catch::Contains("BERTH_VNC_INSECURE_NO_AUTH=1")
                                  && Catch::Contains("unsafe"));
  // Empty is unset, as Helm renders a left-out value.
  CHECK(parse_one_error(with(env, "BERTH_VNC_PASSWORD_FILE", "")).variable
        == "BERTH_VNC_PASSWORD_FILE");
  CHECK(parse_one_error(with(env, "BERTH_VNC_INSECURE_NO_AUTH", "no")).variable
        == "BERTH_VNC_PASSWORD_FILE");

  const Config off = parse_ok(with(env, "NO_VNC", "1"));
  CHECK_FALSE(off.vnc);
  const Config open = parse_ok(with(env, "BERTH_VNC_INSECURE_NO_AUTH", "yes"));
  CHECK(open.vnc);
  CHECK(open.vnc_auth == VncAuth::kNone);
  CHECK_FALSE(open.vnc_password_file);

  const auto both = parse_one_error(with(minimal(), "BERTH_VNC_INSECURE_NO_AUTH", "1"));
  CHECK(both.variable == "BERTH_VNC_INSECURE_NO_AUTH");
  CHECK_THAT(both.message, Catch::Contains("BERTH_VNC_PASSWORD_FILE"));
  // Without VNC, neither matters (a chart may mount the Secret regardless).
  CHECK_FALSE(
      parse_ok(with(with(minimal(), "BERTH_VNC_INSECURE_NO_AUTH", "1"), "NO_VNC", "1")).vnc);
}

TEST_CASE("sizes use binary units", "[config]") {
  CHECK(parse_size("1024M") == 1ull << 30);
  CHECK(parse_size("1Gi") == 1ull << 30);
  CHECK(parse_size("1gib") == 1ull << 30);
  CHECK(parse_size("512k") == 512ull << 10);
  CHECK(parse_size("2T") == 2ull << 40);
  CHECK(parse_size("4096") == 4096);
  CHECK(parse_size("7B") == 7);
  CHECK_FALSE(parse_size(""));
  CHECK_FALSE(parse_size("G"));
  CHECK_FALSE(parse_size("-1G"));
  CHECK_FALSE(parse_size("1 G"));
  CHECK_FALSE(parse_size("99999999999999999999"));
  CHECK_FALSE(parse_size("17179869184Ti"));  // overflows 64 bits
  CHECK(format_size(2ull << 30) == "2Gi");
  CHECK(format_size(1536ull << 20) == "1536Mi");
  CHECK(format_size(1000) == "1000");
}

TEST_CASE("endpoints and MAC addresses", "[config]") {
  CHECK(format_endpoint(*parse_endpoint("0.0.0.0:1")) == "0.0.0.0:1");
  CHECK(format_endpoint(*parse_endpoint("[::]:65535")) == "[::]:65535");
  CHECK_FALSE(parse_endpoint("localhost:9251"));
  CHECK_FALSE(parse_endpoint("127.0.0.1:0"));
  CHECK_FALSE(parse_endpoint("127.0.0.1:"));
  CHECK_FALSE(parse_endpoint("[::1]9251"));
  CHECK(parse_mac("52-54-00-12-34-56"));
  CHECK_FALSE(parse_mac("52:54:00:12:34:5g"));
  CHECK_FALSE(parse_mac("52:54:00:12:34:567"));
  CHECK_FALSE(parse_mac("5254.0012.3456.7"));
}

TEST_CASE("describe_config prints every variable with where its value came from", "[config]") {
  Env env = with(minimal(), "VM_CPUS", "2");
  const std::string text = describe_config(parse_ok(env), lookup(env));
  for (const auto& doc : variable_docs())
    CHECK_THAT(text, Catch::Contains(std::string(doc.name) + "="));
  CHECK_THAT(text, Catch::Contains("VM_CPUS=2  # set\n"));
  CHECK_THAT(text, Catch::Contains("VM_MEMORY=1Gi  # default\n"));
  CHECK_THAT(text, Catch::Contains("IMG_TARGET=debian-12.qcow2  # from IMG_SOURCE\n"));
  CHECK_THAT(text, Catch::Contains("IMG_CHECKSUM=''  # unset\n"));
}

TEST_CASE("IMG_MAX_SIZE bounds the image, 64Gi by default, and is documented", "[config]") {
  bool documented = false;
  for (const auto& d : variable_docs())
    if (d.name == "IMG_MAX_SIZE") {
      documented = true;
      CHECK(d.default_value == "64Gi");
    }
  CHECK(documented);
  const auto error = parse_one_error(with(minimal(), "IMG_MAX_SIZE", "lots"));
  CHECK(error.variable == "IMG_MAX_SIZE");
  CHECK_THAT(error.message, Catch::Contains("\"lots\"") && Catch::Contains("size"));
}

TEST_CASE("an upper-case URL scheme is a URL for config and fetcher alike", "[config]") {
  const Config c = parse_ok(with(minimal(), "IMG_SOURCE", "HTTPS://images.example.org/d.qcow2"));
  CHECK(c.img_source_kind == SourceKind::kUrl);
  CHECK(c.img_target == "d.qcow2");
  CHECK(drive::is_url(c.img_source));
}

TEST_CASE("the browser viewer is independent of NO_VNC", "[config]") {
  const Config c = parse_ok({{"IMG_SOURCE", "/images/guest.qcow2"}, {"NO_VNC", "1"}});
  CHECK_FALSE(c.vnc);
  CHECK(c.viewer);
  CHECK_FALSE(parse_ok(with(minimal(), "BERTH_VIEWER", "no")).viewer);
  CHECK(parse_ok(with(minimal(), "BERTH_VIEWER", "YES")).viewer);
}

TEST_CASE("VM_TPM refuses a disk or runtime folder with a comma: swtpm's options cannot escape it",
          "[config]") {
  const auto with_tpm = with(minimal(), "VM_TPM", "yes");
  const auto disk = parse_one_error(with(with_tpm, "BERTH_DISK_DIR", "/var/lib/berth/a,b"));
  CHECK(disk.variable == "BERTH_DISK_DIR");
  CHECK(disk.message
        == "BERTH_DISK_DIR: \"/var/lib/berth/a,b\" has a comma, which swtpm (VM_TPM) cannot take "
           "in its state folder or socket path (its options are comma-separated, with no "
           "escape); expected a path without a comma, or VM_TPM=no");
  CHECK(parse_one_error(with(with_tpm, "BERTH_RUNTIME_DIR", "/run/x,y")).variable
        == "BERTH_RUNTIME_DIR");
  // Without a TPM only QEMU sees these paths, and it takes them (its commas are doubled).
  CHECK(parse_ok(with(minimal(), "BERTH_DISK_DIR", "/var/lib/berth/a,b")).disk_dir
        == "/var/lib/berth/a,b");
}

TEST_CASE("VM_TPM: no by default, yes/no words, anything else named with its form", "[config]") {
  CHECK_FALSE(parse_ok(minimal()).vm_tpm);
  CHECK(parse_ok(with(minimal(), "VM_TPM", "yes")).vm_tpm);
  CHECK(parse_ok(with(minimal(), "VM_TPM", "ON")).vm_tpm);
  CHECK_FALSE(parse_ok(with(minimal(), "VM_TPM", "0")).vm_tpm);
  CHECK_FALSE(parse_ok(with(minimal(), "VM_TPM", "")).vm_tpm);  // Helm's "" is unset
  const auto error = parse_one_error(with(minimal(), "VM_TPM", "tpm2"));
  CHECK(error.variable == "VM_TPM");
  CHECK(error.message == "VM_TPM: \"tpm2\" is not a yes/no value; expected yes/no (1/true/yes/on, "
                         "0/false/no/off)");
  auto env = with(minimal(), "VM_TPM", "true");
  CHECK_THAT(describe_config(parse_ok(env), lookup(env)), Catch::Contains("VM_TPM=yes  # set\n"));
  CHECK_THAT(describe_config(parse_ok(minimal()), lookup(minimal())),
             Catch::Contains("VM_TPM=no  # default\n"));
}

TEST_CASE("VM_FIRMWARE: bios by default, uefi, uefi-secure, and OVMF's folder", "[config]") {
  Env env = minimal();
  Config c = parse_ok(env);
  CHECK(c.vm_firmware == Firmware::kBios);
  CHECK(c.ovmf_dir == "/usr/share/OVMF");
  CHECK_FALSE(c.efivars_reset);
  env["VM_FIRMWARE"] = "UEFI";
  CHECK(parse_ok(env).vm_firmware == Firmware::kUefi);
  env["VM_FIRMWARE"] = "uefi-secure";
  env["VM_EFIVARS_RESET"] = "yes";
  env["BERTH_OVMF_DIR"] = "/opt/ovmf/";
  c = parse_ok(env);
  CHECK(c.vm_firmware == Firmware::kUefiSecure);
  CHECK(c.efivars_reset);
  CHECK(c.ovmf_dir == "/opt/ovmf/");
  CHECK(firmware_name(c.vm_firmware) == "uefi-secure");
  const std::string described = describe_config(c, lookup(env));
  CHECK(described.find("VM_FIRMWARE=uefi-secure  # set\n") != std::string::npos);
  CHECK(described.find("VM_EFIVARS_RESET=yes  # set\n") != std::string::npos);
}

TEST_CASE("VM_FIRMWARE errors say what to write instead", "[config]") {
  Env env = minimal();
  env["VM_FIRMWARE"] = "efi";
  auto error = parse_one_error(env);
  CHECK(error.variable == "VM_FIRMWARE");
  CHECK(error.message
        == "VM_FIRMWARE: \"efi\" is not a firmware; expected bios | uefi | uefi-secure");
  env["VM_FIRMWARE"] = "secureboot";  // Secure Boot without UEFI
  error = parse_one_error(env);
  CHECK(error.message.find("Secure Boot is a UEFI feature; expected VM_FIRMWARE=uefi-secure")
        != std::string::npos);
  env["VM_FIRMWARE"] = "uefi";
  env["VM_EFIVARS_RESET"] = "maybe";
  CHECK(parse_one_error(env).variable == "VM_EFIVARS_RESET");
  env.erase("VM_EFIVARS_RESET");
  env["BERTH_OVMF_DIR"] = "ovmf";
  CHECK(parse_one_error(env).variable == "BERTH_OVMF_DIR");
}

TEST_CASE("Secure Boot needs at least 384Mi of guest memory", "[config]") {
  Env env = minimal();
  env["VM_FIRMWARE"] = "uefi-secure";
  env["VM_MEMORY"] = "256Mi";
  const auto error = parse_one_error(env);
  CHECK(error.variable == "VM_MEMORY");
  CHECK(error.message.find("too little for VM_FIRMWARE=uefi-secure, which needs at least 384Mi")
        != std::string::npos);
  env["VM_MEMORY"] = "384Mi";
  CHECK(parse_ok(env).vm_memory == kSecureBootMinMemory);
  env["VM_FIRMWARE"] = "uefi";
  env["VM_MEMORY"] = "256Mi";
  CHECK(parse_ok(env).vm_firmware == Firmware::kUefi);  // plain UEFI boots at 256Mi
}

TEST_CASE("firmware errors are reported together with the others", "[config]") {
  Env env = minimal();
  env["VM_FIRMWARE"] = "coreboot";
  env["VM_CPUS"] = "0";
  env["BERTH_OVMF_DIR"] = "relative";
  auto result = parse_config(lookup(env));
  REQUIRE_FALSE(result.config);
  CHECK(result.errors.size() == 3);
}

TEST_CASE("VM_DISKS: folders with a size and format and block devices in the order given",
          "[config][disks]") {
  const Config c = parse_ok(with(minimal(), "VM_DISKS",
                                 "data=/var/lib/berth/data:50Gi,scratch=/dev/xvdb,"
                                 "logs-2=/mnt/logs/:1000M:raw,"));
  REQUIRE(c.vm_disks.size() == 3);
  CHECK(c.vm_disks[0]
        == DataDiskSpec{"data", "/var/lib/berth/data", DataDiskKind::kFile, 50ull << 30,
                        DataDiskFormat::kQcow2});
  CHECK(c.vm_disks[1]
        == DataDiskSpec{"scratch", "/dev/xvdb", DataDiskKind::kBlock, 0, DataDiskFormat::kQcow2});
  CHECK(c.vm_disks[2]
        == DataDiskSpec{"logs-2", "/mnt/logs/", DataDiskKind::kFile, 1000ull << 20,
                        DataDiskFormat::kRaw});
  CHECK(format_disk_list(c.vm_disks)
        == "data=/var/lib/berth/data:50Gi,scratch=/dev/xvdb,logs-2=/mnt/logs/:1000Mi:raw");
  CHECK(parse_ok(minimal()).vm_disks.empty());
  CHECK(parse_disk_list("a=/d:qcow2:1G").disks.at(0).size == 1ull << 30);
  CHECK(parse_disk_list("a=/d:2000001").disks.at(0).size == 2000384);  // rounded up to 512
}

TEST_CASE("VM_DISKS: every bad entry is reported at once and names the disk", "[config][disks]") {
  const auto result = parse_disk_list(
      "Data=/x:1G,ok=relative:1G,b=/y:10k,c=/z,c=/w,d=/dev/sdb,e=/dev/sdb,"
      "noeq,f=/f:1G:raw:qcow2,g=/g:raw,h=/../etc:1G,"
      "an-overly-long-name-x=/z:1G");
  const std::vector<std::string> expected = {
      "disk name \"Data\" must be 1-20 characters of a-z, 0-9 and - (not first): it is the "
      "virtio serial number",
      "disk \"ok\": \"relative\" is not an absolute path (without '..', ':', '=' or ',')",
      "disk \"b\": \"10k\" is neither a size from 1Mi to 1Pi (given once) nor raw/qcow2",
      "disk \"b\": a folder needs a size, e.g. b=/y:10Gi (a block device has no options)",
      "disk name \"c\" is used twice",
      "disks \"d\" and \"e\" are both /dev/sdb",
      "\"noeq\" is not name=/path[:options]",
      "disk \"f\": more than one format",
      "disk \"g\": a folder needs a size, e.g. g=/g:10Gi (a block device has no options)",
      "disk \"h\": \"/../etc\" is not an absolute path (without '..', ':', '=' or ',')",
      "disk name \"an-overly-long-name-x\" must be 1-20 characters of a-z, 0-9 and - (not "
      "first): it is the virtio serial number",
  };
  CHECK(result.errors == expected);
  CHECK(result.disks.empty());
  CHECK(parse_disk_list("").errors.size() == 1);
  CHECK(parse_disk_list("a=/a,,b=/b").errors.size() == 1);
  std::string many;
  for (int i = 0; i < 17; ++i)
    many += fmt::format("d{}=/dev/vd{},", i, i);
  CHECK(parse_disk_list(many).errors
        == std::vector<std::string>{"17 disks given; at most 16 are supported"});
  // In the whole configuration: one ConfigError per problem, each starting with the name.
  auto config = parse_config(lookup(with(minimal(), "VM_DISKS", "A=/a,b=x")));
  REQUIRE(config.errors.size() == 2);
  CHECK(config.errors[0].message.starts_with("VM_DISKS: disk name \"A\""));
  CHECK(config.errors[1].variable == "VM_DISKS");
}

TEST_CASE("IMG_LAZY: no by default, yes/no words, anything else named with its form", "[config]") {
  CHECK_FALSE(parse_ok(minimal()).img_lazy);
  CHECK(parse_ok(with(minimal(), "IMG_LAZY", "yes")).img_lazy);
  CHECK_FALSE(parse_ok(with(minimal(), "IMG_LAZY", "off")).img_lazy);
  const auto error = parse_one_error(with(minimal(), "IMG_LAZY", "later"));
  CHECK(error.variable == "IMG_LAZY");
  CHECK(error.message == "IMG_LAZY: \"later\" is not a yes/no value; expected yes/no (1/true/yes/on, "
                         "0/false/no/off)");
  auto env = with(minimal(), "IMG_LAZY", "1");
  CHECK_THAT(describe_config(parse_ok(env), lookup(env)), Catch::Contains("IMG_LAZY=yes  # set\n"));
}
