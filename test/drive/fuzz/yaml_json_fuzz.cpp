// libFuzzer target: the metadata and network-data path (JSON or YAML text -> JSON for
// meta_data.json and network_data.json, YAML for NoCloud's meta-data) on arbitrary bytes. It must
// not crash, hang or run out of memory; what it accepts must come out as a JSON mapping (or YAML
// that reads back), and deep input must be refused before yaml-cpp's own recursion guard (whose
// error reads "bad file").

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "drive/configdrive/cloud_config.hpp"
#include "fuzz_check.hpp"

using namespace berth::drive;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const DriveLayout layout : {DriveLayout::kConfigDrive, DriveLayout::kNoCloud}) {
    DriveInputs metadata;
    metadata.metadata = text;
    const auto content = make_drive_content(layout, "vm-0", metadata);
    if (!content) {
      FUZZ_CHECK(!content.error().message.empty());
      FUZZ_CHECK(content.error().message.find("bad file") == std::string::npos);
    } else if (layout == DriveLayout::kConfigDrive) {
      const DriveFile* file = content->file("openstack/latest/meta_data.json");
      FUZZ_CHECK(file != nullptr);
      boost::system::error_code ec;
      const auto json = boost::json::parse(file->data, ec);
      FUZZ_CHECK(!ec && json.is_object());
    } else {
      const DriveFile* file = content->file("meta-data");
      FUZZ_CHECK(file != nullptr);
      try {
        FUZZ_CHECK(YAML::Load(file->data).IsMap());
      } catch (const YAML::Exception&) {
        FUZZ_CHECK(false);  // what berth wrote must read back
      }
    }

    DriveInputs network;
    network.networkdata = text;
    const auto with_network = make_drive_content(layout, "vm-0", network);
    if (!with_network)
      FUZZ_CHECK(with_network.error().message.find("bad file") == std::string::npos);
  }
  return 0;
}
