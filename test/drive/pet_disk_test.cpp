// The pet disk with the real qemu-img, run through the supervisor's ChildReaper exactly as the
// supervisor will (drive/ only sees the RunProgram function). Tier `root` (real programs).

#include "drive/disk/pet_disk.hpp"

#include <sys/stat.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <fstream>

#include "drive/image/image_cache.hpp"
#include "supervisor/children.hpp"
#include "test/drive/program_fixture.hpp"

namespace berth::drive::test {
namespace {

struct PetFixture : ProgramFixture {
  CachedImage base;

  PetFixture() {
    REQUIRE(run_command(
                {"qemu-img", "create", "-q", "-f", "qcow2", (dir / "source.qcow2").string(), "64M"})
            == 0);
    base = cache("source.qcow2", "base.qcow2");
  }

  CachedImage cache(const std::string& source, const std::string& target) {
    FetchParams p;
    p.source = (dir / source).string();
    p.image_dir = dir / "images";
    p.target = target;
    auto image = run_sync(io, fetch_image(p, log.logger));
    REQUIRE(image);
    return *image;
  }

  PetDiskParams params(std::optional<std::uint64_t> size = std::nullopt) const {
    return {dir / "disks", "vm-0", base.path, base.format, base.sha256, size, "qemu-img", {}, {}};
  }

  Result<PetDisk> prepare(PetDiskParams p) {
    return run_sync(io, prepare_pet_disk(std::move(p), run, log.logger));
  }

  boost::json::object info(const fs::path& disk) {
    std::string output;
    REQUIRE(run_command({"qemu-img", "info", "--output=json", disk.string()}, &output) == 0);
    return boost::json::parse(output).as_object();
  }
};

ino_t inode(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: created once over the base, then reused", "[pet]") {
  auto created = prepare(params());
  INFO(log.text());
  REQUIRE(created);
  CHECK(created->outcome == PetOutcome::kCreated);
  CHECK(created->path == dir / "disks" / "vm-0.qcow2");
  CHECK(created->virtual_size == 64 << 20);
  auto i = info(created->path);
  CHECK(i["format"].as_string() == "qcow2");
  CHECK(i["backing-filename"].as_string() == base.path.string());
  CHECK(i["backing-filename-format"].as_string() == "qcow2");
  const auto sidecar =
      boost::json::parse(slurp(created->path.string() + ".berth.json")).as_object();
  CHECK(sidecar.at("base").as_string() == base.path.string());
  CHECK(sidecar.at("base_sha256").as_string() == base.sha256);
  // No temporary files left behind.
  CHECK(std::distance(fs::directory_iterator(dir / "disks"), fs::directory_iterator()) == 2);
  // Berth writes the overlay itself: qemu-img must find it clean, and data written through it
  // must read back while the rest still reads from the base.
  std::string check;
  CHECK(run_command({"qemu-img", "check", created->path.string()}, &check) == 0);
  CHECK_THAT(check, Catch::Contains("No errors were found"));
  REQUIRE(
      run_command({"qemu-io", "-c", "write -P 0x5a 1M 128k", "-f", "qcow2", created->path.string()})
      == 0);
  CHECK(run_command({"qemu-io", "-c", "read -P 0x5a 1M 128k", "-c", "read -P 0 0 1M", "-f", "qcow2",
                     created->path.string()},
                    &check)
        == 0);
  CHECK_THAT(check, !Catch::Contains("Pattern verification failed"));
  CHECK(run_command({"qemu-img", "check", created->path.string()}) == 0);

  const auto before = inode(created->path);
  auto reused = prepare(params());
  REQUIRE(reused);
  CHECK(reused->outcome == PetOutcome::kReused);
  CHECK(inode(reused->path) == before);

  SECTION("grown when VM_DISK_SIZE is larger, never shrunk") {
    auto grown = prepare(params(128 << 20));
    REQUIRE(grown);
    CHECK(grown->grown_from == std::optional<std::uint64_t>(64 << 20));
    CHECK(info(grown->path)["virtual-size"].as_int64() == 128 << 20);
    auto same = prepare(params(32 << 20));
    REQUIRE(same);
    CHECK_FALSE(same->grown_from);
    CHECK(info(same->path)["virtual-size"].as_int64() == 128 << 20);
    CHECK_THAT(log.text(), Catch::Contains("never shrunk"));
  }
  SECTION("refused over another base") {
    REQUIRE(run_command(
                {"qemu-img", "create", "-q", "-f", "qcow2", (dir / "other.qcow2").string(), "32M"})
            == 0);
    base = cache("other.qcow2", "other.qcow2");
    auto refused = prepare(params());
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::kConflict);
    CHECK_THAT(refused.error().message,
               Catch::Contains("was made from the base image") && Catch::Contains("corrupt"));
    CHECK(inode(dir / "disks" / "vm-0.qcow2") == before);
  }
  SECTION("a pet disk without a record is adopted when its backing file is the base") {
    fs::remove(created->path.string() + ".berth.json");
    auto adopted = prepare(params());
    REQUIRE(adopted);
    CHECK(adopted->outcome == PetOutcome::kReused);
    CHECK(fs::exists(created->path.string() + ".berth.json"));
  }
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: created at VM_DISK_SIZE when larger", "[pet]") {
  auto created = prepare(params(100 * 1000 * 1000 + 1));  // rounded up to 512 bytes
  REQUIRE(created);
  CHECK(created->virtual_size == 100000256);
  CHECK(info(created->path)["virtual-size"].as_int64() == 100000256);
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: a foreign disk without a record is refused",
                 "[pet]") {
  fs::create_directories(dir / "disks");
  REQUIRE(run_command({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                       (dir / "source.qcow2").string(), (dir / "disks" / "vm-0.qcow2").string()})
          == 0);
  auto refused = prepare(params());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == ErrorKind::kConflict);
  CHECK_THAT(refused.error().message, Catch::Contains((dir / "source.qcow2").string()));
}

