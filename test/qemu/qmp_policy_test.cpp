#include "qemu/qmp/qmp_policy.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

using berth::qmp::remote_command_allowed;
using berth::qmp::remote_commands;

TEST_CASE("every never-expose command is refused", "[qmp-policy]") {
  for (const char* command : {"human-monitor-command",
                              "migrate",
                              "migrate-incoming",
                              "migrate_cancel",
                              "migrate-set-parameters",
                              "dump-guest-memory",
                              "pmemsave",
                              "memsave",
                              "screendump",
                              "blockdev-add",
                              "drive_add",
                              "blockdev-change-medium",
                              "object-add",
                              "chardev-add",
                              "netdev_add",
                              "device_add",
                              "qom-set",
                              "getfd",
                              "add-fd",
                              "nbd-server-start",
                              "nbd-server-add",
                              "x-exit-preconfig",
                              "x-query-virtio",
                              "quit",
                              "qmp_capabilities",
                              "block_resize",
                              "drive-backup",
                              "blockdev-snapshot-sync",
                              "eject",
                              "blockdev-open-tray",
                              "blockdev-close-tray",
                              "blockdev-remove-medium",
                              "blockdev-insert-medium",
                              "blockdev-del",
                              "",
                              "QUERY-STATUS",
                              "query-status ",
                              "query-status\n"}) {
    INFO(command);
    CHECK_FALSE(remote_command_allowed(command));
  }
}

TEST_CASE("guest-level actions and queries are allowed", "[qmp-policy]") {
  for (const char* command : {"query-status", "system_powerdown", "system_reset", "stop", "cont",
                              "query-blockstats", "send-key"})
    CHECK(remote_command_allowed(command));
}

TEST_CASE("the allow-list is sorted and holds nothing that takes a host path", "[qmp-policy]") {
  const auto& commands = remote_commands();
  CHECK(std::is_sorted(commands.begin(), commands.end()));
  for (auto command : commands) {
    INFO(std::string(command));
    CHECK_FALSE(command.starts_with("x-"));
    CHECK(command.find("add") == std::string_view::npos);
    CHECK(command.find("migrate") == std::string_view::npos);
  }
}
