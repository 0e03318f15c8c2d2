#pragma once
// Secrets berth reads from files (mounted Kubernetes Secrets): the control token and VNC's
// password. Their content never goes into a message, a log line or a command line.

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth {

// The file's text without trailing CR, LF and spaces. Errors (kInvalidInput) name `variable` and
// the path, never the content: the file cannot be read, or nothing is left in it.
Result<std::string> read_secret_file(std::string_view variable, const std::filesystem::path& path);

// VNC's password as QEMU takes it: 1 or more printable ASCII characters. VNC authentication is
// DES, so only the first 8 count; a longer one is accepted (the caller warns). Errors
// (kInvalidInput) name BERTH_VNC_PASSWORD_FILE and `path`, never the password.
Result<std::string> check_vnc_password(std::string text, const std::filesystem::path& path);

// How many characters of a VNC password count (RFB's DES key is 8 bytes).
inline constexpr std::size_t kVncPasswordLength = 8;

}  // namespace berth
