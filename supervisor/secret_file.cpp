#include "supervisor/secret_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <iterator>

namespace berth {

Result<std::string> read_secret_file(std::string_view variable, const std::filesystem::path& path) {
  std::error_code ec;
  std::ifstream in;
  if (std::filesystem::is_regular_file(path, ec))  // a directory would throw while read
    in.open(path, std::ios::binary);
  if (!in.is_open())
    return invalid_input(
        fmt::format("{} {}: cannot read it; expected a readable file holding the "
                    "secret (e.g. a mounted Secret)",
                    variable, path.string()));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    return invalid_input(fmt::format("{} {}: cannot read it", variable, path.string()));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  if (text.empty())
    return invalid_input(fmt::format("{} {}: the file is empty; expected the secret in it",
                                     variable, path.string()));
  return text;
}

Result<std::string> check_vnc_password(std::string text, const std::filesystem::path& path) {
  const bool printable =
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
  if (text.empty() || !printable)
    return invalid_input(
        fmt::format("BERTH_VNC_PASSWORD_FILE {}: the password must be printable "
                    "ASCII (letters, digits, punctuation), 1 to {} characters",
                    path.string(), kVncPasswordLength));
  return text;
}

}  // namespace berth
