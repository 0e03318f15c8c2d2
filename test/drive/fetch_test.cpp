// The image fetch and cache against a real HTTP(S) server on loopback that injects faults
// (fault_server.py), and against local files. Tier `root` (network, real programs).

#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "drive/image/image_cache.hpp"
#include "drive/image/sha256.hpp"
#include "test/drive/support.hpp"

namespace berth::drive::test {
namespace {

struct FetchFixture {
  TempDir dir;
  fs::path www = dir / "www";
  fs::path cache = dir / "cache";
  std::string data = random_bytes(3 << 20);
  std::string sha = sha256_hex(data).value();
  CapturedLog log;
  boost::asio::io_context io;

  FetchFixture() {
    fs::create_directories(www);
    spit(www / "disk.img", data);
  }

  FetchParams params(std::string source, std::string target = "disk.img") const {
    FetchParams p;
    p.source = std::move(source);
    p.image_dir = cache;
    p.target = std::move(target);
    p.connect_timeout = 2s;
    p.stall_timeout = 1s;
    p.max_attempts = 3;
    p.backoff = 20ms;
    p.max_backoff = 100ms;
    p.progress_interval = 100ms;
    p.lock_poll = 20ms;
    return p;
  }

  Result<CachedImage> fetch(FetchParams p) {
    return run_sync(io, fetch_image(std::move(p), log.logger));
  }

  fs::path cert = dir / "cert.pem";
  fs::path key = dir / "key.pem";

  // A self-signed certificate for 127.0.0.1 (cert, key), for a TLS FaultServer.
  void make_certificate() const {
    std::string output;
    REQUIRE(run_command({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key.string(), "-out",
                         cert.string(), "-days", "1", "-subj", "/CN=berth-test", "-addext",
                         "subjectAltName=IP:127.0.0.1,DNS:localhost"},
                        &output)
            == 0);
  }

