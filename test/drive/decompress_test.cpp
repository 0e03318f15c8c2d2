// Streamed decompression: gzip, xz and zstd produced by their own libraries, fed in small pieces,
// concatenated streams, truncated and corrupt input.

#include "drive/image/decompress.hpp"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "test/drive/support.hpp"

namespace berth::drive {
namespace {

using test::random_bytes;

std::string gzip(std::string_view data) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string xz(std::string_view data) {
  std::string out(lzma_stream_buffer_bound(data.size()), '\0');
  std::size_t pos = 0;
  REQUIRE(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, nullptr,
                                  reinterpret_cast<const uint8_t*>(data.data()), data.size(),
                                  reinterpret_cast<uint8_t*>(out.data()), &pos, out.size())
          == LZMA_OK);
  out.resize(pos);
  return out;
}

std::string zstd(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const std::size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

Result<std::string> decompress(Compression compression, std::string_view input, std::size_t piece) {
  auto d = Decompressor::create(compression);
  std::string out;
  auto sink = [&](std::span<const char> bytes) -> Result<void> {
    out.append(bytes.data(), bytes.size());
    return {};
  };
  for (std::size_t pos = 0; pos < input.size(); pos += piece)
    if (auto r = d->feed(input.substr(pos, piece), sink); !r)
      return r.error();
  if (auto r = d->finish(sink); !r)
    return r.error();
  return out;
}

struct Codec {
  Compression compression;
  std::string (*compress)(std::string_view);
};

TEST_CASE("drive decompress: round trips, concatenation, truncation, corruption", "[drive]") {
  auto codec = GENERATE(Codec{Compression::kGzip, gzip}, Codec{Compression::kXz, xz},
                        Codec{Compression::kZstd, zstd});
  INFO(compression_name(codec.compression));
  // Compressible and incompressible parts, larger than the internal buffers.
  const std::string data = std::string(3 << 20, 'z') + random_bytes(1 << 20);
  const std::string packed = codec.compress(data);
  CHECK(detect_compression(packed) == codec.compression);

  for (std::size_t piece : {std::size_t{1} << 20, std::size_t{4093}}) {
    auto out = decompress(codec.compression, packed, piece);
    REQUIRE(out);
    CHECK((*out == data));
  }

  auto twice = decompress(codec.compression, packed + codec.compress("tail"), 65536);
  REQUIRE(twice);
  CHECK((*twice == data + "tail"));

  auto truncated = decompress(codec.compression, packed.substr(0, packed.size() / 2), 65536);
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().kind == ErrorKind::kIntegrity);

  std::string corrupt = packed;
  for (std::size_t i = packed.size() / 3; i < packed.size() / 3 + 64; ++i)
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  // gzip and xz carry checksums and refuse it; zstd frames without one may decode to other
  // bytes (IMG_CHECKSUM catches those), but never silently to the original.
  auto broken = decompress(codec.compression, corrupt, 65536);
  if (broken)
    CHECK_FALSE((*broken == data));
  else
    CHECK(broken.error().kind == ErrorKind::kIntegrity);
  if (codec.compression != Compression::kZstd)
    CHECK_FALSE(broken);
}

TEST_CASE("drive decompress: detection by magic only", "[drive]") {
  using namespace std::string_view_literals;
  CHECK(detect_compression("QFI\xfb\0\0\0\3"sv) == Compression::kNone);
  CHECK(detect_compression(""sv) == Compression::kNone);
  CHECK(detect_compression("\x1f"sv) == Compression::kNone);
  CHECK(detect_compression("\x1f\x8b"sv) == Compression::kGzip);
  CHECK(detect_compression("\xfd"
                           "7zXZ\0"sv)
        == Compression::kXz);
  CHECK(detect_compression("\x28\xb5\x2f\xfd"sv) == Compression::kZstd);
}

}  // namespace
}  // namespace berth::drive
