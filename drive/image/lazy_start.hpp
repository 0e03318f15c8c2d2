#pragma once
// The decision IMG_LAZY takes at start: boot from a lazily filled base image (lazy_image.hpp)
// or fall back to the full download (image_cache.hpp), and why.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "drive/files.hpp"
#include "drive/image/image_format.hpp"
#include "drive/image/lazy_image.hpp"

namespace berth::drive {

struct LazyStart {
  std::shared_ptr<LazyImage> image;
  FileLock lock;  // T.lock: held until the fill ends, so no other pod fetches T meanwhile
  ImageFormat format = ImageFormat::kRaw;
};

struct LazyDecision {
  std::optional<LazyStart> start;  // set: boot from `image`, run its fill()
  std::string reason;              // unset: why the full download (or the cached entry) is used
};

// Takes T.lock, then decides: the entry is already cached, the source is not http(s) or is
// compressed (by its first bytes), an ISO, or its server does not answer Range with a validator
// (or the probe failed transiently: the full download retries) -> no start, with the reason.
// Otherwise opens (or resumes) T.lazy, having read its first bytes. Errors: those of the lock, the
// probe and LazyImage::open/read.
boost::asio::awaitable<Result<LazyDecision>> start_lazy(LazyParams params,
                                                        std::shared_ptr<spdlog::logger> log);

}  // namespace berth::drive