  bool leftovers(const std::string& target = "disk.img") const {
    for (const auto* suffix : {".download", ".download.json", ".part"})
      if (fs::exists(cache / (target + suffix)))
        return true;
    return false;
  }
};

TEST_CASE_METHOD(FetchFixture, "drive fetch: download, verify, cache, reuse", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img"));
  p.sha256 = sha;
  auto first = fetch(p);
  INFO(log.text());
  REQUIRE(first);
  CHECK(first->outcome == CacheOutcome::kDownloaded);
  CHECK(first->path == cache / "disk.img");
  CHECK(first->format == ImageFormat::kRaw);
  CHECK(first->sha256 == sha);
  CHECK(first->size == data.size());
  CHECK((slurp(first->path) == data));
  CHECK(fs::exists(cache / "disk.img.berth.json"));
  CHECK_FALSE(leftovers());

  auto second = fetch(p);
  REQUIRE(second);
  CHECK(second->outcome == CacheOutcome::kCached);
  CHECK(server.requests().size() == 1);

  SECTION("another IMG_CHECKSUM for the same entry is a conflict, the entry is kept") {
    p.sha256 = std::string(64, 'a');
    auto third = fetch(p);
    REQUIRE_FALSE(third);
    CHECK(third.error().kind == ErrorKind::kConflict);
    CHECK_THAT(third.error().message, Catch::Contains("never replaced"));
    CHECK((slurp(cache / "disk.img") == data));
  }
  SECTION("a truncated entry is detected and fetched again") {
    fs::resize_file(cache / "disk.img", 1000);
    auto again = fetch(p);
    REQUIRE(again);
    CHECK(again->outcome == CacheOutcome::kDownloaded);
    CHECK((slurp(cache / "disk.img") == data));
    CHECK_THAT(log.text(), Catch::Contains("corrupt"));
  }
  SECTION("an entry without a record is checked and adopted") {
    fs::remove(cache / "disk.img.berth.json");
    auto adopted = fetch(p);
    REQUIRE(adopted);
    CHECK(adopted->outcome == CacheOutcome::kCached);
    CHECK(adopted->sha256 == sha);
    CHECK(server.requests().size() == 1);
  }
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: HTTP 404 fails at once", "[fetch]") {
  FaultServer server(www, dir.path);
  auto result = fetch(params(server.url("/files/missing.img"), "missing.img"));
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kHttp);
  CHECK_THAT(result.error().message, Catch::Contains("HTTP 404") && Catch::Contains("IMG_SOURCE"));
  CHECK(server.requests().size() == 1);
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: HTTP 500 is retried until it succeeds", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img?fail=2"));
  p.sha256 = sha;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE(result);
  CHECK(server.requests().size() == 3);
  CHECK_THAT(log.text(), Catch::Contains("HTTP 500") && Catch::Contains("attempt 2 of 3"));

  SECTION("and gives up after max_attempts") {
    auto q = params(server.url("/files/disk.img?fail=10"), "other.img");
    auto failed = fetch(q);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().kind == ErrorKind::kTransient);
    CHECK_THAT(failed.error().message, Catch::Contains("gave up after 3 attempts"));
  }
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: redirects are followed, loops refused", "[fetch]") {
  FaultServer server(www, dir.path);
  auto ok = fetch(params(server.url("/redirect?to=/files/disk.img")));
  REQUIRE(ok);
  CHECK((slurp(ok->path) == data));

  auto loop = fetch(params(server.url("/loop/a"), "loop.img"));
  REQUIRE_FALSE(loop);
  CHECK(loop.error().kind == ErrorKind::kHttp);
  CHECK_THAT(loop.error().message, Catch::Contains("redirect loop"));
  CHECK(server.requests("/loop").size() == 2);
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: a truncated body is resumed with Range", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img?truncate=1000000"));
  p.sha256 = sha;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE(result);
  CHECK((slurp(result->path) == data));
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1]["status"].as_int64() == 206);
  CHECK(requests[1]["range"].as_string() == "bytes=1000000-");
  CHECK_FALSE(requests[1]["if_range"].is_null());  // the ETag guards the resume
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: without Range support the download restarts",
                 "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img?truncate=1000000&norange=1"));
  p.sha256 = sha;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE(result);
  CHECK((slurp(result->path) == data));
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1]["range"].as_string() == "bytes=1000000-");
  CHECK(requests[1]["status"].as_int64() == 200);
  CHECK_THAT(log.text(), Catch::Contains("starting over"));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: a wrong checksum discards the download", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img"));
  const std::string wrong(64, '0');
  p.sha256 = wrong;
  auto result = fetch(p);
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kIntegrity);
  CHECK_THAT(result.error().message, Catch::StartsWith("IMG_CHECKSUM mismatch: expected sha256:"
                                                       + wrong + ", got sha256:" + sha)
                                         && Catch::Contains("discarded"));
  CHECK_FALSE(fs::exists(cache / "disk.img"));
  CHECK_FALSE(leftovers());
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: a stalled server hits the deadline", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img?stall=100000"));
  p.max_attempts = 2;
  const auto started = std::chrono::steady_clock::now();
  auto result = fetch(p);
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kTransient);
  CHECK_THAT(result.error().message, Catch::Contains("no data from 127.0.0.1"));
  CHECK(took < 6s);
  // What arrived is kept for the next start to resume.
  CHECK(fs::exists(cache / "disk.img.download"));
}

