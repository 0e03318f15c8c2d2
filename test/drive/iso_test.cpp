// The ISO image itself: identical content gives identical bytes whenever it is built, the volume
// ids are exactly the labels cloud-init looks for, and the inputs are found in files or ConfigMap
// directories.

#include <fstream>
#include <thread>

#include "drive/configdrive/config_drive.hpp"
#include "drive/configdrive/iso_builder.hpp"
#include "drive/image/image_format.hpp"
#include "test/drive/support.hpp"

namespace berth::drive {
namespace {

using namespace test;

// The 32-byte volume id of the primary (sector 16) or the Joliet supplementary (sector 17)
// volume descriptor; Joliet's is UCS-2 big-endian.
std::string volume_id(const std::string& iso, int sector) {
  REQUIRE(iso.size() >= static_cast<std::size_t>((sector + 1) * 2048));
  const std::string raw = iso.substr(sector * 2048 + 40, 32);
  if (sector == 16)
    return raw.substr(0, raw.find_last_not_of(' ') + 1);
  std::string ascii;
  for (std::size_t i = 1; i < raw.size(); i += 2)
    if (raw[i - 1] == 0 && raw[i] != 0 && raw[i] != ' ')
      ascii.push_back(raw[i]);
  return ascii;
}

// The offset of the first differing byte; npos when equal (a readable failure for big strings).
std::size_t first_difference(const std::string& a, const std::string& b) {
  const auto mismatch = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  if (mismatch.first == a.end() && mismatch.second == b.end())
    return std::string::npos;
  return static_cast<std::size_t>(mismatch.first - a.begin());
}

DriveContent sample(DriveLayout layout, std::string userdata = "#cloud-config\n{}\n") {
  DriveInputs inputs;
  inputs.userdata = std::move(userdata);
  auto content = make_drive_content(layout, "vm-0", inputs);
  REQUIRE(content);
  return *content;
}

TEST_CASE("drive iso: same content, same bytes, whenever built", "[drive]") {
  const auto content = sample(DriveLayout::kConfigDrive);
  auto first = build_iso(content);
  REQUIRE(first);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a clock leak would show
  auto second = build_iso(content);
  REQUIRE(second);
  CHECK(first_difference(*first, *second) == std::string::npos);
  CHECK(first->size() % 2048 == 0);
  auto other = build_iso(sample(DriveLayout::kConfigDrive, "#cloud-config\na: 1\n"));
  REQUIRE(other);
  CHECK(first_difference(*other, *first) != std::string::npos);
}

TEST_CASE("drive iso: the volume ids are exactly config-2 and cidata", "[drive]") {
  auto configdrive = build_iso(sample(DriveLayout::kConfigDrive));
  REQUIRE(configdrive);
  CHECK(configdrive->substr(16 * 2048 + 1, 5) == "CD001");
  CHECK(volume_id(*configdrive, 16) == "config-2");
  CHECK(volume_id(*configdrive, 17) == "config-2");
  auto nocloud = build_iso(sample(DriveLayout::kNoCloud));
  REQUIRE(nocloud);
  CHECK(volume_id(*nocloud, 16) == "cidata");
  CHECK(volume_id(*nocloud, 17) == "cidata");
}

TEST_CASE("drive iso: an ISO 9660 image is told by its bytes, not by its name", "[drive]") {
  TempDir dir;
  auto iso = build_iso(sample(DriveLayout::kConfigDrive));
  REQUIRE(iso);
  auto write = [&dir](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  auto named_disk = is_iso9660_file(write("disk.qcow2", *iso));
  REQUIRE(named_disk);
  CHECK(*named_disk);
  // A disk (MBR and zeros, or data) and a file shorter than 32 KiB are not ISOs, whatever
  // their names say.
  std::string disk(1 << 20, '\0');
  disk[510] = '\x55';
  disk[511] = '\xaa';
  CHECK_FALSE(*is_iso9660_file(write("installer.iso", disk)));
  CHECK_FALSE(*is_iso9660_file(write("short.iso", iso->substr(0, 0x8003))));
  CHECK(is_iso9660(std::string_view("CD001\x01")));
  CHECK_FALSE(is_iso9660(std::string_view("CD00")));
  auto missing = is_iso9660_file(dir / "missing.iso");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == ErrorKind::kSystem);
}

TEST_CASE("drive config drive: inputs from files, ConfigMap directories, or nowhere", "[drive]") {
  TempDir dir;
  CapturedLog log;
  // userdata: a ConfigMap volume as the kubelet lays it out.
  const auto cm = dir / "userdata";
  fs::create_directories(cm / "..2024_01_01_00_00_00.000000001");
  spit(cm / "..2024_01_01_00_00_00.000000001" / "userdata", "#cloud-config\nfqdn: a\n");
  fs::create_directory_symlink("..2024_01_01_00_00_00.000000001", cm / "..data");
  fs::create_symlink("..data/userdata", cm / "userdata");
  // metadata: a plain file. networkdata: absent.
  spit(dir / "metadata", "uuid: fixed-id\n");
  ConfigDriveParams params{DriveLayout::kConfigDrive, cm,     dir / "metadata",
                           dir / "nothing",           "vm-0", dir / "out" / "drive.iso"};
  auto drive = build_config_drive(params, *log.logger);
  INFO(log.text());
  REQUIRE(drive);
  CHECK(drive->write == DriveWrite::kWritten);
  CHECK(drive->label == "config-2");
  CHECK(drive->instance_id == "fixed-id");
  CHECK(
      drive->files
      == std::vector<std::string>{"openstack/latest/meta_data.json", "openstack/latest/user_data"});
  const auto bytes = slurp(params.iso);
  CHECK(bytes.size() == drive->size);
  CHECK(bytes.find("fqdn: a") != std::string::npos);

  auto again = build_config_drive(params, *log.logger);
  REQUIRE(again);
  CHECK(again->write == DriveWrite::kUnchanged);

  SECTION("a ConfigMap directory with a misnamed key is reported") {
    fs::create_directories(dir / "meta-cm");
    spit(dir / "meta-cm" / "meta-data", "x: 1\n");
    params.metadata = dir / "meta-cm";
    REQUIRE(build_config_drive(params, *log.logger));
    CHECK_THAT(log.text(), Catch::Contains("has no key \"metadata\" (it has: meta-data)"));
  }
  SECTION("errors name the file") {
    spit(cm / "..2024_01_01_00_00_00.000000001" / "userdata", "#cloud-config\na: [\n");
    auto bad = build_config_drive(params, *log.logger);
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message,
               Catch::StartsWith("user-data from " + (cm / "userdata").string()
                                 + ": #cloud-config is not valid YAML: line 3"));
  }
  SECTION("an input over 64 KiB is refused at start, naming the file, its size and the limit") {
    const std::string oversize = "#!/bin/sh\n" + std::string(64 * 1024 - 9, '#');
    spit(cm / "..2024_01_01_00_00_00.000000001" / "userdata", oversize);
    auto bad = build_config_drive(params, *log.logger);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::kInvalidInput);
    CHECK(bad.error().message
          == "user-data from " + (cm / "userdata").string()
                 + " is 65537 bytes; the limit is 65536 bytes (64 KiB, cloud-init's own user-data "
                   "limit on most clouds): move large files into the image or fetch them from "
                   "the guest");
    CHECK((slurp(params.iso) == bytes));  // the drive already there is left alone
  }
}

}  // namespace
}  // namespace berth::drive
