#include "qemu/agent/agent_protocol.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

using namespace berth::agent;
namespace json = boost::json;

TEST_CASE("guest agent replies in the forms qemu-ga 7.2 sends", "[agent]") {
  // Lines in qemu-ga's format (Debian 12's qemu-guest-agent 7.2): one object, one member.
  auto ping = parse_reply("{\"return\": {}}\n");
  REQUIRE(std::holds_alternative<Return>(ping));
  CHECK(std::get<Return>(ping).value.is_object());

  auto count = parse_reply(R"({"return": 2})");
  REQUIRE(std::holds_alternative<Return>(count));
  CHECK(std::get<Return>(count).value == 2);

  auto error = parse_reply(
      R"({"error": {"class": "CommandNotFound", "desc": "The command guest-nope has not been found"}})");
  REQUIRE(std::holds_alternative<Error>(error));
  CHECK(std::get<Error>(error).error_class == "CommandNotFound");
  CHECK(std::get<Error>(error).description == "The command guest-nope has not been found");
}

TEST_CASE("guest agent replies that are not replies are parse errors", "[agent]") {
  const char* bad[] = {
      "",
      "not json",
      "[1,2]",
      "{}",
      R"({"return": 1, "error": {"class": "x", "desc": "y"}})",
      R"({"return": 1, "id": 3})",
      R"({"error": "text"})",
      R"({"error": {"class": "GenericError"}})",
      R"({"error": {"class": 1, "desc": "x"}})",
      R"({"event": "SHUTDOWN"})",
      "{\"return\": 1}{\"return\": 2}",
  };
  for (const char* line : bad) {
    INFO(line);
    CHECK(std::holds_alternative<ParseError>(parse_reply(line)));
  }
  const std::string huge = "{\"return\": \"" + std::string(kMaxReplyBytes, 'a') + "\"}";
  CHECK(std::holds_alternative<ParseError>(parse_reply(huge)));
}

TEST_CASE("guest agent commands and the handshake on the wire", "[agent]") {
  CHECK(serialize_command("guest-ping") == "{\"execute\":\"guest-ping\"}\n");
  json::object arguments;
  arguments["mode"] = "powerdown";
  CHECK(serialize_command("guest-shutdown", arguments)
        == "{\"execute\":\"guest-shutdown\",\"arguments\":{\"mode\":\"powerdown\"}}\n");
  CHECK(serialize_sync(12345)
        == "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":12345}}\n");
}

TEST_CASE("the handshake finds its own reply after stale bytes", "[agent]") {
  SECTION("a plain reply, and qemu-ga 7.2's: its complaint about the delimiter, then the reply") {
    // The second captured from Debian 12's qemu-ga on the test guest (build-guest-agent.sh).
    const std::string complete[] = {
        "\xff{\"return\": 42}\n",
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray "
        "'\\uFFFD'\"}}\n\xff{\"return\": 42}\n"};
    for (const auto& in : complete) {
      auto scan = scan_sync(in, 42);
      CHECK(scan.state == SyncScan::State::kSynced);
      CHECK(scan.consumed == in.size());
    }
  }
  SECTION("stale replies, an old handshake, then ours and a fresh reply") {
    const std::string in =
        "{\"return\": {}}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\n"
        "\xff{\"return\": 7}\n\xff{\"return\": 42}\n{\"return\": 3}\n";
    auto scan = scan_sync(in, 42);
    REQUIRE(scan.state == SyncScan::State::kSynced);
    CHECK(in.substr(scan.consumed) == "{\"return\": 3}\n");
  }
  SECTION("nothing but stale bytes: all dropped") {
    const std::string in = "{\"return\": {}}\n{\"ret";
    auto scan = scan_sync(in, 42);
    CHECK(scan.state == SyncScan::State::kNeedMore);
    CHECK(scan.consumed == in.size());
  }
  SECTION("a reply cut after its delimiter: kept for the next read") {
    const std::string in = "junk\xff{\"return\": 4";
    auto scan = scan_sync(in, 42);
    CHECK(scan.state == SyncScan::State::kNeedMore);
    CHECK(in.substr(scan.consumed) == "\xff{\"return\": 4");
  }
  SECTION("repeated delimiters: the last one before the line starts the reply") {
    const std::string in = "\xff\xff{\"return\": 42}\n";
    CHECK(scan_sync(in, 42).state == SyncScan::State::kSynced);
  }
  SECTION("garbage after a delimiter is skipped") {
    const std::string in = "\xffgarbage\n{\"return\": 42}\n";
    auto scan = scan_sync(in, 42);
    CHECK(scan.state == SyncScan::State::kNeedMore);
    CHECK(scan.consumed == in.size());
  }
}

