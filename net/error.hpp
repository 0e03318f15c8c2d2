#pragma once
// Errors of the net module as values: what failed, in a sentence an operator can act on, plus a
// code the caller can branch on. Every fallible function of net/ returns a Result.

#include <boost/system/result.hpp>
#include <iosfwd>
#include <stdexcept>
#include <string>

namespace berth::net {

enum class ErrorCode {
  kPermission,   // the kernel said EPERM/EACCES: berth lacks NET_ADMIN in the pod
  kNoInterface,  // the pod interface does not exist in this network namespace
  kNoIpv4,       // the pod interface has no IPv4 address
  kOverlap,      // the VM /30 overlaps the pod's address, gateway or one of its routes
  kConflict,     // a name Berth needs is taken by something that is not Berth's (br0 is a dummy)
  kInvalid,      // a parameter cannot work (an interface name longer than 15 bytes)
  kUnsupported,  // the kernel or the container lacks a feature (/dev/net/tun, an nft module)
  kSystem,       // any other kernel or system error; the message carries errno's text
};

struct Error {
  ErrorCode code = ErrorCode::kSystem;
  std::string message;  // complete: what was attempted, with the values, why it failed, what to do
};

// boost::system::result<T, Error>: a value or an Error. `value()` on an error throws
// std::runtime_error with the message (found by argument-dependent lookup, below).
template <class T>
using Result = boost::system::result<T, Error>;

[[noreturn]] inline void throw_exception_from_error(const Error& error,
                                                    const boost::source_location&) {
  throw std::runtime_error(error.message);
}

// The name of an error code, for logs and test output ("permission", "no-interface", ...).
const char* to_string(ErrorCode code);

// Writes "<code name>: <message>".
std::ostream& operator<<(std::ostream& out, const Error& error);

}  // namespace berth::net
