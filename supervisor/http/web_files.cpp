#include "supervisor/http/web_files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace berth {
namespace {

constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".woff2", "font/woff2"},
};

bool plain_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
         || c == '_' || c == '-';
}

// The file's bytes and its ETag ("size-mtime" in hex), or nullopt when it is not a regular file.
struct WebFile {
  std::string bytes;
  std::string etag;
};

std::optional<WebFile> read_web_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  struct stat st {};
  std::optional<WebFile> out;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    out.emplace();
    out->etag =
        fmt::format("\"{:x}-{:x}.{:x}\"", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    out->bytes.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out->bytes.size()) {
      const auto n = ::read(fd, out->bytes.data() + done, out->bytes.size() - done);
      if (n <= 0)
        break;
      done += static_cast<std::size_t>(n);
    }
    out->bytes.resize(done);
  }
  ::close(fd);
  return out;
}

}  // namespace

std::optional<std::filesystem::path> web_file_path(std::string_view path) {
  if (!path.starts_with(kWebPrefix))
    return std::nullopt;
  path.remove_prefix(kWebPrefix.size());
  std::filesystem::path relative;
  while (true) {
    const auto slash = path.find('/');
    const auto segment = path.substr(0, slash);
    if (segment.empty() || segment.front() == '.'
        || !std::all_of(segment.begin(), segment.end(), plain_name_char))
      return std::nullopt;
    relative /= std::string(segment);
    if (slash == std::string_view::npos)
      break;
    path.remove_prefix(slash + 1);
  }
  if (!web_content_type(relative))
    return std::nullopt;
  return relative;
}

std::optional<std::string_view> web_content_type(const std::filesystem::path& file) {
  const std::string extension = file.extension().string();
  for (const auto& [suffix, type] : kTypes)
    if (extension == suffix)
      return type;
  return std::nullopt;
}

void set_web_headers(HttpResponse& response) {
  response.set("Content-Security-Policy", kWebContentSecurityPolicy);
  response.set("X-Content-Type-Options", "nosniff");
  response.set("Referrer-Policy", "no-referrer");
  response.set("Cross-Origin-Opener-Policy", "same-origin");
}

HttpReply web_file_reply(const std::filesystem::path& root, const std::filesystem::path& relative,
                         const HttpRequest& request) {
  const unsigned version = request.version();
  const bool head = request.method() == http::verb::head;
  auto file = read_web_file(root / relative);
  if (!file)
    return json_error(http::status::not_found,
                      fmt::format("no such file under BERTH_WEB_DIR: {}", relative.string()),
                      version);
  const bool unchanged = request[http::field::if_none_match] == file->etag;
  HttpReply reply{
      HttpResponse(unchanged ? http::status::not_modified : http::status::ok, version), {}, {}};
  auto& response = reply.response;
  set_web_headers(response);
  response.set(http::field::etag, file->etag);
  // Revalidated on every load: an upgraded berth serves its new files at once.
  response.set(http::field::cache_control, "no-cache");
  if (unchanged)
    return reply;
  response.set(http::field::content_type, *web_content_type(relative));
  const auto size = file->bytes.size();
  if (!head)
    response.body() = std::move(file->bytes);
  response.content_length(size);  // HEAD: the length a GET would have
  return reply;
}

}  // namespace berth
