#include "net/error.hpp"

#include <ostream>

namespace berth::net {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kPermission:
      return "permission";
    case ErrorCode::kNoInterface:
      return "no-interface";
    case ErrorCode::kNoIpv4:
      return "no-ipv4";
    case ErrorCode::kOverlap:
      return "overlap";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kSystem:
      return "system";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& out, const Error& error) {
  return out << to_string(error.code) << ": " << error.message;
}

}  // namespace berth::net
