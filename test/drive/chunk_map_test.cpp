// The lazy fill's chunk map: which chunks an access touches, the fill order, the bytes present,
// and the persisted form refusing what belongs to another image or is damaged.

#include "drive/image/chunk_map.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace berth::drive {
namespace {

constexpr std::uint32_t kChunk = 4096;

TEST_CASE("chunk map: spans, coverage and the short last chunk", "[chunk-map]") {
  ChunkMap map(3 * kChunk + 100, kChunk, "\"etag\"");
  CHECK(map.chunk_count() == 4);
  CHECK(map.chunk_end(3) == 3 * kChunk + 100);
  CHECK_FALSE(map.span_of(0, 0));
  CHECK_FALSE(map.span_of(3 * kChunk + 100, 1));
  CHECK_FALSE(map.span_of(3 * kChunk, 101));
  const auto span = map.span_of(kChunk - 1, 2);
  REQUIRE(span);
  CHECK(span->first == 0);
  CHECK(span->last == 1);

  map.mark(0);
  CHECK_FALSE(map.covers(kChunk - 1, 2));
  map.mark(1);
  map.mark(1);  // twice counts once
  CHECK(map.covers(kChunk - 1, 2));
  CHECK(map.present_chunks() == 2);
  CHECK(map.present_bytes() == 2 * kChunk);
  map.mark(3);
  CHECK(map.present_bytes() == 2 * kChunk + 100);
  map.mark(7);  // past the end: ignored
  CHECK(map.present_chunks() == 3);
  CHECK_FALSE(map.complete());
}

TEST_CASE("chunk map: the fill goes on from where it is and wraps to the start", "[chunk-map]") {
  ChunkMap map(10 * kChunk, kChunk, "");
  map.mark(4);
  map.mark(5);
  CHECK(map.next_missing(4) == 6u);
  CHECK(map.next_missing(9) == 9u);
  map.mark(9);
  CHECK(map.next_missing(9) == 0u);
  for (std::uint64_t i = 0; i < 10; ++i)
    map.mark(i);
  CHECK(map.complete());
  CHECK_FALSE(map.next_missing(0));
  CHECK(map.present_bytes() == 10 * kChunk);
}

TEST_CASE("chunk map: encode and decode round trip, and what decode refuses", "[chunk-map]") {
  ChunkMap map(20 * kChunk + 1, kChunk, "\"v1\"");
  for (std::uint64_t i : {0u, 7u, 8u, 20u})
    map.mark(i);
  const auto bytes = map.encode();
  auto back = ChunkMap::decode(bytes, 20 * kChunk + 1, kChunk, "\"v1\"");
  REQUIRE(back.has_value());
  CHECK(back->present_chunks() == 4);
  CHECK(back->present(20));
  CHECK_FALSE(back->present(19));
  CHECK(back->encode() == bytes);

  auto past_end = bytes;
  REQUIRE_FALSE(past_end.empty());
  past_end[past_end.size() - 1] =
      static_cast<std::uint8_t>(past_end[past_end.size() - 1] | 0x80);  // chunk 23 of 21
  auto bad_magic = bytes;
  bad_magic[0] = 'X';
  auto short_bits = bytes;
  short_bits.pop_back();
  struct Case {
    const char* name;
    std::vector<std::uint8_t> bytes;
    std::uint64_t size;
    std::string_view validator;
    const char* message;
  };
  const Case cases[] = {
      {"magic", bad_magic, 20 * kChunk + 1, "\"v1\"", "not a berth chunk map"},
      {"size", bytes, 20 * kChunk, "\"v1\"", "the image now"},
      {"validator", bytes, 20 * kChunk + 1, "\"v2\"", "validator changed"},
      {"truncated", short_bits, 20 * kChunk + 1, "\"v1\"", "not what its header says"},
      {"empty", {}, 20 * kChunk + 1, "\"v1\"", "not a berth chunk map"},
      {"past the end", past_end, 20 * kChunk + 1, "\"v1\"", "past the last chunk"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto refused = ChunkMap::decode(c.bytes, c.size, kChunk, c.validator);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().kind == ErrorKind::kIntegrity);
    CHECK_THAT(refused.error().message, Catch::Contains(c.message));
  }
}

TEST_CASE("chunk map: chunk sizes are powers of two from 4 KiB to 64 MiB", "[chunk-map]") {
  CHECK(validate_chunk_size(4096).has_value());
  CHECK(validate_chunk_size(1u << 20).has_value());
  for (std::uint64_t bad : {0ull, 2048ull, 3ull << 20, 128ull << 20}) {
    INFO(bad);
    CHECK_FALSE(validate_chunk_size(bad).has_value());
  }
}

}  // namespace
}  // namespace berth::drive
