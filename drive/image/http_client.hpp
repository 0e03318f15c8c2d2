#pragma once
// One HTTP/1.1 GET over TCP or TLS (Boost.Beast), streamed: redirects followed up to a bound,
// every step under a deadline (resolve and connect together, then each read or write), the body
// handed to the caller piece by piece with a size limit. No retries here: the caller decides from
// the error kind (kTransient is worth retrying).

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth::drive {

struct HttpOptions {
  std::optional<std::filesystem::path> ca_file;       // PEM bundle trusted besides the system CAs
  std::chrono::milliseconds connect_timeout{15'000};  // resolve + connect + TLS handshake
  std::chrono::milliseconds stall_timeout{30'000};    // any single read or write
  unsigned max_redirects = 10;
  std::uint64_t body_limit = std::uint64_t{1} << 40;
  std::string user_agent = "berth";
};

// Content-Range: "bytes 100-199/1000", "bytes 100-199/*", "bytes */1000".
struct ContentRange {
  std::optional<std::uint64_t> first;
  std::optional<std::uint64_t> last;
  std::optional<std::uint64_t> total;
};
// Parses a Content-Range value; nullopt when malformed or not in bytes.
std::optional<ContentRange> parse_content_range(std::string_view value);

// The final response's status line and the headers the fetcher uses.
struct HttpHead {
  std::string url;  // after redirects
  unsigned status = 0;
  std::string reason;
  std::optional<std::uint64_t> content_length;
  std::optional<ContentRange> content_range;
  std::string etag;
  std::string last_modified;
  std::optional<std::chrono::seconds> retry_after;  // delta-seconds form only
};

// Asks for the bytes from `from` on (through `last`, inclusive, when set); `if_range` (an ETag or
// Last-Modified value, may be empty) makes the server send the whole entity instead when it
// changed.
struct RangeRequest {
  std::uint64_t from = 0;
  std::string if_range;
  std::optional<std::uint64_t> last;
};

enum class HeadAction { kReadBody, kSkipBody };

using OnHead = std::function<Result<HeadAction>(const HttpHead&)>;
using OnBody = std::function<Result<void>(std::span<const char>)>;

// GETs `url` (http or https), following 301/302/303/307/308 up to options.max_redirects and
// refusing loops. `on_head` sees the final response whatever its status and decides whether its
// body is read; an error it returns ends the request. Errors: kInvalidInput (bad URL or CA file),
// kTransient (DNS, connect, reset, timeouts, body cut short), kHttp (redirect loop or limit,
// untrusted certificate), kIntegrity (body over the limit), or what a callback returned.
boost::asio::awaitable<Result<void>> http_get(HttpOptions options, std::string url,
                                              std::optional<RangeRequest> range, OnHead on_head,
                                              OnBody on_body);

// True for statuses worth retrying: 408, 425, 429, 500, 502, 503, 504.
bool is_transient_status(unsigned status);

}  // namespace berth::drive
