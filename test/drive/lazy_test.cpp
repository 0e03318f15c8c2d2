// The lazily filled image (IMG_LAZY) against the fault-injecting HTTP server on loopback: reads
// fetched on demand ahead of the fill, the fill, the checksum, resuming from the chunk map, the
// no-Range answer, and the NBD export read by a real qemu-img. Tier `root` (network, programs).

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "common/async.hpp"
#include "drive/image/lazy_image.hpp"
#include "drive/image/lazy_start.hpp"
#include "drive/image/nbd_server.hpp"
#include "drive/image/sha256.hpp"
#include "test/drive/support.hpp"

namespace berth::drive::test {
namespace {

namespace asio = boost::asio;
constexpr std::uint32_t kChunk = 64 << 10;

struct LazyFixture {
  TempDir dir;
  fs::path www = dir / "www";
  fs::path cache = dir / "cache";
  std::string data = random_bytes((5 << 20) + 123);
  std::string sha = sha256_hex(data).value();
  CapturedLog log;
  asio::io_context io;
  FaultServer server{www, dir.path};

  LazyFixture() {
    fs::create_directories(www);
    fs::create_directories(cache);
    spit(www / "disk.img", data);
  }

  LazyParams params(const std::string& path) const {
    LazyParams p;
    p.url = server.url(path);
    p.image_dir = cache;
    p.target = "disk.img";
    p.sha256 = sha;
    p.http.connect_timeout = 2s;
    p.http.stall_timeout = 2s;
    p.chunk_size = kChunk;
    p.backoff = 20ms;
    return p;
  }

  std::shared_ptr<LazyImage> open(const LazyParams& p) {
    auto probe = run_sync(io, probe_ranges(p.http, p.url));
    REQUIRE(probe);
    REQUIRE(probe->ranges);
    CHECK(probe->size == data.size());
    auto image = LazyImage::open(p, *probe, log.logger);
    REQUIRE(image);
    return *image;
  }

  std::string read(LazyImage& image, std::uint64_t offset, std::uint32_t length) {
    auto bytes = run_sync(io, image.read(offset, length));
    REQUIRE(bytes);
    return {bytes->begin(), bytes->end()};
  }

