#include "common/error.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <sstream>
#include <stdexcept>

#include "common/mac.hpp"

namespace {

berth::Result<int> half(int n) {
  if (n % 2 != 0)
    return berth::invalid_input("odd: " + std::to_string(n));
  return n / 2;
}

}  // namespace

TEST_CASE("common: Result carries a value or an Error with kind and message", "[common]") {
  CHECK(half(4).value() == 2);
  const auto odd = half(3);
  REQUIRE_FALSE(odd);
  CHECK(odd.error().kind == berth::ErrorKind::kInvalidInput);
  CHECK(odd.error().message == "odd: 3");
  // value() on an error is a caller bug, reported as a logic_error with the message.
  CHECK_THROWS_WITH(odd.value(), Catch::Contains("odd: 3"));
  std::ostringstream out;
  out << odd.error();
  CHECK(out.str() == "odd: 3");
}

TEST_CASE("common: system_error keeps errno as the cause and its text in the message", "[common]") {
  const auto error = berth::system_error("open /x", ENOENT);
  CHECK(error.kind == berth::ErrorKind::kSystem);
  CHECK(error.cause == std::errc::no_such_file_or_directory);
  CHECK(error.message == "open /x: No such file or directory");
  CHECK(std::string(berth::to_string(berth::ErrorKind::kNoInterface)) == "no-interface");
}

TEST_CASE("common: MAC addresses parse and format", "[common]") {
  const auto mac = berth::parse_mac("52-54-00-AB-cd-0F");
  REQUIRE(mac);
  CHECK(berth::format_mac(*mac) == "52:54:00:ab:cd:0f");
  CHECK_FALSE(berth::parse_mac("52:54:00:ab:cd"));
  CHECK_FALSE(berth::parse_mac("52:54:00:ab:cd:0g"));
  CHECK_FALSE(berth::parse_mac("52:54:00:ab:cd+0f"));
  CHECK_FALSE(berth::parse_mac("52:54:00:ab:cd:+f"));
}
