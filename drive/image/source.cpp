#include "drive/image/source.hpp"

#include <fmt/format.h>

#include <boost/url/parse.hpp>
#include <cctype>
#include <filesystem>

namespace berth::drive {

namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size())
    return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i])
      return false;
  return true;
}

std::string strip_compression_suffix(std::string name) {
  for (std::string_view suffix : {".gz", ".xz", ".zst"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      name.resize(name.size() - suffix.size());
      break;
    }
  }
  return name;
}

Error bad_source(std::string_view source, std::string_view what) {
  return {ErrorKind::kInvalidInput,
          fmt::format("IMG_SOURCE: \"{}\" {}; expected an http(s) URL or an absolute path of the "
                      "base image, e.g. IMG_SOURCE=https://example.org/disk.qcow2",
                      source, what)};
}

}  // namespace

bool is_url(std::string_view source) {
  return starts_with_nocase(source, "http://") || starts_with_nocase(source, "https://");
}

bool is_https(std::string_view url) {
  return starts_with_nocase(url, "https://");
}

Result<ImageSource> parse_image_source(std::string_view source) {
  ImageSource result;
  if (source.empty())
    return bad_source(source, "is empty");
  if (source.find('\0') != std::string_view::npos)
    return bad_source(source, "holds a NUL byte");
  if (source.front() == '/') {
    result.default_target =
        strip_compression_suffix(std::filesystem::path(source).filename().string());
    return result;
  }
  auto url = boost::urls::parse_absolute_uri(source);
  const bool web = url
                   && (url->scheme_id() == boost::urls::scheme::http
                       || url->scheme_id() == boost::urls::scheme::https);
  if (!web)
    return bad_source(source, "is neither an http(s) URL nor an absolute path");
  if (url->encoded_host().empty())
    return bad_source(source, "has no host");
  if (url->has_userinfo())
    return bad_source(source, "holds credentials, which Berth does not support in URLs");
  result.kind = ImageSourceKind::kUrl;
  result.tls = url->scheme_id() == boost::urls::scheme::https;
  result.default_target =
      strip_compression_suffix(std::filesystem::path(std::string(url->path())).filename().string());
  return result;
}

Result<void> check_image_target(std::string_view target) {
  if (target.empty() || target == "." || target == ".." || target.find('/') != std::string::npos
      || target.find('\0') != std::string::npos || target.size() > 255)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("IMG_TARGET: \"{}\" is not a plain file name; expected a name such as "
                             "debian-12.qcow2",
                             target)};
  return {};
}

}  // namespace berth::drive