  // The Range headers the server saw for `path`.
  std::vector<std::string> ranges(const std::string& path) const {
    std::vector<std::string> result;
    for (auto& request : server.requests(path))
      if (request["range"].is_string())
        result.emplace_back(request["range"].as_string());
    return result;
  }
};

TEST_CASE_METHOD(LazyFixture, "drive lazy: a read is fetched on demand and the fill completes it",
                 "[lazy]") {
  auto image = open(params("/files/disk.img?a"));
  const std::uint64_t offset = data.size() - 5000;  // the short last chunk and the one before
  CHECK(read(*image, offset, 4096) == data.substr(offset, 4096));
  const std::uint64_t first = offset / kChunk * kChunk;
  const std::uint64_t last =
      std::min<std::uint64_t>((offset + 4095) / kChunk * kChunk + kChunk, data.size()) - 1;
  CHECK(ranges("/files/disk.img?a").back() == fmt::format("bytes={}-{}", first, last));
  auto stats = image->stats();
  CHECK(stats.demand_requests == 1);
  CHECK(stats.present_bytes == stats.demand_bytes);
  CHECK(fs::exists(cache / "disk.img.chunks"));

  // A second read of the same bytes asks the server nothing.
  const auto asked = ranges("/files/disk.img?a").size();
  CHECK(read(*image, offset, 100) == data.substr(offset, 100));
  CHECK(ranges("/files/disk.img?a").size() == asked);

  auto filled = run_sync(io, image->fill());
  INFO(log.text());
  REQUIRE(filled);
  CHECK((slurp(cache / "disk.img") == data));
  CHECK_FALSE(fs::exists(cache / "disk.img.lazy"));
  CHECK_FALSE(fs::exists(cache / "disk.img.chunks"));
  stats = image->stats();
  CHECK(stats.verified);
  CHECK(stats.demand_bytes + stats.fill_bytes == data.size());
  CHECK(image->sha256() == sha);
  CHECK(read(*image, 0, 4096) == data.substr(0, 4096));  // the renamed file still serves
}

TEST_CASE_METHOD(LazyFixture, "drive lazy: reads during a slow fill get their bytes first",
                 "[lazy]") {
  auto p = params("/files/disk.img?rate=2000000");
  p.fill_chunks = 4;
  auto image = open(p);
  asio::co_spawn(io, image->fill(), [](std::exception_ptr, Result<void>) {});
  auto reads = [&]() -> asio::awaitable<Result<std::string>> {
    std::string joined;
    for (std::uint64_t offset :
         {std::uint64_t{4} << 20, std::uint64_t{1} << 20, std::uint64_t{7}}) {
      auto bytes = co_await image->read(offset, 8192);
      if (!bytes)
        co_return bytes.error();
      joined.append(bytes->begin(), bytes->end());
    }
    co_return joined;
  };
  auto joined = run_sync(io, reads());
  REQUIRE(joined);
  CHECK(*joined == data.substr(4 << 20, 8192) + data.substr(1 << 20, 8192) + data.substr(7, 8192));
  CHECK_FALSE(image->stats().verified);  // 5 MiB at 2 MB/s: the fill is still running
  CHECK(image->stats().demand_bytes > 0);
  while (!image->stats().verified)
    io.run_for(50ms);
  CHECK((slurp(cache / "disk.img") == data));
}

TEST_CASE_METHOD(LazyFixture,
                 "drive lazy: a second start on the same image waits for the first one's fill, "
                 "then uses the cached image: one download",
                 "[lazy]") {
  const std::string path = "/files/disk.img?rate=4000000";  // 5 MiB: about 1.3 s of fill
  auto first = run_sync(io, start_lazy(params(path), log.logger));
  REQUIRE(first);
  REQUIRE(first->start);
  auto image = first->start->image;
  std::optional<Result<LazyDecision>> second;
  asio::co_spawn(
      io, start_lazy(params(path), log.logger),
      [&second](std::exception_ptr, Result<LazyDecision> decided) { second = std::move(decided); });
  bool filled = false;
  asio::co_spawn(io, image->fill(), [&](std::exception_ptr, Result<void> done) {
    filled = done.has_value();
    first->start->lock = FileLock{};  // as the supervisor does when the fill ends
  });
  // run_sync left the loop stopped (out of work): restart it, and give up after a minute.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  auto turn = [&] {
    io.restart();
    io.run_for(50ms);
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  };
  while (!image->stats().verified && !second)
    turn();
  CHECK_FALSE(second);  // it waited on T.lock while the first start filled
  while (!second)
    turn();
  INFO(log.text());
  CHECK(filled);
  REQUIRE(*second);
  CHECK_FALSE((*second)->start);
  CHECK((*second)->reason == "another pod cached the image meanwhile");
  CHECK((slurp(cache / "disk.img") == data));
  // The server sent the image once: the ranges asked, besides the first start's probe, add up
  // to its size.
  const auto asked_ranges = ranges(path);
  std::uint64_t asked = 0;
  for (const auto& range : asked_ranges) {
    if (range == "bytes=0-0")
      continue;
    std::uint64_t from = 0, to = 0;
    REQUIRE(std::sscanf(range.c_str(), "bytes=%" SCNu64 "-%" SCNu64, &from, &to) == 2);
    asked += to - from + 1;
  }
  CHECK(asked == data.size());
  CHECK(std::count(asked_ranges.begin(), asked_ranges.end(), "bytes=0-0") == 1);
}

TEST_CASE_METHOD(LazyFixture, "drive lazy: a wrong checksum discards the filled image", "[lazy]") {
  auto p = params("/files/disk.img?b");
  p.sha256 = std::string(64, 'a');
  auto image = open(p);
  auto filled = run_sync(io, image->fill());
  REQUIRE_FALSE(filled);
  CHECK(filled.error().kind == ErrorKind::kIntegrity);
  CHECK_THAT(filled.error().message, Catch::Contains("IMG_CHECKSUM mismatch"));
  CHECK_FALSE(fs::exists(cache / "disk.img"));
  CHECK_FALSE(fs::exists(cache / "disk.img.lazy"));
  CHECK_FALSE(fs::exists(cache / "disk.img.chunks"));
}

TEST_CASE_METHOD(LazyFixture, "drive lazy: a new process resumes from the chunk map", "[lazy]") {
  const std::string path = "/files/disk.img?c";
  {
    auto image = open(params(path));
    (void)read(*image, 0, 3 * kChunk);
    CHECK(image->stats().present_bytes == 3 * kChunk);
  }
  auto image = open(params(path));
  CHECK(image->stats().present_bytes == 3 * kChunk);
  CHECK(read(*image, 0, 3 * kChunk) == data.substr(0, 3 * kChunk));
  REQUIRE(run_sync(io, image->fill()));
  CHECK(image->stats().fill_bytes == data.size() - 3 * kChunk);
  // The three chunks read before the restart were asked for once, by that read only.
  const auto all = ranges(path);
  CHECK(std::count(all.begin(), all.end(), fmt::format("bytes=0-{}", 3 * kChunk - 1)) == 1);
  CHECK(std::count_if(
            all.begin(), all.end(),
            [](const std::string& r) { return r.starts_with("bytes=0-") && r != "bytes=0-0"; })
        == 1);
  CHECK((slurp(cache / "disk.img") == data));
}

TEST_CASE_METHOD(LazyFixture,
                 "drive lazy: a server that sends the rest of the file for a range is cut off",
                 "[lazy]") {
  auto image = open(params("/files/disk.img?tillend=1"));
  CHECK(read(*image, 3 * kChunk + 5, 100) == data.substr(3 * kChunk + 5, 100));
  CHECK(image->stats().demand_bytes == kChunk);
  INFO(log.text());
  REQUIRE(run_sync(io, image->fill()));
  CHECK((slurp(cache / "disk.img") == data));
}

TEST_CASE_METHOD(LazyFixture, "drive lazy: a server without Range is told apart", "[lazy]") {
  auto p = params("/files/disk.img?norange=1");
  auto probe = run_sync(io, probe_ranges(p.http, p.url));
  REQUIRE(probe);
  CHECK_FALSE(probe->ranges);
  CHECK_THAT(probe->reason, Catch::Contains("answered 200"));
}

// The image is not a multiple of 512 bytes: the export is padded with zeros (QEMU 7.2 hung on the
// unaligned tail of a simple reply).
TEST_CASE_METHOD(LazyFixture, "drive lazy: qemu-img reads the whole image through the NBD export",
                 "[lazy][lazy-nbd]") {
  auto image = open(params("/files/disk.img?d"));
  NbdExport exported{
      dir / "image.sock", "base", data.size(),
      [image](std::uint64_t offset, std::uint32_t length) { return image->read(offset, length); }};
  auto nbd = NbdServer::listen(io.get_executor(), exported, log.logger);
  REQUIRE(nbd);
  asio::co_spawn(io, (*nbd)->run(), log_exceptions(log.logger, "NBD server"));
  // qemu-img runs beside the loop, which this thread pumps until it exits (at most 60 s).
  const fs::path copy = dir / "copy.raw";
  ChildProcess qemu_img({"qemu-img", "convert", "-f", "raw", "-O", "raw",
                         "nbd+unix:///base?socket=" + (dir / "image.sock").string(), copy.string()},
                        false);
  int status = -1;
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    io.run_for(50ms);
    io.restart();
    if (::waitpid(qemu_img.pid, &status, WNOHANG) == qemu_img.pid) {
      qemu_img.pid = -1;
      break;
    }
  }
  (*nbd)->close();
  const int rc = qemu_img.pid < 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const std::string output;
  INFO(output << log.text());
  REQUIRE(rc == 0);
  const auto copied = slurp(copy);
  REQUIRE(copied.size() == (data.size() + 511) / 512 * 512);
  CHECK((copied.substr(0, data.size()) == data));
  CHECK(copied.find_first_not_of('\0', data.size()) == std::string::npos);
  CHECK((*nbd)->counters().reads > 0);
  CHECK((*nbd)->counters().read_errors == 0);
  CHECK(image->stats().demand_bytes == data.size());
}

}  // namespace
}  // namespace berth::drive::test
