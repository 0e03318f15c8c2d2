// File primitives, progress lines, Content-Range and image-format parsing.

#include "drive/files.hpp"

#include <sys/stat.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include "drive/disk/qcow2.hpp"
#include "drive/image/http_client.hpp"
#include "drive/image/image_format.hpp"
#include "drive/image/sha256.hpp"
#include "drive/progress.hpp"
#include "drive/record.hpp"
#include "test/drive/support.hpp"

namespace berth::drive {
namespace {

using namespace test;

TEST_CASE("drive files: the sparse writer leaves zero blocks as holes", "[drive]") {
  TempDir dir;
  const auto path = dir / "sparse";
  auto writer = SparseFileWriter::open(path, OpenMode::kTruncate);
  REQUIRE(writer);
  std::string expected;
  auto write = [&](std::string_view piece) {
    REQUIRE(writer->write(piece));
    expected += piece;
  };
  write("head");                            // unaligned data
  write(std::string(8 << 20, '\0'));        // 8 MiB of zeros
  write(std::string(100, 'x'));             // data mid-block
  write(std::string((4 << 20) + 7, '\0'));  // trailing zeros: only the size records them
  REQUIRE(writer->finish());
  CHECK((slurp(path) == expected));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(st.st_size == static_cast<off_t>(expected.size()));
  CHECK(st.st_blocks * 512 <= 64 * 1024);

  SECTION("appending continues at the end") {
    auto again = SparseFileWriter::open(path, OpenMode::kAppend);
    REQUIRE(again);
    CHECK(again->offset() == expected.size());
    REQUIRE(again->write(std::string_view("tail")));
    REQUIRE(again->finish());
    CHECK((slurp(path) == expected + "tail"));
  }
}

TEST_CASE("drive files: atomic replacement and bounded reads", "[drive]") {
  TempDir dir;
  const auto path = dir / "f";
  REQUIRE(write_file_atomic(path, "one"));
  REQUIRE(write_file_atomic(path, "two"));
  CHECK((slurp(path) == "two"));
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  CHECK(*read_file(path, 3) == "two");
  auto big = read_file(path, 2);
  REQUIRE_FALSE(big);
  CHECK(big.error().kind == ErrorKind::kInvalidInput);
  REQUIRE_FALSE(read_file(dir / "missing", 10));
  REQUIRE(rename_no_replace(path, dir / "g"));
  spit(path, "three");
  auto refused = rename_no_replace(path, dir / "g");
  REQUIRE_FALSE(refused);
  CHECK((slurp(dir / "g") == "two"));
}

TEST_CASE("drive files: a file lock excludes a second holder in the same process", "[drive]") {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;
  auto first = run_sync(io, FileLock::acquire(dir / "x.lock", "x", 10ms, log.logger));
  REQUIRE(first);
  bool second_done = false;
  boost::asio::co_spawn(
      io, FileLock::acquire(dir / "x.lock", "x", 10ms, log.logger),
      [&](std::exception_ptr, Result<FileLock> r) { second_done = r.has_value(); });
  io.restart();
  io.run_for(200ms);
  CHECK_FALSE(second_done);
  // The waiter names the holder, from what the holder wrote into the lock file.
  CHECK_THAT(log.text(), Catch::Contains("waiting for another berth (")
                             && Catch::Contains(" pid " + std::to_string(::getpid()) + ")")
                             && Catch::Contains("that is fetching x"));
  { FileLock released = std::move(*first); }
  io.run_for(200ms);
  CHECK(second_done);
}

TEST_CASE("drive files: a lock whose holder dies is taken at once, and a wait can be cancelled",
          "[drive]") {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;
  const auto path = dir / "x.lock";
  ChildProcess holder({"flock", "-o", path.string(), "sleep", "60"}, false);
  while (!fs::exists(path))
    std::this_thread::sleep_for(10ms);
  int waits = 0;
  std::optional<bool> locked;
  auto count = [&] { ++waits; };
  boost::asio::cancellation_signal cancel;
  boost::asio::co_spawn(
      io, FileLock::acquire(path, "x", 10ms, log.logger, count),
      boost::asio::bind_cancellation_slot(
          cancel.slot(), [&](std::exception_ptr e, Result<FileLock> r) { locked = !e && r; }));
  io.restart();
  io.run_for(200ms);
  CHECK_FALSE(locked);
  CHECK(waits > 5);  // on_wait at every poll

  SECTION("the holder is killed: the kernel drops its lock") {
    holder.stop(SIGKILL);
    io.run_for(100ms);
    CHECK(locked == std::optional<bool>(true));
  }
  SECTION("the wait is cancelled: it ends at once, holding nothing") {
    cancel.emit(boost::asio::cancellation_type::terminal);
    io.run_for(50ms);
    CHECK(locked == std::optional<bool>(false));
  }
}

TEST_CASE("drive files: SHA-256", "[drive]") {
  CHECK(sha256_hex("").value()
        == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 running;
  running.update(std::string_view("ab"));
  CHECK(running.hex().value() == sha256_hex("ab").value());
  running.update(std::string_view("c"));
  CHECK(running.hex().value()
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(is_sha256_hex(sha256_hex("x").value()));
  CHECK_FALSE(is_sha256_hex(std::string(64, 'A')));
  CHECK_FALSE(is_sha256_hex("abc"));
}

TEST_CASE("drive files: SHA-256 of zero runs equals hashing the zeros", "[drive]") {
  for (std::uint64_t n : {0ull, 1ull, 4095ull, (1ull << 20) + 7, (3ull << 20) + 1}) {
    Sha256 fed;
    fed.update(std::string_view("head"));
    fed.update(std::string(n, '\0'));
    Sha256 zeros;
    zeros.update(std::string_view("head"));
    zeros.update_zeros(n);
    CHECK(zeros.hex().value() == fed.hex().value());
  }
}

TEST_CASE("drive record: fields round-trip in order, wrong types are not found", "[drive]") {
  const std::string text =
      Record().set("name", "a").set("size", std::uint64_t{42}).set("name", "b").serialize();
  CHECK(text == "{\"name\":\"b\",\"size\":42}\n");
  auto parsed = Record::parse(text);
  REQUIRE(parsed);
  CHECK(parsed->string("name") == "b");
  CHECK(parsed->number("size") == 42u);
  CHECK_FALSE(parsed->string("size"));
  CHECK_FALSE(parsed->number("name"));
  std::string name;
  std::string missing;
  CHECK(parsed->strings({{"name", &name}}));
  CHECK(name == "b");
  CHECK_FALSE(parsed->strings({{"name", &name}, {"other", &missing}}));
  auto odd = Record::parse(R"({"n": -1, "list": [1], "flag": true, "s": "x"})");
  REQUIRE(odd);
  CHECK_FALSE(odd->number("n"));
  CHECK_FALSE(odd->string("list"));
  CHECK(odd->string("s") == "x");
  CHECK_FALSE(Record::parse("[]"));
  CHECK_FALSE(Record::parse("{"));
}

TEST_CASE("drive progress: bytes, percent, rate and ETA", "[drive]") {
  using Clock = Progress::Clock;
  const auto t0 = Clock::time_point{};
  Progress progress("image", std::chrono::seconds(5), t0);
  progress.set_total(1 << 30);
  CHECK_FALSE(progress.update(100 << 20, t0 + std::chrono::seconds(1)));
  CHECK(progress.update(512 << 20, t0 + std::chrono::seconds(5))
        == "image: 512.0 MiB of 1.0 GiB (50%) at 102.4 MiB/s, ETA 5s");
  CHECK(progress.summary(1 << 30, t0 + std::chrono::seconds(10))
        == "1.0 GiB in 10.0s (102.4 MiB/s)");
  CHECK(format_bytes(17) == "17 B");
  CHECK(format_duration(std::chrono::seconds(65)) == "1m05s");
  CHECK(format_duration(std::chrono::seconds(7380)) == "2h03m");
}

TEST_CASE("drive http: Content-Range values", "[drive]") {
  auto full = parse_content_range("bytes 100-199/1000");
  REQUIRE(full);
  CHECK(full->first == 100u);
  CHECK(full->last == 199u);
  CHECK(full->total == 1000u);
  auto unknown = parse_content_range("bytes 0-9/*");
  REQUIRE(unknown);
  CHECK_FALSE(unknown->total);
  auto unsatisfied = parse_content_range("bytes */1000");
  REQUIRE(unsatisfied);
  CHECK_FALSE(unsatisfied->first);
  CHECK(unsatisfied->total == 1000u);
  for (auto bad : {"bytes 9-1/10", "bytes 0-10/10", "items 0-1/2", "bytes x-1/2", "bytes */*",
                   "bytes 1-2", ""})
    CHECK_FALSE(parse_content_range(bad));
  CHECK(is_transient_status(503));
  CHECK_FALSE(is_transient_status(404));
}

TEST_CASE("drive image format: told by the bytes", "[drive]") {
  using namespace std::string_view_literals;
  auto qcow2 = "QFI\xfb\0\0\0\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1\0\0\0\0"sv;
  CHECK(*detect_image_format(qcow2) == ImageFormat::kQcow2);
  auto header = parse_qcow2_header(qcow2);
  REQUIRE(header);
  CHECK(header->version == 3);
  CHECK(header->virtual_size == std::uint64_t{1} << 32);
  CHECK(header->backing_file_offset == 0);
  CHECK(*detect_image_format("\xeb\x63\x90 boot sector"sv) == ImageFormat::kRaw);
  auto vmdk = detect_image_format("KDMV\1\0\0\0"sv);
  REQUIRE_FALSE(vmdk);
  CHECK_THAT(vmdk.error().message, Catch::Contains("VMDK") && Catch::Contains("qemu-img convert"));
  CHECK_FALSE(detect_image_format("vhdxfile"sv));
  CHECK_FALSE(parse_qcow2_header("QFI"sv));
}

TEST_CASE("drive qcow2 overlay: header, refcounts and L1 laid out as qemu-img lays them out",
          "[drive]") {
  auto be = [](const std::string& bytes, std::size_t offset, std::size_t width) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i)
      value = (value << 8) | static_cast<unsigned char>(bytes[offset + i]);
    return value;
  };
  const std::string backing = "/var/lib/berth/images/base.qcow2";
  auto overlay = qcow2_overlay(std::uint64_t{2} << 30, backing, ImageFormat::kQcow2);
  REQUIRE(overlay);
  REQUIRE(overlay->chunks.size() == 3);
  const auto& head = overlay->chunks[0].second;
  auto parsed = parse_qcow2_header(head);
  REQUIRE(parsed);
  CHECK(parsed->version == 3);
  CHECK(parsed->virtual_size == std::uint64_t{2} << 30);
  CHECK(head.substr(parsed->backing_file_offset, parsed->backing_file_size) == backing);
  CHECK(be(head, 20, 4) == 16);           // 64 KiB clusters
  CHECK(be(head, 36, 4) == 4);            // 2 GiB / 512 MiB per L2 table
  CHECK(be(head, 40, 8) == 3 * 65536);    // L1 in cluster 3
  CHECK(be(head, 48, 8) == 65536);        // refcount table in cluster 1
  CHECK(be(head, 96, 4) == 4);            // 16-bit refcounts
  CHECK(be(head, 100, 4) == 112);         // header length
  CHECK(be(head, 112, 4) == 0xE2792ACA);  // backing format extension: "qcow2"
  CHECK(head.substr(120, be(head, 116, 4)) == "qcow2");
  CHECK(be(head, 128, 8) == 0);  // end of extensions
  CHECK(overlay->chunks[1].first == 65536);
  CHECK(be(overlay->chunks[1].second, 0, 8) == 2 * 65536);
  CHECK(overlay->chunks[2].first == 2 * 65536);
  CHECK(overlay->chunks[2].second == std::string("\0\1\0\1\0\1\0\1", 8));  // 4 clusters
  CHECK(overlay->file_size == 4 * 65536);

  SECTION("a raw backing file and an L1 table of more than one cluster") {
    auto big = qcow2_overlay(std::uint64_t{8} << 40, "/base.raw", ImageFormat::kRaw);  // 8 TiB
    REQUIRE(big);
    CHECK(be(big->chunks[0].second, 36, 4) == 16384);  // 128 KiB of L1: two clusters
    CHECK(big->chunks[0].second.substr(120, 3) == "raw");
    CHECK(big->chunks[2].second.size() == 5 * 2);
    CHECK(big->file_size == 5 * 65536);
  }
  SECTION("sizes and names QEMU would refuse are refused") {
    CHECK_FALSE(qcow2_overlay(0, backing, ImageFormat::kQcow2));
    CHECK_FALSE(qcow2_overlay(1000, backing, ImageFormat::kQcow2));
    CHECK_FALSE(qcow2_overlay(std::uint64_t{4} << 50, backing, ImageFormat::kQcow2));
    CHECK_FALSE(qcow2_overlay(1 << 20, "", ImageFormat::kQcow2));
    auto long_name = qcow2_overlay(1 << 20, std::string(1024, 'a'), ImageFormat::kQcow2);
    REQUIRE_FALSE(long_name);
    CHECK(long_name.error().kind == ErrorKind::kInvalidInput);
  }
}

}  // namespace
}  // namespace berth::drive
