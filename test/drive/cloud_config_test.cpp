// What goes on the config drive: metadata in JSON or YAML completed with stable ids, user-data
// byte for byte, #cloud-config validated with line and column, network data.

#include "drive/configdrive/cloud_config.hpp"

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "test/drive/support.hpp"

namespace berth::drive {
namespace {

const DriveFile* find(const DriveContent& content, std::string_view path) {
  return content.file(path);
}

// Inputs with only metadata (built in one place: GCC 12 misreports optional<string> assignments
// in long test functions as maybe-uninitialized).
DriveInputs metadata_only(std::string text, std::string name = "metadata") {
  DriveInputs inputs;
  inputs.metadata.emplace(std::move(text));
  inputs.metadata_name = std::move(name);
  return inputs;
}

boost::json::object meta_json(const DriveContent& content) {
  const auto* file = find(content, "openstack/latest/meta_data.json");
  REQUIRE(file != nullptr);
  return boost::json::parse(file->data).as_object();
}

TEST_CASE("drive cloud-config: the instance id is a UUIDv5 of the hostname", "[drive]") {
  // python3 -c 'import uuid; print(uuid.uuid5(uuid.NAMESPACE_DNS, "vm-0"))'
  CHECK(derive_instance_id("vm-0") == "e505c857-6215-5d2a-a95d-39283d6fb422");
  CHECK(derive_instance_id("python.org") == "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

TEST_CASE("drive cloud-config: configdrive layout and derived metadata", "[drive]") {
  auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", {});
  REQUIRE(content);
  CHECK(content->label == "config-2");
  REQUIRE(content->files.size() == 2);
  CHECK(content->files[0].path == "openstack/latest/meta_data.json");
  CHECK(content->files[1].path == "openstack/latest/user_data");
  CHECK(content->files[1].data.empty());
  auto meta = meta_json(*content);
  CHECK(meta.at("uuid").as_string() == "e505c857-6215-5d2a-a95d-39283d6fb422");
  CHECK(meta.at("hostname").as_string() == "vm-0");
  CHECK(content->instance_id == "e505c857-6215-5d2a-a95d-39283d6fb422");
}

TEST_CASE("drive cloud-config: metadata as the seed's users wrote it (JSON)", "[drive]") {
  const auto inputs = metadata_only(R"({
    "uuid": "093772fe-d6a3-4eea-84bc-5966661a0c3e",
    "name": "my-name",
    "launch-index": "123",
    "public_keys": {"k": "ssh-ed25519 AAAA"}
  })");
  auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
  REQUIRE(content);
  auto meta = meta_json(*content);
  CHECK(meta.at("uuid").as_string() == "093772fe-d6a3-4eea-84bc-5966661a0c3e");
  CHECK(meta.at("launch-index").as_string() == "123");  // JSON types are kept
  CHECK(meta.at("public_keys").at("k").as_string() == "ssh-ed25519 AAAA");
  CHECK(meta.at("hostname").as_string() == "vm-0");

  SECTION("the same metadata on a NoCloud drive") {
    auto nocloud = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
    REQUIRE(nocloud);
    CHECK(nocloud->label == "cidata");
    REQUIRE(nocloud->files.size() == 2);
    CHECK(nocloud->files[0].path == "meta-data");
    CHECK(nocloud->files[1].path == "user-data");
    const auto yaml = YAML::Load(nocloud->files[0].data);
    CHECK(yaml["instance-id"].as<std::string>() == "093772fe-d6a3-4eea-84bc-5966661a0c3e");
    CHECK(yaml["local-hostname"].as<std::string>() == "vm-0");
    CHECK(yaml["launch-index"].Tag() == "!");  // quoted: stays a string for PyYAML too
  }
}

TEST_CASE("drive cloud-config: metadata in YAML keeps its types and the user's ids", "[drive]") {
  const auto inputs = metadata_only(
      "instance-id: i-abc\nlocal-hostname: web1\ncount: 3\nratio: 0.5\nenabled: yes\n"
      "quoted: \"42\"\nnothing: ~\nlist: [a, 1]\n");
  auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
  REQUIRE(content);
  auto meta = meta_json(*content);
  CHECK(meta.at("uuid").as_string() == "i-abc");     // from instance-id
  CHECK(meta.at("hostname").as_string() == "web1");  // from local-hostname
  CHECK(meta.at("count").as_int64() == 3);
  CHECK(meta.at("ratio").as_double() == 0.5);
  CHECK(meta.at("enabled").as_bool());
  CHECK(meta.at("quoted").as_string() == "42");
  CHECK(meta.at("nothing").is_null());
  CHECK(meta.at("list").as_array().size() == 2);
  CHECK(content->hostname == "web1");
}

TEST_CASE("drive cloud-config: invalid metadata is refused with its position", "[drive]") {
  const std::string name = "metadata from /metadata";
  SECTION("broken YAML") {
    const auto inputs = metadata_only("a: b\nc: [d\n", name);
    auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
    REQUIRE_FALSE(content);
    CHECK(content.error().kind == ErrorKind::kInvalidInput);
    CHECK_THAT(content.error().message,
               Catch::StartsWith("metadata from /metadata is neither JSON nor valid YAML: line "));
  }
  SECTION("not a mapping") {
    const auto inputs = metadata_only("- a\n- b\n", name);
    auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
    REQUIRE_FALSE(content);
    CHECK_THAT(content.error().message, Catch::Contains("must be a mapping"));
  }
  SECTION("the seed's broken example") {
    const auto inputs = metadata_only("{ ", name);
    REQUIRE_FALSE(make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs));
  }
}

TEST_CASE("drive cloud-config: user-data is passed byte for byte", "[drive]") {
  const std::string samples[] = {
      "#cloud-config\nfqdn: a.example.com\r\n",
      "#!/bin/sh\necho hi\n",
      "Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\n--b--\n",
      std::string("\x1f\x8b\x08\x00binary\0data", 15),
      "#cloud-config-archive\n- not: [a mapping\n",  // not a #cloud-config: not checked
      "#cloud-config\n",                             // empty is fine
  };
  for (const auto& userdata : samples) {
    DriveInputs inputs;
    inputs.userdata = userdata;
    auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
    INFO(userdata);
    REQUIRE(content);
    CHECK(find(*content, "openstack/latest/user_data")->data == userdata);
  }
}

TEST_CASE("drive cloud-config: an invalid #cloud-config is refused with line and column",
          "[drive]") {
  auto bad = check_user_data("#cloud-config\nusers:\n  - name: a\n   bad: [\n",
                             "user-data from /userdata/userdata");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().kind == ErrorKind::kInvalidInput);
  CHECK_THAT(bad.error().message,
             Catch::Matches("user-data from /userdata/userdata: #cloud-config is not valid YAML: "
                            "line [0-9]+, column [0-9]+: .*"));
  auto tabs = check_user_data("#cloud-config\nruncmd:\n\t- ls\n");
  REQUIRE_FALSE(tabs);
  CHECK_THAT(tabs.error().message, Catch::Contains("line 3"));
  auto list = check_user_data("#cloud-config\n- a\n");
  REQUIRE_FALSE(list);
  CHECK_THAT(list.error().message, Catch::Contains("must be a mapping"));
}

TEST_CASE("drive cloud-config: network data", "[drive]") {
  DriveInputs inputs;
  SECTION("JSON passes through to network_data.json unchanged") {
    inputs.networkdata = "{\"links\": [], \"networks\": []}";
    auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
    REQUIRE(content);
    CHECK(find(*content, "openstack/latest/network_data.json")->data == *inputs.networkdata);
  }
  SECTION("YAML becomes JSON on a configdrive") {
    inputs.networkdata = "links:\n  - id: eth0\n    type: phy\nnetworks: []\nservices: []\n";
    auto configdrive = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
    REQUIRE(configdrive);
    auto json = boost::json::parse(find(*configdrive, "openstack/latest/network_data.json")->data);
    CHECK(json.at("links").at(0).at("id").as_string() == "eth0");
  }
  SECTION("NoCloud network-config passes through as is") {
    inputs.networkdata = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n";
    auto nocloud = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
    REQUIRE(nocloud);
    CHECK(find(*nocloud, "network-config")->data == *inputs.networkdata);
  }
  SECTION("each layout refuses the other's schema") {
    inputs.networkdata = "version: 2\nethernets: {}\n";
    auto configdrive = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
    REQUIRE_FALSE(configdrive);
    CHECK_THAT(configdrive.error().message, Catch::Contains("BERTH_DRIVE_FORMAT=nocloud"));
    inputs.networkdata = "{\"links\": [], \"networks\": []}";
    auto nocloud = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
    REQUIRE_FALSE(nocloud);
    CHECK_THAT(nocloud.error().message, Catch::Contains("BERTH_DRIVE_FORMAT=configdrive"));
  }
  SECTION("invalid network data is refused") {
    inputs.networkdata = "version: [2\n";
    auto content = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
    REQUIRE_FALSE(content);
    CHECK_THAT(content.error().message, Catch::StartsWith("network data"));
  }
  SECTION("blank network data is no network data") {
    inputs.networkdata = "\n";
    auto content = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
    REQUIRE(content);
    CHECK(find(*content, "network-config") == nullptr);
  }
}

// ConfigMap content cannot crash PID 1 (issue #16): scalars are classified without std::regex
// (which recursed per character), YAML is bounded in size, depth and alias expansion.
TEST_CASE("drive cloud-config: a 100 000-digit scalar is refused by size, not a crash",
          "[drive][yaml-limits]") {
  const auto inputs =
      metadata_only("big: " + std::string(100'000, '7') + "\n", "metadata from /metadata");
  auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", inputs);
  REQUIRE_FALSE(content);
  CHECK(content.error().kind == ErrorKind::kInvalidInput);
  CHECK_THAT(content.error().message,
             Catch::Contains("metadata from /metadata is 100006 bytes")
                 && Catch::Contains("the limit is 65536 bytes (64 KiB, cloud-init's own"));
}

TEST_CASE("drive cloud-config: long scalars under the size limit keep their types",
          "[drive][yaml-limits]") {
  const std::string digits(30'000, '7');  // two of them fit in 64 KiB
  SECTION("YAML scalars on a configdrive") {
    auto content = make_drive_content(
        DriveLayout::kConfigDrive, "vm-0",
        metadata_only("big: " + digits + "\nfloat: 1." + digits
                      + "\nsmall: -12\nplus: +7\nf: .5e3\ng: 2.\nz: 00\ne: 1e5\ndot: .\n"));
    REQUIRE(content);
    auto meta = meta_json(*content);
    CHECK(meta.at("big").as_string() == digits);  // past int64: kept as written
    CHECK(meta.at("float").as_double() == Approx(1.7777777));
    CHECK(meta.at("small").as_int64() == -12);
    CHECK(meta.at("plus").as_int64() == 7);
    CHECK(meta.at("f").as_double() == 500.0);
    CHECK(meta.at("g").as_double() == 2.0);
    CHECK(meta.at("z").as_string() == "00");
    CHECK(meta.at("e").as_string() == "1e5");  // YAML 1.1 floats need a dot
    CHECK(meta.at("dot").as_string() == ".");
  }
  SECTION("a long JSON key in NoCloud's YAML") {
    auto content = make_drive_content(
        DriveLayout::kNoCloud, "vm-0",
        metadata_only("{\"key_" + digits + "\": \"-" + digits + "\", \"plain-key_1\": 1}"));
    REQUIRE(content);
    const std::string& text = find(*content, "meta-data")->data;
    CHECK_THAT(text, Catch::Contains("\nplain-key_1: 1\n"));
    auto meta = YAML::Load(text);
    CHECK(meta["key_" + digits].as<std::string>() == "-" + digits);
  }
}

TEST_CASE("drive cloud-config: a billion laughs is refused", "[drive][yaml-limits]") {
  std::string laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    const char p = static_cast<char>(c - 1);
    laughs += fmt::format(
        "{0}: &{0} [*{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}]\n", c, p);
  }
  auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0", metadata_only(laughs));
  REQUIRE_FALSE(content);
  CHECK_THAT(content.error().message,
             Catch::StartsWith("metadata: YAML expands to more than 100000 nodes"));
  auto userdata = check_user_data("#cloud-config\n" + laughs, "user-data from /userdata");
  REQUIRE_FALSE(userdata);
  CHECK_THAT(userdata.error().message,
             Catch::StartsWith("user-data from /userdata: #cloud-config: YAML expands to more "
                               "than 100000 nodes"));
}

TEST_CASE("drive cloud-config: deep nesting is refused before the parser", "[drive][yaml-limits]") {
  SECTION("60 000 '['") {
    auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0",
                                      metadata_only(std::string(60'000, '[')));
    REQUIRE_FALSE(content);
    CHECK_THAT(content.error().message,
               Catch::StartsWith("metadata is neither JSON nor valid YAML: YAML is nested deeper "
                                 "than 64 levels (line 1): flatten it"));
  }
  SECTION("100 000 '[' (over the size limit too)") {
    auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0",
                                      metadata_only(std::string(100'000, '[')));
    REQUIRE_FALSE(content);
    CHECK_THAT(content.error().message, Catch::Contains("64 KiB"));
  }
  SECTION("block sequences") {
    std::string dashes;
    for (int i = 0; i < 30'000; ++i)
      dashes += "- ";
    auto bad = check_user_data("#cloud-config\na:\n  " + dashes + "x\n");
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message, Catch::Contains("nested deeper than 64 levels (line 3)"));
  }
  SECTION("an alias inside its own anchor") {
    auto content =
        make_drive_content(DriveLayout::kConfigDrive, "vm-0", metadata_only("a: &a [*a]\n"));
    REQUIRE_FALSE(content);
    CHECK_THAT(content.error().message, Catch::Contains("nested deeper than 64 levels"));
  }
  SECTION("what is long but not deep is fine") {
    std::string keys;
    for (int i = 0; i < 100; ++i)
      keys += fmt::format("k{}: v, ", i);
    CHECK(check_user_data("#cloud-config\na: &a {" + keys + "}\nruncmd:\n  - echo a - b: c - d\n"));
    std::string siblings = "#cloud-config\nusers:\n";
    for (int i = 0; i < 1000; ++i)
      siblings += fmt::format("  - name: u{}\n    groups: [a, b]\n", i);
    CHECK(check_user_data(siblings));
  }
  SECTION("brackets after a tag count (found by the fuzzer)") {
    auto bad = check_user_data("#cloud-config\n!" + std::string(600, '[') + "\n");
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message, Catch::Contains("nested deeper than 64 levels (line 2)"));
  }
  SECTION("indentless sequences count") {
    std::string text = "a:\n";
    for (int i = 0; i < 40; ++i)
      text += std::string(2 * static_cast<std::size_t>(i), ' ') + "- a:\n";
    auto bad = check_user_data("#cloud-config\n" + text);
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message, Catch::Contains("nested deeper than 64 levels (line 3"));
  }
  SECTION("64 levels are fine") {
    auto content = make_drive_content(
        DriveLayout::kConfigDrive, "vm-0",
        metadata_only("a: " + std::string(60, '[') + "1" + std::string(60, ']') + "\n"));
    REQUIRE(content);
  }
}

TEST_CASE("drive cloud-config: metadata that is not UTF-8 is refused (found by the fuzzer)",
          "[drive][yaml-limits]") {
  // YAML let it through, and meta_data.json was then not JSON.
  auto content = make_drive_content(DriveLayout::kConfigDrive, "vm-0",
                                    metadata_only("a: \"caf\xe9\"\n", "metadata from /metadata"));
  REQUIRE_FALSE(content);
  CHECK(content.error().message
        == "metadata from /metadata is not valid UTF-8 (byte 0xe9 at offset 7): save it as UTF-8");
  CHECK(make_drive_content(DriveLayout::kConfigDrive, "vm-0",
                           metadata_only("a: caf\xc3\xa9 \xf0\x9f\x98\x80\n")));
  CHECK_FALSE(
      make_drive_content(DriveLayout::kConfigDrive, "vm-0", metadata_only("a: \xed\xa0\x80\n")));
  CHECK_FALSE(
      make_drive_content(DriveLayout::kConfigDrive, "vm-0", metadata_only("a: \xc0\xaf\n")));
  // yaml-cpp writes the escape \N (U+0085) as one raw byte.
  auto escape = make_drive_content(DriveLayout::kConfigDrive, "vm-0",
                                   metadata_only("a: 1\nb: \"next\\Nline\"\n"));
  REQUIRE_FALSE(escape);
  CHECK_THAT(escape.error().message,
             Catch::StartsWith("metadata: line 2: a string is not valid UTF-8"));
}

TEST_CASE("drive cloud-config: each input is at most 64 KiB", "[drive][yaml-limits]") {
  DriveInputs inputs;
  inputs.userdata_name = "user-data from /userdata/userdata";
  inputs.userdata = "#!/bin/sh\n" + std::string(64 * 1024 - 10, '#');
  REQUIRE(make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs));
  inputs.userdata->push_back('\n');
  auto content = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
  REQUIRE_FALSE(content);
  CHECK(content.error().message
        == "user-data from /userdata/userdata is 65537 bytes; the limit is 65536 bytes (64 KiB, "
           "cloud-init's own user-data limit on most clouds): move large files into the image or "
           "fetch them from the guest");
}

}  // namespace
}  // namespace berth::drive
