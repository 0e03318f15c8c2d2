#pragma once
// The drive module's error value: a sentence that says what was wrong and what to do, and a kind
// that the caller maps onto an exit code and the fetcher onto a retry decision.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>
#include <iosfwd>
#include <string>
#include <string_view>
#include <system_error>

namespace berth::drive {

enum class ErrorKind {
  kInvalidInput,  // configuration or content the user must fix (bad URL, invalid #cloud-config)
  kTransient,     // a failure worth retrying (connect, reset, stall, 5xx, truncated body)
  kHttp,          // a definitive HTTP answer (404, 403, redirect loop, TLS verification)
  kIntegrity,     // checksum mismatch, corrupt compressed data, unsupported image format
  kConflict,      // the cache or the pet disk disagrees with the configuration (another base)
  kSystem,        // a local system call failed (disk full, permissions)
  kProgram,       // qemu-img could not be run or failed
};

struct Error {
  ErrorKind kind = ErrorKind::kSystem;
  std::string message;  // complete, e.g. "IMG_CHECKSUM mismatch: expected sha256:..., got ..."
};

template <class T = void>
using Result = boost::system::result<T, Error>;

// An Error of kind kSystem: "<what>: <strerror>".
Error system_error(std::string_view what, int errno_value);
Error system_error(std::string_view what, const std::error_code& ec);

// Writes the message (test failures and Result's own printing show it).
std::ostream& operator<<(std::ostream& out, const Error& error);

// Called only by Result::value() on an error (a caller bug: check has_value() first).
[[noreturn]] void throw_exception_from_error(const Error& error,
                                             const boost::source_location& location);

}  // namespace berth::drive