TEST_CASE_METHOD(PetFixture,
                 "drive pet disk: a blank disk for an install from an ISO, made once and kept",
                 "[pet]") {
  auto p = params(96 << 20);
  p.install = InstallMedium{dir / "images" / "installer.iso", std::string(64, 'c')};
  auto created = prepare(p);
  INFO(log.text());
  REQUIRE(created);
  CHECK(created->outcome == PetOutcome::kCreated);
  CHECK(created->virtual_size == 96 << 20);
  auto i = info(created->path);
  CHECK(i["format"].as_string() == "qcow2");
  CHECK(i["virtual-size"].as_int64() == 96 << 20);
  CHECK_FALSE(i.contains("backing-filename"));
  const auto sidecar =
      boost::json::parse(slurp(created->path.string() + ".berth.json")).as_object();
  CHECK(sidecar.at("made_for").as_string() == "install");
  CHECK(sidecar.at("install_iso").as_string() == (dir / "images" / "installer.iso").string());
  CHECK(sidecar.at("install_iso_sha256").as_string() == std::string(64, 'c'));
  CHECK(sidecar.at("base").as_string() == "");
  CHECK(std::distance(fs::directory_iterator(dir / "disks"), fs::directory_iterator()) == 2);

  // "Installed": data on the disk; the next start keeps it, whatever ISO it is given now.
  REQUIRE(
      run_command({"qemu-io", "-c", "write -P 0x5a 0 64k", "-f", "qcow2", created->path.string()})
      == 0);
  const auto before = inode(created->path);
  p.install->sha256 = std::string(64, 'd');
  p.size = 128 << 20;
  auto reused = prepare(p);
  REQUIRE(reused);
  CHECK(reused->outcome == PetOutcome::kReused);
  CHECK(reused->grown_from == std::optional<std::uint64_t>(96 << 20));
  CHECK(inode(reused->path) == before);
  std::string out;
  CHECK(run_command({"qemu-io", "-c", "read -P 0x5a 0 64k", "-f", "qcow2", reused->path.string()},
                    &out)
        == 0);
  CHECK_THAT(out, !Catch::Contains("Pattern verification failed"));
  CHECK_THAT(log.text(), Catch::Contains("was made for"));

  // Then a disk image as IMG_SOURCE: the installed disk is a standalone disk, reused as it is.
  auto as_image = prepare(params());
  REQUIRE(as_image);
  CHECK(as_image->outcome == PetOutcome::kReused);
  CHECK(inode(as_image->path) == before);
}

