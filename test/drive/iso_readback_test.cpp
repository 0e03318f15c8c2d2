// Config drives read back by the tools a guest's userland uses: blkid (the label cloud-init looks
// for) and isoinfo (names in the Rock Ridge and Joliet trees, and file contents). Tier `root`
// (real programs).

#include "drive/configdrive/config_drive.hpp"
#include "test/drive/support.hpp"

namespace berth::drive::test {
namespace {

std::string output_of(const std::vector<std::string>& argv) {
  std::string output;
  INFO(argv[0]);
  REQUIRE(run_command(argv, &output) == 0);
  return output;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty())
      result.push_back(line);
  std::sort(result.begin(), result.end());
  return result;
}

struct Drive {
  TempDir dir;
  CapturedLog log;
  std::string userdata = "#cloud-config\nfqdn: vm-0.example.com\nruncmd:\n  - [touch, /x]\n";

  ConfigDriveParams params(DriveLayout layout) {
    spit(dir / "userdata", userdata);
    spit(dir / "metadata", "{ \"uuid\": \"093772fe-d6a3-4eea-84bc-5966661a0c3e\" }\n");
    spit(dir / "networkdata", layout == DriveLayout::kNoCloud
                                  ? "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
                                  : "links:\n  - {id: eth0, type: phy}\nnetworks:\n  - {id: n0, "
                                    "link: eth0, type: ipv4_dhcp}\nservices: []\n");
    return {layout, dir / "userdata", dir / "metadata", dir / "networkdata",
            "vm-0", dir / "drive.iso"};
  }
};

TEST_CASE_METHOD(Drive, "drive iso: configdrive reads back with blkid and isoinfo",
                 "[iso-readback]") {
  auto p = params(DriveLayout::kConfigDrive);
  auto drive = build_config_drive(p, *log.logger);
  REQUIRE(drive);
  const auto iso = p.iso.string();

  const auto blkid = output_of({"blkid", "-p", "-o", "export", iso});
  CHECK_THAT(blkid, Catch::Contains("\nLABEL=config-2\n") && Catch::Contains("TYPE=iso9660"));
  CHECK_THAT(output_of({"isoinfo", "-d", "-i", iso}),
             Catch::Contains("Volume id: config-2\n")
                 && Catch::Contains("Rock Ridge signatures version 1 found")
                 && Catch::Contains("Joliet with UCS level 3 found"));
  const std::vector<std::string> expected = {
      "/openstack", "/openstack/latest", "/openstack/latest/meta_data.json",
      "/openstack/latest/network_data.json", "/openstack/latest/user_data"};
  CHECK(lines(output_of({"isoinfo", "-R", "-f", "-i", iso})) == expected);
  CHECK(lines(output_of({"isoinfo", "-J", "-f", "-i", iso})) == expected);
  CHECK(output_of({"isoinfo", "-R", "-i", iso, "-x", "/openstack/latest/user_data"}) == userdata);
  const auto meta = boost::json::parse(
      output_of({"isoinfo", "-R", "-i", iso, "-x", "/openstack/latest/meta_data.json"}));
  CHECK(meta.at("uuid").as_string() == "093772fe-d6a3-4eea-84bc-5966661a0c3e");
  CHECK(meta.at("hostname").as_string() == "vm-0");
  const auto network = boost::json::parse(
      output_of({"isoinfo", "-R", "-i", iso, "-x", "/openstack/latest/network_data.json"}));
  CHECK(network.at("networks").at(0).at("type").as_string() == "ipv4_dhcp");
}

TEST_CASE_METHOD(Drive, "drive iso: nocloud reads back with blkid and isoinfo", "[iso-readback]") {
  auto p = params(DriveLayout::kNoCloud);
  auto drive = build_config_drive(p, *log.logger);
  REQUIRE(drive);
  const auto iso = p.iso.string();
  CHECK_THAT(output_of({"blkid", "-p", "-o", "export", iso}),
             Catch::Contains("\nLABEL=cidata\n") && Catch::Contains("TYPE=iso9660"));
  CHECK_THAT(output_of({"isoinfo", "-d", "-i", iso}), Catch::Contains("Volume id: cidata\n"));
  const std::vector<std::string> expected = {"/meta-data", "/network-config", "/user-data"};
  CHECK(lines(output_of({"isoinfo", "-R", "-f", "-i", iso})) == expected);
  CHECK(lines(output_of({"isoinfo", "-J", "-f", "-i", iso})) == expected);
  CHECK(output_of({"isoinfo", "-R", "-i", iso, "-x", "/user-data"}) == userdata);
  CHECK(output_of({"isoinfo", "-R", "-i", iso, "-x", "/network-config"})
        == slurp(dir / "networkdata"));
  const auto meta = output_of({"isoinfo", "-R", "-i", iso, "-x", "/meta-data"});
  CHECK_THAT(meta, Catch::Contains("instance-id: \"093772fe-d6a3-4eea-84bc-5966661a0c3e\"")
                       && Catch::Contains("local-hostname: \"vm-0\""));
}

}  // namespace
}  // namespace berth::drive::test
