#include "qemu/qmp/qmp_protocol.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

using namespace berth::qmp;

TEST_CASE("QMP messages as QEMU 7.2 sends them", "[qmp]") {
  // Lines captured from qemu-system-x86_64 7.2 (Debian 12).
  auto greeting = parse_message(
      R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18"}, "capabilities": ["oob"]}})"
      "\r\n");
  REQUIRE(std::holds_alternative<Greeting>(greeting));
  CHECK(std::get<Greeting>(greeting).qmp.contains("capabilities"));

  auto ret = parse_message(
      R"({"return": {"status": "running", "singlestep": false, "running": true}, "id": 7})");
  REQUIRE(std::holds_alternative<Return>(ret));
  CHECK(std::get<Return>(ret).id == 7);
  CHECK(std::get<Return>(ret).value.at("status") == "running");

  auto event = parse_message(
      R"({"timestamp": {"seconds": 1764017530, "microseconds": 381234}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}})");
  REQUIRE(std::holds_alternative<Event>(event));
  CHECK(std::get<Event>(event).name == "SHUTDOWN");
  CHECK(std::get<Event>(event).data.at("reason") == "guest-shutdown");
  CHECK(std::get<Event>(event).timestamp == Approx(1764017530.381234));

  auto error = parse_message(
      R"({"id": 3, "error": {"class": "CommandNotFound", "desc": "The command no-such has not been found"}})");
  REQUIRE(std::holds_alternative<Error>(error));
  CHECK(std::get<Error>(error).id == 3);
  CHECK(std::get<Error>(error).error_class == "CommandNotFound");
}

TEST_CASE("malformed QMP lines are parse errors, never exceptions", "[qmp]") {
  for (const char* line : {"", "not json", "[]", "42", R"({"return": {}})",
                           R"({"return": {}, "id": "text"})", R"({"return": {}, "id": -1})",
                           R"({"event": 5})", R"({"QMP": []})", R"({"error": "x", "id": 1})",
                           R"({"something": "else"})", "{\"event\": \"A\"", "\xff\xfe"}) {
    INFO(line);
    CHECK(std::holds_alternative<ParseError>(parse_message(line)));
  }
}

TEST_CASE("commands are one JSON line with execute, arguments and id", "[qmp]") {
  const std::string line = serialize_command(
      "blockdev-change-medium", {{"id", "configdrive"}, {"filename", "/run/x.iso"}}, 12);
  CHECK(line.ends_with("\r\n"));
  auto value = boost::json::parse(line);
  CHECK(value.at("execute") == "blockdev-change-medium");
  CHECK(value.at("arguments").at("id") == "configdrive");
  CHECK(value.at("id") == 12);
  CHECK_FALSE(
      boost::json::parse(serialize_command("quit", {}, 1)).as_object().contains("arguments"));
}
