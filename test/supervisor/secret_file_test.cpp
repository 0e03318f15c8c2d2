#include "supervisor/secret_file.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

using namespace berth;

namespace {

struct File {
  std::filesystem::path path;
  explicit File(const std::string& content) {
    std::string pattern = (std::filesystem::temp_directory_path() / "berth-secret-XXXXXX").string();
    const int fd = ::mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path = pattern;
    std::ofstream(path, std::ios::binary) << content;
  }
  ~File() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
};

}  // namespace

TEST_CASE("a secret file: trailing newlines go, and its content is in no error", "[secret]") {
  File good("s3cret-pw\r\n");
  CHECK(read_secret_file("BERTH_VNC_PASSWORD_FILE", good.path).value() == "s3cret-pw");

  File empty("\n\n");
  auto none = read_secret_file("BERTH_VNC_PASSWORD_FILE", empty.path);
  REQUIRE_FALSE(none);
  CHECK_THAT(none.error().message, Catch::Contains("BERTH_VNC_PASSWORD_FILE " + empty.path.string())
                                       && Catch::Contains("empty"));

  auto missing = read_secret_file("BERTH_VNC_PASSWORD_FILE", "/nonexistent/berth/vnc");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == ErrorKind::kInvalidInput);
  CHECK_THAT(missing.error().message,
             Catch::Contains("/nonexistent/berth/vnc") && Catch::Contains("cannot read"));
  CHECK_FALSE(read_secret_file("BERTH_VNC_PASSWORD_FILE", std::filesystem::temp_directory_path()));
}

TEST_CASE("a VNC password is printable ASCII and never quoted in the error", "[secret]") {
  CHECK(check_vnc_password("Ab3$xy_9", "/p").value() == "Ab3$xy_9");
  CHECK(check_vnc_password("longer-than-eight", "/p").value() == "longer-than-eight");
  for (const std::string& bad :
       {std::string("tab\there"), std::string("caf\xc3\xa9"), std::string()}) {
    auto refused = check_vnc_password(bad, "/secrets/vnc");
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message,
               Catch::Contains("/secrets/vnc") && Catch::Contains("printable ASCII"));
    if (!bad.empty())
      CHECK_THAT(refused.error().message, !Catch::Contains(bad));
  }
}
