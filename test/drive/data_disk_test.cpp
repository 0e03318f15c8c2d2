// Data disk files (VM_DISKS folders) with the real qemu-img, run through the supervisor's
// ChildReaper as the supervisor runs it. Tier `root` (real programs).

#include "drive/disk/data_disk.hpp"

#include <sys/stat.h>

#include "test/drive/program_fixture.hpp"

namespace berth::drive::test {
namespace {

struct DataFixture : ProgramFixture {
  DataDiskParams params(std::uint64_t size, ImageFormat format = ImageFormat::kQcow2) const {
    return {dir.path, "data", size, format, "qemu-img"};
  }
  Result<DataDiskFile> prepare(DataDiskParams p) {
    return run_sync(io, prepare_data_disk(std::move(p), run, log.logger));
  }
};

std::uint64_t allocated(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

TEST_CASE_METHOD(DataFixture,
                 "drive data disk: qcow2 made once then reused and grown but never shrunk",
                 "[data-disk]") {
  auto made = prepare(params(64 << 20));
  INFO(log.text());
  REQUIRE(made);
  CHECK(made->outcome == DiskOutcome::kCreated);
  CHECK(made->path == dir.path / "data.qcow2");
  std::string out;
  REQUIRE(run_command({"qemu-img", "info", made->path.string()}, &out) == 0);
  CHECK_THAT(out, Catch::Contains("file format: qcow2") && Catch::Contains("64 MiB"));
  // Nothing left under a temporary name.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);

  // What the guest wrote stays: the file is reused, not made again.
  REQUIRE(run_command({"qemu-io", "-c", "write -P 0x5a 0 1M", made->path.string()}) == 0);
  auto again = prepare(params(64 << 20));
  REQUIRE(again);
  CHECK(again->outcome == DiskOutcome::kReused);
  CHECK_FALSE(again->grown_from);

  auto grown = prepare(params(128 << 20));
  REQUIRE(grown);
  CHECK(grown->grown_from == 64u << 20);
  CHECK(grown->virtual_size == 128u << 20);
  REQUIRE(run_command({"qemu-io", "-c", "read -P 0x5a 0 1M", made->path.string()}, &out) == 0);
  CHECK_THAT(out, !Catch::Contains("Pattern verification failed"));

  auto shrunk = prepare(params(64 << 20));
  REQUIRE_FALSE(shrunk);
  CHECK(shrunk.error().kind == ErrorKind::kInvalidInput);
  CHECK_THAT(shrunk.error().message,
             Catch::Contains("never shrunk") && Catch::Contains("give it 128.0 MiB or more"));
}

TEST_CASE_METHOD(DataFixture, "drive data disk: raw is sparse and grows and formats never mix",
                 "[data-disk]") {
  auto made = prepare(params(256 << 20, ImageFormat::kRaw));
  INFO(log.text());
  REQUIRE(made);
  CHECK(made->path == dir.path / "data.raw");
  CHECK(fs::file_size(made->path) == 256u << 20);
  CHECK(allocated(made->path) < (1u << 20));
  auto grown = prepare(params(512 << 20, ImageFormat::kRaw));
  REQUIRE(grown);
  CHECK(fs::file_size(made->path) == 512u << 20);

  auto other = prepare(params(512 << 20, ImageFormat::kQcow2));
  REQUIRE_FALSE(other);
  CHECK(other.error().kind == ErrorKind::kConflict);
  CHECK_FALSE(fs::exists(dir.path / "data.qcow2"));

  auto missing = run_sync(
      io, prepare_data_disk({dir.path / "nope", "x", 1 << 20, ImageFormat::kRaw, "qemu-img"}, run,
                            log.logger));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == ErrorKind::kInvalidInput);
}

TEST_CASE("drive data disk: a block device is sized and anything else is refused", "[data-disk]") {
  auto null_device = block_device_size("/dev/null");
  REQUIRE_FALSE(null_device);
  CHECK_THAT(null_device.error().message, Catch::Contains("not a block device"));
  CHECK_FALSE(block_device_size("/nonexistent/dev"));
}

}  // namespace
}  // namespace berth::drive::test