TEST_CASE_METHOD(FetchFixture,
                 "drive fetch: a compressed download left by an earlier start is replayed and "
                 "resumed",
                 "[fetch]") {
  REQUIRE(run_command({"xz", "-k", "-0", "-q", (www / "disk.img").string()}) == 0);
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img.xz?stall=1500000&stall_times=1"));
  p.sha256 = sha;
  p.max_attempts = 1;
  auto first = fetch(p);
  REQUIRE_FALSE(first);
  REQUIRE(fs::file_size(cache / "disk.img.download") == 1500000);
  // The next start: the partial bytes go through the decompressor again, the rest is fetched.
  auto second = fetch(p);
  INFO(log.text());
  REQUIRE(second);
  CHECK((slurp(second->path) == data));
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1]["status"].as_int64() == 206);
  CHECK(requests[1]["first"].as_int64() == 1500000);
  CHECK_FALSE(leftovers());
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: refused connections are retried, then fail",
                 "[fetch]") {
  // A port nobody listens on: bind one, note it, close it.
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::address_v4::loopback(), 0});
  const auto port = probe.local_endpoint().port();
  probe.close();
  auto result = fetch(params("http://127.0.0.1:" + std::to_string(port) + "/disk.img"));
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kTransient);
  CHECK_THAT(result.error().message,
             Catch::Contains("cannot connect") && Catch::Contains("gave up after 3 attempts"));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: bodies over the size limit are refused", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img"));
  p.max_size = 1 << 20;
  auto result = fetch(p);
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kIntegrity);
  // Content-Length says so: refused before a byte is written, not retried.
  CHECK_THAT(result.error().message,
             Catch::Contains("3145728 bytes (3.0 MiB), larger than IMG_MAX_SIZE (1.0 MiB)"));
  CHECK_FALSE(leftovers());
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: chunked bodies", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img?chunked=1"));
  p.sha256 = sha;
  auto result = fetch(p);
  REQUIRE(result);
  CHECK((slurp(result->path) == data));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: progress is logged with rate and ETA", "[fetch]") {
  FaultServer server(www, dir.path);
  auto result = fetch(params(server.url("/files/disk.img?rate=6000000")));
  REQUIRE(result);
  CHECK_THAT(log.text(), Catch::Matches("(.|\n)*image: [0-9.]+ MiB of 3.0 MiB \\([0-9]+%\\) at "
                                        "[0-9.]+ MiB/s, ETA [0-9]+s(.|\n)*"));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: compressed sources are decompressed while streaming",
                 "[fetch]") {
  struct Case {
    std::string tool;
    std::string suffix;
  };
  auto which = GENERATE(Case{"gzip", ".gz"}, Case{"xz", ".xz"}, Case{"zstd", ".zst"});
  REQUIRE(run_command({which.tool, "-k", "-q", (www / "disk.img").string()}) == 0);
  const std::string compressed = slurp(www / ("disk.img" + which.suffix));
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img" + which.suffix));
  SECTION("checksum of the compressed file") {
    p.sha256 = sha256_hex(compressed).value();
  }
  SECTION("checksum of the image") {
    p.sha256 = sha;
  }
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE(result);
  CHECK(result->sha256 == sha);
  CHECK((slurp(result->path) == data));
  CHECK_FALSE(leftovers());
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: TLS needs a trusted certificate", "[fetch]") {
  make_certificate();
  FaultServer server(www, dir.path, cert, key);
  auto p = params(server.url("/files/disk.img"));
  p.sha256 = sha;
  SECTION("untrusted: refused, not retried") {
    auto result = fetch(p);
    REQUIRE_FALSE(result);
    CHECK(result.error().kind == ErrorKind::kHttp);
    CHECK_THAT(result.error().message, Catch::Contains("not trusted"));
    CHECK_FALSE(fs::exists(cache / "disk.img"));
  }
  SECTION("with the CA bundle: fetched") {
    p.ca_file = cert;
    auto result = fetch(p);
    INFO(log.text());
    REQUIRE(result);
    CHECK((slurp(result->path) == data));
  }
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: two concurrent fetchers download once", "[fetch]") {
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/disk.img?rate=6000000"));
  p.sha256 = sha;
  std::vector<Result<CachedImage>> results;
  for (int i = 0; i < 2; ++i)
    boost::asio::co_spawn(io, fetch_image(p, log.logger),
                          [&](std::exception_ptr, Result<CachedImage> r) { results.push_back(r); });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (results.size() < 2 && std::chrono::steady_clock::now() < deadline)
    io.run_for(50ms);
  INFO(log.text());
  REQUIRE(results.size() == 2);
  REQUIRE(results[0]);
  REQUIRE(results[1]);
  CHECK(results[0]->outcome == CacheOutcome::kDownloaded);
  CHECK(results[1]->outcome == CacheOutcome::kCached);
  CHECK(server.requests().size() == 1);
  CHECK_THAT(log.text(), Catch::Contains("waiting for another berth"));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: kill -9 mid-download, then the restart resumes",
                 "[fetch]") {
  FaultServer server(www, dir.path);
  // Only the first request is slow, so the kill lands mid-download.
  const std::string url = server.url("/files/disk.img?rate=1500000&rate_times=1");
  ChildProcess tool({BERTH_DRIVE_TOOL, "fetch", "--source", url, "--dir", cache.string(),
                     "--target", "disk.img", "--sha256", sha},
                    false);
  const auto partial = cache / "disk.img.download";
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline
         && (!fs::exists(partial) || fs::file_size(partial) < 600'000))
    std::this_thread::sleep_for(20ms);
  const int status = tool.stop(SIGKILL);
  REQUIRE(WIFSIGNALED(status));
  const auto kept = fs::file_size(partial);
  REQUIRE(kept >= 600'000);
  REQUIRE(kept < data.size());

  auto p = params(url);
  p.sha256 = sha;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE(result);
  CHECK((slurp(result->path) == data));
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1]["status"].as_int64() == 206);
  CHECK(requests[1]["first"].as_int64() == static_cast<std::int64_t>(kept));
  CHECK_THAT(log.text(), Catch::Contains("resuming the download"));
  CHECK_FALSE(leftovers());
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: a local path is copied sparse", "[fetch]") {
  // 64 MiB of which only 2 blocks hold data.
  const auto source = dir / "sparse.raw";
  {
    std::ofstream out(source, std::ios::binary);
    out.seekp(1 << 20);
    out << "boot sector-ish";
    out.seekp((40 << 20) + 5);
    out << "more";
  }
  fs::resize_file(source, 64 << 20);
  auto result = fetch(params(source.string(), "sparse.raw"));
  INFO(log.text());
  REQUIRE(result);
  CHECK(result->outcome == CacheOutcome::kCopied);
  CHECK(result->size == 64 << 20);
  CHECK((slurp(result->path) == slurp(source)));
  struct stat st {};
  REQUIRE(::stat(result->path.c_str(), &st) == 0);
  CHECK(st.st_blocks * 512 <= 64 * 1024);  // a few blocks, not 64 MiB

  SECTION("compressed local sources too") {
    REQUIRE(run_command({"xz", "-k", "-0", "-q", source.string()}) == 0);
    auto xz = fetch(params(source.string() + ".xz", "from-xz.raw"));
    REQUIRE(xz);
    CHECK((slurp(xz->path) == slurp(source)));
  }
  SECTION("a relative path is refused") {
    auto bad = fetch(params("images/disk.img", "x.img"));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::kInvalidInput);
  }
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: qcow2 is told by its bytes; VMDK is refused",
                 "[fetch]") {
  REQUIRE(
      run_command({"qemu-img", "create", "-q", "-f", "qcow2", (dir / "base.qcow2").string(), "16M"})
      == 0);
  auto qcow2 = fetch(params((dir / "base.qcow2").string(), "base.img"));  // the name says nothing
  REQUIRE(qcow2);
  CHECK(qcow2->format == ImageFormat::kQcow2);

  REQUIRE(
      run_command({"qemu-img", "create", "-q", "-f", "vmdk", (dir / "disk.vmdk").string(), "16M"})
      == 0);
  auto vmdk = fetch(params((dir / "disk.vmdk").string(), "disk.vmdk"));
  REQUIRE_FALSE(vmdk);
  CHECK(vmdk.error().kind == ErrorKind::kIntegrity);
  CHECK_THAT(vmdk.error().message, Catch::Contains("qemu-img convert"));
  CHECK_FALSE(fs::exists(cache / "disk.vmdk"));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: an upper-case URL scheme is a URL", "[fetch]") {
  FaultServer server(www, dir.path);
  std::string url = server.url("/files/disk.img");
  url.replace(0, 4, "HTTP");
  auto p = params(url);
  p.sha256 = sha;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE(result);
  CHECK(result->outcome == CacheOutcome::kDownloaded);
  CHECK((slurp(result->path) == data));
}

