#pragma once
// Berth's one error value, shared by every module: a complete sentence that says what failed, with
// the values, and what to do; a kind that callers branch on (the supervisor picks an exit code,
// the fetcher a retry); and the system error behind it, when there was one.
//
// Fallible functions return Result<T>: a value or an Error (boost::system::result). Result<void>
// is success or an Error; never "an engaged optional means failure". Code that returns a Result
// does not throw: `value()` on an error is a caller bug and throws std::logic_error.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>
#include <iosfwd>
#include <string>
#include <string_view>
#include <system_error>

namespace berth {

enum class ErrorKind {
  kInvalidInput,  // configuration or content the user must fix (a bad URL, invalid #cloud-config,
                  // a parameter that cannot work such as a 16-byte interface name)
  kTransient,     // worth retrying (connect, reset, stall, 5xx, truncated body)
  kHttp,          // a definitive HTTP answer (404, 403, redirect loop, TLS verification)
  kIntegrity,     // checksum mismatch, corrupt compressed data, unsupported image format
  kConflict,      // something already there disagrees (another base; br0 exists and is not ours)
  kPermission,    // the kernel said EPERM/EACCES: berth lacks a capability in the pod
  kNoInterface,   // a network interface berth needs does not exist
  kNoIpv4,        // the pod interface has no IPv4 address
  kOverlap,       // the VM's addresses overlap the pod's address, gateway or routes
  kUnsupported,   // the kernel or container lacks a feature (/dev/net/tun, an nft module)
  kProgram,       // a helper program (qemu-img) could not be run or failed
  kSystem,        // any other system call failure; the message carries errno's text
};

struct Error {
  Error() = default;
  Error(ErrorKind kind_, std::string message_, std::error_code cause_ = {})
      : kind(kind_), message(std::move(message_)), cause(cause_) {}

  ErrorKind kind = ErrorKind::kSystem;
  std::string message;    // complete, e.g. "IMG_CHECKSUM mismatch: expected sha256:..., got ..."
  std::error_code cause;  // the system error, when there was one
};

template <class T = void, class E = Error>
using Result = boost::system::result<T, E>;

// An Error of kind kInvalidInput: configuration or content the user must fix.
inline Error invalid_input(std::string message) {
  return {ErrorKind::kInvalidInput, std::move(message)};
}

// An Error of kind kSystem: "<what>: <strerror>", with the errno as its cause.
Error system_error(std::string_view what, int errno_value);
Error system_error(std::string_view what, const std::error_code& ec);

// The kind's name for logs and test output: "invalid-input", "permission", ...
const char* to_string(ErrorKind kind);

// Writes the message (test failures and Result's own printing show it).
std::ostream& operator<<(std::ostream& out, const Error& error);

// Called only by Result::value() on an error (a caller bug: check has_value() first).
[[noreturn]] void throw_exception_from_error(const Error& error,
                                             const boost::source_location& location);

}  // namespace berth
