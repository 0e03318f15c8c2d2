// VM_FIRMWARE's files and the decision about the EFI variables next to the pet disk.

#include "supervisor/firmware.hpp"

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "drive/files.hpp"
#include "test/support/berth_process.hpp"

using namespace berth;
using berth::test::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path kVars = "/disks/vm-0.efivars.fd";
const fs::path kRecord = "/disks/vm-0.firmware.berth.json";

FirmwarePlan plan(Firmware wanted, FirmwareState state, bool reset = false) {
  return plan_firmware(wanted, state, reset, kVars, kRecord);
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("firmware: OVMF's files for each UEFI firmware", "[firmware]") {
  CHECK(ovmf_files(Firmware::kUefi, "/usr/share/OVMF").code == "/usr/share/OVMF/OVMF_CODE_4M.fd");
  CHECK(ovmf_files(Firmware::kUefi, "/usr/share/OVMF").vars_template
        == "/usr/share/OVMF/OVMF_VARS_4M.fd");
  CHECK(ovmf_files(Firmware::kUefiSecure, "/o").code == "/o/OVMF_CODE_4M.secboot.fd");
  CHECK(ovmf_files(Firmware::kUefiSecure, "/o").vars_template == "/o/OVMF_VARS_4M.ms.fd");
  CHECK(efivars_path("/disks", "vm-0") == kVars);
  CHECK(firmware_record_path("/disks", "vm-0") == kRecord);
  CHECK(set_aside_path(kVars, 1764748800) == "/disks/vm-0.efivars.fd.20251203T080000Z.old");
}

TEST_CASE("firmware: a missing OVMF file is named with the package and BERTH_OVMF_DIR",
          "[firmware]") {
  const auto found = check_ovmf_files(ovmf_files(Firmware::kUefiSecure, "/nonexistent/ovmf"),
                                      Firmware::kUefiSecure);
  REQUIRE_FALSE(found.has_value());
  CHECK(found.error().kind == ErrorKind::kInvalidInput);
  CHECK(found.error().message ==
        "VM_FIRMWARE=uefi-secure needs OVMF's /nonexistent/ovmf/OVMF_CODE_4M.secboot.fd, which is "
        "missing: install Debian's package ovmf in the image, or point BERTH_OVMF_DIR (now "
        "/nonexistent/ovmf) at the folder holding it");
}

TEST_CASE("firmware: a new disk records its firmware, and UEFI gets fresh variables",
          "[firmware]") {
  auto p = plan(Firmware::kUefi, {std::nullopt, true, false});
  CHECK_FALSE(p.refuse);
  CHECK(p.write_record);
  CHECK(p.create_vars);
  CHECK_FALSE(p.set_aside);
  CHECK(p.message.empty());
  p = plan(Firmware::kBios, {std::nullopt, true, false});
  CHECK(p.write_record);
  CHECK_FALSE(p.create_vars);
}

TEST_CASE("firmware: the same firmware keeps its variables, and makes missing ones again",
          "[firmware]") {
  auto p = plan(Firmware::kUefiSecure, {Firmware::kUefiSecure, false, true});
  CHECK_FALSE(p.refuse);
  CHECK_FALSE(p.write_record);
  CHECK_FALSE(p.create_vars);
  CHECK_FALSE(p.set_aside);
  p = plan(Firmware::kUefiSecure, {Firmware::kUefiSecure, false, false});
  CHECK(p.create_vars);
  CHECK(p.message.find("was missing") != std::string::npos);
  // A reset left in the configuration does nothing while the firmware is unchanged.
  p = plan(Firmware::kUefi, {Firmware::kUefi, false, true}, true);
  CHECK_FALSE(p.set_aside);
  CHECK_FALSE(p.create_vars);
}

TEST_CASE("firmware: a disk from before firmware records counts as BIOS", "[firmware]") {
  auto p = plan(Firmware::kBios, {std::nullopt, false, false});
  CHECK_FALSE(p.refuse);
  CHECK(p.write_record);
  p = plan(Firmware::kUefi, {std::nullopt, false, false});
  CHECK(p.refuse);
  CHECK(p.message.find("VM_FIRMWARE=uefi, but this pet disk was booted with VM_FIRMWARE=bios")
        == 0);
}

TEST_CASE("firmware: a change is refused with the fix, unless a reset is asked for", "[firmware]") {
  for (auto [before, after] : {std::pair{Firmware::kBios, Firmware::kUefi},
                               std::pair{Firmware::kUefi, Firmware::kUefiSecure},
                               std::pair{Firmware::kUefiSecure, Firmware::kUefi},
                               std::pair{Firmware::kUefi, Firmware::kBios}}) {
    const bool had_vars = before != Firmware::kBios;
    auto p = plan(after, {before, false, had_vars});
    INFO(p.message);
    CHECK(p.refuse);
    CHECK(p.message.find("Set VM_FIRMWARE=" + std::string(firmware_name(before)) + " again")
          != std::string::npos);
    CHECK(p.message.find("VM_EFIVARS_RESET=yes") != std::string::npos);
    CHECK(p.message.find(kRecord.string()) != std::string::npos);
    p = plan(after, {before, false, had_vars}, true);
    CHECK_FALSE(p.refuse);
    CHECK(p.set_aside == had_vars);
    CHECK(p.write_record);
    CHECK(p.create_vars == (after != Firmware::kBios));
  }
}

TEST_CASE("firmware: variables without a record belong to no known firmware", "[firmware]") {
  auto p = plan(Firmware::kUefi, {std::nullopt, true, true});
  CHECK(p.refuse);
  CHECK(p.message.find("of an unknown firmware") != std::string::npos);
  p = plan(Firmware::kUefi, {std::nullopt, true, true}, true);
  CHECK(p.set_aside);
  CHECK(p.create_vars);
}

TEST_CASE("firmware: prepare_firmware copies, keeps, refuses and resets on a real folder",
          "[firmware]") {
  TempDir dir;
  const fs::path ovmf = dir.path / "ovmf", disks = dir.path / "disks";
  fs::create_directories(ovmf);
  fs::create_directories(disks);
  write(ovmf / "OVMF_CODE_4M.fd", "code");
  write(ovmf / "OVMF_VARS_4M.fd", std::string(8192, '\0') + "vars");
  write(ovmf / "OVMF_CODE_4M.secboot.fd", "secure code");
  write(ovmf / "OVMF_VARS_4M.ms.fd", "ms vars");
  std::ostringstream out;
  spdlog::logger log("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  FirmwareParams params{Firmware::kUefi, ovmf, disks, "vm-0", true, false};
  const fs::path vars = disks / "vm-0.efivars.fd";

  auto flash = prepare_firmware(params, log);
  REQUIRE(flash.has_value());
  REQUIRE(flash->has_value());
  CHECK((*flash)->code == ovmf / "OVMF_CODE_4M.fd");
  CHECK((*flash)->vars == vars);
  CHECK(drive::read_file(vars, 1 << 20).value() == std::string(8192, '\0') + "vars");
  const auto owner_rw = fs::perms::owner_read | fs::perms::owner_write;
  CHECK((fs::status(vars).permissions() & fs::perms::all) == owner_rw);

  write(vars, "written by the guest");  // kept on the next start, never overwritten
  params.pet_disk_created = false;
  REQUIRE(prepare_firmware(params, log).has_value());
  CHECK(drive::read_file(vars, 1 << 20).value() == "written by the guest");

  params.firmware = Firmware::kUefiSecure;
  auto refused = prepare_firmware(params, log);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().kind == ErrorKind::kConflict);

  params.reset = true;
  REQUIRE(prepare_firmware(params, log).has_value());
  CHECK(drive::read_file(vars, 1 << 20).value() == "ms vars");
  int aside = 0;
  for (const auto& entry : fs::directory_iterator(disks))
    if (entry.path().filename().string().starts_with("vm-0.efivars.fd.")
        && entry.path().extension() == ".old") {
      ++aside;
      CHECK(drive::read_file(entry.path(), 1 << 20).value() == "written by the guest");
    }
  CHECK(aside == 1);
  CHECK(out.str().find("the old EFI variables are kept as") != std::string::npos);

  fs::remove(ovmf / "OVMF_VARS_4M.fd");
  params.firmware = Firmware::kUefi;
  auto missing = prepare_firmware(params, log);
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().kind == ErrorKind::kInvalidInput);
}