TEST_CASE_METHOD(FetchFixture, "drive fetch: a redirect from https to http is refused", "[fetch]") {
  make_certificate();
  const auto plain_work = dir / "plain";
  fs::create_directories(plain_work);
  FaultServer plain(www, plain_work);
  FaultServer secure(www, dir.path, cert, key);
  const std::string to = plain.url("/files/disk.img");
  const std::string from = secure.url("/redirect?to=" + to);
  auto p = params(from);
  p.ca_file = cert;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kHttp);
  CHECK_THAT(result.error().message,
             Catch::Contains(from) && Catch::Contains(to) && Catch::Contains("plain http"));
  CHECK(plain.requests().empty());
  CHECK_FALSE(fs::exists(cache / "disk.img"));
  CHECK_FALSE(leftovers());
}

TEST_CASE_METHOD(FetchFixture,
                 "drive fetch: a decompressed image over IMG_MAX_SIZE is refused, nothing kept",
                 "[fetch]") {
  // 8 MiB that xz makes small: the download fits the limit, the image does not.
  spit(www / "big.img", std::string(8 << 20, 'x'));
  REQUIRE(run_command({"xz", "-0", "-q", (www / "big.img").string()}) == 0);
  FaultServer server(www, dir.path);
  auto p = params(server.url("/files/big.img.xz"), "big.img");
  p.max_size = 4 << 20;
  auto result = fetch(p);
  INFO(log.text());
  REQUIRE_FALSE(result);
  CHECK(result.error().kind == ErrorKind::kIntegrity);
  CHECK_THAT(result.error().message, Catch::Contains("decompressed image")
                                         && Catch::Contains("IMG_MAX_SIZE")
                                         && Catch::Contains("4.0 MiB"));
  CHECK_FALSE(fs::exists(cache / "big.img"));
  CHECK_FALSE(leftovers("big.img"));
}