TEST_CASE_METHOD(PetFixture,
                 "drive pet disk: an install needs VM_DISK_SIZE and never takes an overlay",
                 "[pet]") {
  auto p = params();
  p.install = InstallMedium{dir / "images" / "installer.iso", std::string(64, 'c')};
  auto no_size = prepare(p);
  REQUIRE_FALSE(no_size);
  CHECK(no_size.error().kind == ErrorKind::kInvalidInput);
  CHECK_THAT(no_size.error().message, Catch::Contains("VM_DISK_SIZE"));
  CHECK_FALSE(fs::exists(dir / "disks" / "vm-0.qcow2"));

  auto overlay = prepare(params());
  REQUIRE(overlay);
  const auto before = inode(overlay->path);
  p.size = 64 << 20;
  auto refused = prepare(p);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == ErrorKind::kConflict);
  CHECK_THAT(refused.error().message,
             Catch::Contains("IMG_SOURCE is an ISO") && Catch::Contains(base.path.string()));
  CHECK(inode(dir / "disks" / "vm-0.qcow2") == before);
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: over a raw base image", "[pet]") {
  {
    std::ofstream raw(dir / "source.raw", std::ios::binary);
    raw << std::string(3 << 20, 'r');  // 3 MiB
  }
  base = cache("source.raw", "base.raw");
  REQUIRE(base.format == ImageFormat::kRaw);
  auto created = prepare(params());
  INFO(log.text());
  REQUIRE(created);
  CHECK(created->virtual_size == 3 << 20);
  auto i = info(created->path);
  CHECK(i["backing-filename-format"].as_string() == "raw");
  CHECK(i["virtual-size"].as_int64() == 3 << 20);
  std::string out;
  CHECK(run_command({"qemu-io", "-c", "read -P 0x72 0 3M", "-f", "qcow2", created->path.string()},
                    &out)
        == 0);
  CHECK_THAT(out, !Catch::Contains("Pattern verification failed"));
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: qemu-img failures are reported", "[pet]") {
  REQUIRE(prepare(params()));  // created without qemu-img; growing it needs qemu-img
  auto p = params(128 << 20);
  p.qemu_img = "/nonexistent/qemu-img";
  auto failed = prepare(p);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().kind == ErrorKind::kProgram);
  CHECK_THAT(failed.error().message, Catch::Contains("could not be run"));
  CHECK(info(dir / "disks" / "vm-0.qcow2")["virtual-size"].as_int64() == 64 << 20);

  SECTION("and a hostname that is not a file name is refused") {
    auto q = params();
    q.hostname = "../escape";
    auto bad = prepare(q);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::kInvalidInput);
  }
}

// A qemu-img that hangs (a dead NFS server): writes its pid to `pidfile` and sleeps, ignoring
// SIGTERM when `stubborn`.
fs::path hanging_qemu_img(const fs::path& dir, bool stubborn) {
  const fs::path script = dir / "qemu-img";
  spit(script, std::string("#!/bin/sh\n") + (stubborn ? "trap '' TERM\n" : "") + "echo $$ > "
                   + (dir / "qemu-img.pid").string()
                   + "\necho resizing\nwhile :; do sleep 0.1; done\n");
  fs::permissions(script, fs::perms::owner_all);
  return script;
}

bool process_gone(const fs::path& pidfile) {
  const std::string pid = slurp(pidfile);
  REQUIRE_FALSE(pid.empty());
  return !fs::exists("/proc/" + pid.substr(0, pid.find('\n')));
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: a hung qemu-img is ended at its deadline", "[pet]") {
  REQUIRE(prepare(params()));
  auto p = params(128 << 20);
  const bool stubborn = GENERATE(false, true);  // SIGTERM ends it, or SIGKILL has to
  p.qemu_img = hanging_qemu_img(dir.path, stubborn).string();
  deadline = 1s;
  const auto started = std::chrono::steady_clock::now();
  auto failed = prepare(p);
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(failed);
  CHECK(failed.error().kind == ErrorKind::kProgram);
  CHECK_THAT(failed.error().message, Catch::Contains("did not finish within its deadline")
                                         && Catch::Contains("It wrote: resizing"));
  CHECK(took < (stubborn ? 1s + kProgramGrace + 1s : 2s));
  CHECK(process_gone(dir / "qemu-img.pid"));
  CHECK(reaper.running() == 0);
  CHECK(info(dir / "disks" / "vm-0.qcow2")["virtual-size"].as_int64() == 64 << 20);
}

TEST_CASE_METHOD(PetFixture, "drive pet disk: a cancelled qemu-img run ends the program", "[pet]") {
  REQUIRE(prepare(params()));
  auto p = params(128 << 20);
  p.qemu_img = hanging_qemu_img(dir.path, false).string();
  boost::asio::cancellation_signal stop;
  std::optional<std::chrono::steady_clock::time_point> ended;
  std::exception_ptr error;
  boost::asio::co_spawn(
      io, prepare_pet_disk(p, run, log.logger),
      boost::asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e, Result<PetDisk>) {
        error = e;
        ended = std::chrono::steady_clock::now();
      }));
  io.restart();
  while (!fs::exists(dir / "qemu-img.pid"))
    io.run_for(20ms);
  const auto cancelled = std::chrono::steady_clock::now();
  stop.emit(boost::asio::cancellation_type::terminal);
  while (!ended && std::chrono::steady_clock::now() - cancelled < 10s)
    io.run_for(20ms);
  REQUIRE(ended);
  CHECK(error);  // operation_aborted, out of the step
  CHECK(*ended - cancelled < 1s);
  CHECK(process_gone(dir / "qemu-img.pid"));
  CHECK(reaper.running() == 0);
}

}  // namespace
}  // namespace berth::drive::test
