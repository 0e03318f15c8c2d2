// libFuzzer target: the #cloud-config validator on arbitrary bytes after the header, as
// check_user_data and as a drive's user-data (which must then pass byte for byte). It must not
// crash, hang or run out of memory, and deep input must be refused before yaml-cpp's own
// recursion guard (whose error reads "bad file").

#include <cstddef>
#include <cstdint>
#include <string>

#include "drive/configdrive/cloud_config.hpp"
#include "fuzz_check.hpp"

using namespace berth::drive;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string userdata =
      "#cloud-config\n" + std::string(reinterpret_cast<const char*>(data), size);
  const auto checked = check_user_data(userdata, "user-data");
  if (!checked) {
    FUZZ_CHECK(checked.error().message.starts_with("user-data"));
    FUZZ_CHECK(checked.error().message.find("bad file") == std::string::npos);
  }
  DriveInputs inputs;
  inputs.userdata = userdata;
  const auto content = make_drive_content(DriveLayout::kNoCloud, "vm-0", inputs);
  FUZZ_CHECK(content.has_value() == (checked.has_value() && userdata.size() <= kMaxInputBytes));
  if (content) {
    const DriveFile* file = content->file("user-data");
    FUZZ_CHECK(file != nullptr && file->data == userdata);
  }
  return 0;
}
