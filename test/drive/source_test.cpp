// IMG_SOURCE and IMG_TARGET: the one validation the configuration and the fetcher share.

#include "drive/image/source.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace berth::drive {
namespace {

TEST_CASE("drive source: URL schemes are case-insensitive", "[source]") {
  CHECK(is_url("http://example.org/d.img"));
  CHECK(is_url("HTTPS://example.org/d.img"));
  CHECK(is_url("Http://example.org/d.img"));
  CHECK(is_https("hTTpS://example.org/d.img"));
  CHECK_FALSE(is_https("http://example.org/d.img"));
  CHECK_FALSE(is_url("ftp://example.org/d.img"));
  CHECK_FALSE(is_url("/images/http://x"));

  auto upper = parse_image_source("HTTPS://example.org/images/debian-12.qcow2.xz");
  REQUIRE(upper.has_value());
  CHECK(upper->kind == ImageSourceKind::kUrl);
  CHECK(upper->tls);
  CHECK(upper->default_target == "debian-12.qcow2");
}

TEST_CASE("drive source: paths and URLs, and what is refused", "[source]") {
  auto path = parse_image_source("/images/disk.raw.gz");
  REQUIRE(path.has_value());
  CHECK(path->kind == ImageSourceKind::kPath);
  CHECK(path->default_target == "disk.raw");

  for (const char* bad : {"images/disk.img", "ftp://example.org/d.img", "https:///d.img",
                          "https://user:secret@example.org/d.img", ""}) {
    INFO(bad);
    auto refused = parse_image_source(bad);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().kind == ErrorKind::kInvalidInput);
    CHECK_THAT(refused.error().message, Catch::StartsWith("IMG_SOURCE: \"" + std::string(bad)));
  }
}

TEST_CASE("drive source: IMG_TARGET is a plain file name", "[source]") {
  CHECK(check_image_target("debian-12.qcow2").has_value());
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "a/b", std::string(256, 'x')}) {
    auto refused = check_image_target(bad);
    REQUIRE_FALSE(refused.has_value());
    CHECK_THAT(refused.error().message, Catch::StartsWith("IMG_TARGET: \"" + bad + "\""));
  }
}

}  // namespace
}  // namespace berth::drive
