#pragma once
// The browser pages and the libraries they load (noVNC, xterm.js), served from BERTH_WEB_DIR at
// /web/ of the control listener, behind the control API's screening like every other route. Only
// plain names of known types are served: no traversal, no hidden files, no listing.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "supervisor/http/http_server.hpp"

namespace berth {

inline constexpr std::string_view kWebPrefix = "/web/";

// What every page under /web/ may load: its own scripts and styles only (no inline script, no
// eval), WebSockets and fetches to this listener, images of its own or drawn in the page (noVNC's
// cursor is a data: URL). Inline styles are allowed because xterm.js writes its theme into a
// <style> element; no framing, no forms to elsewhere.
inline constexpr std::string_view kWebContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

// The file, relative to BERTH_WEB_DIR, that the URL path `path` ("/web/core/rfb.js") names, or
// nullopt when it names none safely: not under /web/, an empty, hidden ("." first) or ".."
// segment, a character other than A-Z a-z 0-9 . _ - (so no percent escape, backslash or NUL), or
// a type without a content type below.
std::optional<std::filesystem::path> web_file_path(std::string_view path);

// The Content-Type of a served file, by its extension (nullopt: not served).
std::optional<std::string_view> web_content_type(const std::filesystem::path& file);

// The answer to a GET or HEAD of `request` for the file `relative` (from web_file_path) under
// `root`: 200 with the file, its content type, the policy above, nosniff, an ETag and Cache-Control
// no-cache; 304 when If-None-Match holds its ETag; 404 when it is not a regular file (a symlink is
// not followed). Reads the file: call it off the loop for big files.
HttpReply web_file_reply(const std::filesystem::path& root, const std::filesystem::path& relative,
                         const HttpRequest& request);

// Headers every page under /web/ carries (also the login form served in a page's place).
void set_web_headers(HttpResponse& response);

}  // namespace berth
