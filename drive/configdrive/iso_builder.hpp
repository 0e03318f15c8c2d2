#pragma once
// The config drive as an ISO 9660 image (libisofs): Rock Ridge and Joliet, the volume id exactly
// as given (not upper-cased), fixed timestamps, owners and modes, so that the same content always
// gives the same bytes.

#include <string>

#include "common/error.hpp"
#include "drive/configdrive/cloud_config.hpp"

namespace berth::drive {

// Builds the image in memory. Errors: a libisofs failure (kSystem) or a file name it refuses
// (kInvalidInput).
Result<std::string> build_iso(const DriveContent& content);

}  // namespace berth::drive
