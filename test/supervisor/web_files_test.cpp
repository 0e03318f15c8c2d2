// The files under /web/: which URL paths name a file (traversal, hidden files, odd characters and
// unknown types never do), and the answer for one in a real folder (headers, ETag, 304, 404).

#include "supervisor/http/web_files.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "test/support/berth_process.hpp"

using namespace berth;
using berth::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A web folder with a page and a module, beside a file that must stay out of reach.
struct WebDir {
  TempDir dir;
  fs::path root = dir.path / "web";
  WebDir() {
    fs::create_directories(root / "novnc" / "core");
    std::ofstream(root / "screen.html") << "<!doctype html><title>screen</title>";
    std::ofstream(root / "novnc" / "core" / "rfb.js") << "export default class RFB {}";
    std::ofstream(dir.path / "secret.js") << "secret";
  }
};

HttpRequest get(std::string target, std::string if_none_match = "") {
  HttpRequest request(http::verb::get, target, 11);
  if (!if_none_match.empty())
    request.set(http::field::if_none_match, if_none_match);
  return request;
}

}  // namespace

TEST_CASE("web paths: plain names of served types under /web/ only", "[web]") {
  CHECK(web_file_path("/web/screen.html") == fs::path("screen.html"));
  CHECK(web_file_path("/web/novnc/core/rfb.js") == fs::path("novnc/core/rfb.js"));
  CHECK(web_file_path("/web/xterm/xterm.mjs") == fs::path("xterm/xterm.mjs"));
  CHECK(web_file_path("/web/xterm/xterm.css") == fs::path("xterm/xterm.css"));
  for (const std::string_view refused : {"/web/",
                                         "/web",
                                         "/webscreen.html",
                                         "/screen.html",
                                         "/web/../control-token.js",
                                         "/web/novnc/../../x.js",
                                         "/web/..",
                                         "/web/%2e%2e/x.js",
                                         "/web/a%2fb.js",
                                         "/web/.env.js",
                                         "/web/novnc/.git/config.js",
                                         "/web//etc/passwd.js",
                                         "/web/a//b.js",
                                         "/web/novnc/",
                                         "/web/a\\..\\b.js",
                                         "/web/run.sh",
                                         "/web/screen",
                                         "/web/x.js.map",
                                         "/web/LICENSE.txt",
                                         "/web/a b.js",
                                         "/web/./screen.html",
                                         "/web/~root.js"}) {
    INFO(refused);
    CHECK_FALSE(web_file_path(refused));
  }
  using namespace std::string_view_literals;
  CHECK_FALSE(web_file_path("/web/screen.html\0.js"sv));  // a NUL inside
}

TEST_CASE("web content types by extension", "[web]") {
  CHECK(web_content_type("screen.html") == "text/html; charset=utf-8");
  CHECK(web_content_type("novnc/core/rfb.js") == "text/javascript; charset=utf-8");
  CHECK(web_content_type("xterm/xterm.mjs") == "text/javascript; charset=utf-8");
  CHECK(web_content_type("xterm/xterm.css") == "text/css; charset=utf-8");
  CHECK(web_content_type("icon.svg") == "image/svg+xml");
  CHECK_FALSE(web_content_type("notes.txt"));
  CHECK_FALSE(web_content_type("Makefile"));
}

TEST_CASE("a web file: its bytes, a strict policy, an ETag that answers 304", "[web]") {
  WebDir dir;
  const auto reply = web_file_reply(dir.root, "novnc/core/rfb.js", get("/web/novnc/core/rfb.js"));
  const auto& response = reply.response;
  CHECK(response.result() == http::status::ok);
  CHECK(response.body() == "export default class RFB {}");
  CHECK(response[http::field::content_type] == "text/javascript; charset=utf-8");
  CHECK(response["Content-Security-Policy"] == kWebContentSecurityPolicy);
  CHECK(response["X-Content-Type-Options"] == "nosniff");
  CHECK(response[http::field::cache_control] == "no-cache");
  const std::string etag(response[http::field::etag]);
  CHECK_THAT(etag, Catch::StartsWith("\"") && Catch::EndsWith("\""));
  // The policy: scripts of this origin only, no inline script, no framing.
  CHECK_THAT(std::string(kWebContentSecurityPolicy),
             Catch::Contains("script-src 'self';") && Catch::Contains("frame-ancestors 'none'")
                 && Catch::Contains("default-src 'none'"));

  const auto again =
      web_file_reply(dir.root, "novnc/core/rfb.js", get("/web/novnc/core/rfb.js", etag));
  CHECK(again.response.result() == http::status::not_modified);
  CHECK(again.response.body().empty());
  CHECK(again.response[http::field::etag] == etag);
  const auto stale =
      web_file_reply(dir.root, "novnc/core/rfb.js", get("/web/novnc/core/rfb.js", "\"old\""));
  CHECK(stale.response.result() == http::status::ok);

  HttpRequest head(http::verb::head, "/web/screen.html", 11);
  const auto headed = web_file_reply(dir.root, "screen.html", head);
  CHECK(headed.response.result() == http::status::ok);
  CHECK(headed.response.body().empty());
  CHECK(headed.response[http::field::content_length] == "36");
}

TEST_CASE("a missing file, a folder and a symlink out of the web folder are 404", "[web]") {
  WebDir dir;
  CHECK(web_file_reply(dir.root, "nope.js", get("/web/nope.js")).response.result()
        == http::status::not_found);
  fs::create_directories(dir.root / "folder.js");
  CHECK(web_file_reply(dir.root, "folder.js", get("/web/folder.js")).response.result()
        == http::status::not_found);
  fs::create_symlink("../secret.js", dir.root / "link.js");
  const auto linked = web_file_reply(dir.root, "link.js", get("/web/link.js"));
  CHECK(linked.response.result() == http::status::not_found);
}