TEST_CASE("what the agent says about the guest", "[agent]") {
  // guest-get-osinfo as qemu-ga 7.2 answered on the test guest (build-guest-agent.sh).
  auto os = parse_osinfo(json::parse(
      R"j({"name": "Berth test guest", "kernel-release": "6.1.0-57-cloud-amd64",
          "version": "1 (agent)", "pretty-name": "Berth test guest (Debian packages, busybox)",
          "version-id": "1", "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)",
          "machine": "x86_64", "id": "berth-guest"})j"));
  REQUIRE(std::holds_alternative<OsInfo>(os));
  CHECK(std::get<OsInfo>(os).pretty_name == "Berth test guest (Debian packages, busybox)");
  CHECK(std::get<OsInfo>(os).kernel_release == "6.1.0-57-cloud-amd64");
  CHECK(std::get<OsInfo>(os).kernel_version.ends_with("(2026-11-26)"));

  auto host = parse_hostname(json::parse(R"({"host-name": "vm-0"})"));
  REQUIRE(std::holds_alternative<std::string>(host));
  CHECK(std::get<std::string>(host) == "vm-0");
  CHECK(std::holds_alternative<ParseError>(parse_hostname(json::parse("{}"))));

  auto zone = parse_timezone(json::parse(R"({"zone": "CET", "offset": 3600})"));
  REQUIRE(std::holds_alternative<Timezone>(zone));
  CHECK(std::get<Timezone>(zone).zone == "CET");
  CHECK(std::get<Timezone>(zone).offset == 3600);

  auto interfaces = parse_interfaces(json::parse(R"([
      {"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1",
        "prefix": 8}], "hardware-address": "00:00:00:00:00:00"},
      {"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.2",
        "prefix": 30}, {"ip-address-type": "ipv6", "ip-address": "fe80::5054:ff:fe12:3456",
        "prefix": 64}], "statistics": {"rx-bytes": 1}, "hardware-address": "52:54:00:12:34:56"},
      {"name": "eth1"}])"));
  REQUIRE(std::holds_alternative<std::vector<Interface>>(interfaces));
  const auto& list = std::get<std::vector<Interface>>(interfaces);
  REQUIRE(list.size() == 3);
  CHECK(list[1].mac == "52:54:00:12:34:56");
  REQUIRE(list[1].addresses.size() == 2);
  CHECK(list[1].addresses[0].address == "10.0.2.2");
  CHECK(list[1].addresses[0].prefix == 30);
  CHECK(list[2].addresses.empty());
  CHECK(std::holds_alternative<ParseError>(parse_interfaces(json::parse(
      R"([{"name": "eth0", "ip-addresses": [{"ip-address": "10.0.0.1", "prefix": 200}]}])"))));

  auto fs = parse_fsinfo(json::parse(R"([
      {"name": "vda1", "total-bytes": 2040373248, "mountpoint": "/", "disk": [], "used-bytes":
        1203421184, "type": "ext4"},
      {"name": "sr0", "mountpoint": "/mnt", "disk": [], "type": "iso9660"}])"));
  REQUIRE(std::holds_alternative<std::vector<Filesystem>>(fs));
  const auto& filesystems = std::get<std::vector<Filesystem>>(fs);
  REQUIRE(filesystems.size() == 2);
  CHECK(filesystems[0].mountpoint == "/");
  CHECK(filesystems[0].used == 1203421184u);
  CHECK(filesystems[0].total == 2040373248u);
  CHECK_FALSE(filesystems[1].used);

  auto users = parse_users(json::parse(R"([{"user": "root", "login-time": 1764000000.25}])"));
  REQUIRE(std::holds_alternative<std::vector<User>>(users));
  CHECK(std::get<std::vector<User>>(users).at(0).name == "root");
  CHECK(std::get<std::vector<User>>(users).at(0).login_time == Approx(1764000000.25));

  CHECK(std::holds_alternative<ParseError>(parse_users(json::parse(R"({"user": "root"})"))));
  json::array many(kMaxItems + 1, json::parse(R"({"user": "x"})"));
  CHECK(std::holds_alternative<ParseError>(parse_users(many)));

  CHECK(std::get<std::string>(parse_fsfreeze_status(json::parse("\"frozen\""))) == "frozen");
  CHECK(std::holds_alternative<ParseError>(parse_fsfreeze_status(json::parse("\"cold\""))));
}
