#include "qemu/config_drive_medium.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "qemu/command_line.hpp"
#include "qemu/qmp/qmp_policy.hpp"

using namespace berth::qemu;

TEST_CASE("config drive media change: one forced blockdev-change-medium on the config drive",
          "[qemu]") {
  const auto command = config_drive_media_change("/run/berth/config, drive.iso");
  CHECK(command.name == "blockdev-change-medium");
  const boost::json::object expected = {
      {"id", std::string(kConfigDriveDevice)},
      {"filename", "/run/berth/config, drive.iso"},  // a QMP string: no comma escaping
      {"format", "raw"},
      {"read-only-mode", "read-only"},
      // A guest that holds the tray locked (any open /dev/sr0 on a stock Linux) refuses it
      // without force.
      {"force", true},
  };
  CHECK(command.arguments == expected);
}

TEST_CASE("config drive media change: the control API cannot run the command itself", "[qemu]") {
  CHECK_FALSE(berth::qmp::remote_command_allowed(config_drive_media_change("/x.iso").name));
}