// A small tmpfs mounted on the cache for one test, unmounted after it.
struct SmallCache {
  fs::path where;
  explicit SmallCache(const fs::path& dir) : where(dir) {
    fs::create_directories(where);
    REQUIRE(run_command({"mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", where.string()}) == 0);
  }
  ~SmallCache() { run_command({"umount", "-l", where.string()}); }
  SmallCache(const SmallCache&) = delete;
  SmallCache& operator=(const SmallCache&) = delete;
};

TEST_CASE_METHOD(FetchFixture, "drive fetch: an image larger than the free space is refused",
                 "[fetch]") {
  spit(www / "huge.img", random_bytes(96 << 20, 7));
  SmallCache small(cache);
  FaultServer server(www, dir.path);
  const std::string says_free_space = "the image cache " + cache.string() + " has";
  SECTION("Content-Length: refused before a byte is written, nothing left behind") {
    auto result = fetch(params(server.url("/files/huge.img"), "huge.img"));
    INFO(log.text());
    REQUIRE_FALSE(result);
    CHECK_THAT(result.error().message, Catch::Contains(says_free_space)
                                           && Catch::Contains("free, the image needs")
                                           && Catch::Contains("free space"));
    CHECK_FALSE(fs::exists(cache / "huge.img"));
    CHECK_FALSE(leftovers("huge.img"));
  }
  SECTION("a local path: refused before a byte is copied") {
    auto result = fetch(params((www / "huge.img").string(), "huge.img"));
    INFO(log.text());
    REQUIRE_FALSE(result);
    CHECK_THAT(result.error().message, Catch::Contains(says_free_space)
                                           && Catch::Contains("free, the image needs 96.0 MiB"));
    CHECK_FALSE(fs::exists(cache / "huge.img"));
    CHECK_FALSE(leftovers("huge.img"));
  }
  SECTION("no Content-Length: checked while writing, before the disk is full") {
    auto p = params(server.url("/files/huge.img?chunked=1"), "huge.img");
    p.keep_free = 8 << 20;
    p.space_check_every = 2 << 20;
    auto result = fetch(p);
    INFO(log.text());
    REQUIRE_FALSE(result);
    CHECK_THAT(result.error().message, Catch::Contains(says_free_space)
                                           && Catch::Contains("free, the image needs")
                                           && Catch::Contains("to be resumed on the next start"));
    CHECK_THAT(result.error().message, !Catch::Contains("No space left"));
    CHECK_FALSE(fs::exists(cache / "huge.img"));
    CHECK(fs::exists(cache / "huge.img.download"));  // the partial download, to resume
    CHECK_FALSE(fs::exists(cache / "huge.img.part"));
  }
}

}  // namespace
}  // namespace berth::drive::test
