#pragma once
// IMG_SOURCE and IMG_TARGET, validated once (pure): the configuration parser and the fetcher both
// use these, so a value `berth config` accepts is one the fetch accepts. URL schemes are
// case-insensitive (RFC 3986): HTTPS://host/x is a URL like https://host/x.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth::drive {

// IMG_MAX_SIZE's default, of the download and of the decompressed image: 64 GiB.
inline constexpr std::uint64_t kDefaultMaxImageSize = std::uint64_t{64} << 30;

enum class ImageSourceKind { kUrl, kPath };

struct ImageSource {
  ImageSourceKind kind = ImageSourceKind::kPath;
  bool tls = false;            // an https URL
  std::string default_target;  // the last path segment, compression suffix dropped (may be empty)
};

// Parses IMG_SOURCE: an http(s) URL with a host (scheme in any case) or an absolute path.
// Errors: kInvalidInput, the message starting with `IMG_SOURCE: "<value>"`.
Result<ImageSource> parse_image_source(std::string_view source);

// Checks IMG_TARGET: a plain file name (no '/', not "." or "..", at most 255 bytes).
// Errors: kInvalidInput, the message starting with `IMG_TARGET: "<value>"`.
Result<void> check_image_target(std::string_view target);

// True when `source` starts with http:// or https://, in any case.
bool is_url(std::string_view source);

// True when `url` starts with https://, in any case.
bool is_https(std::string_view url);

}  // namespace berth::drive
