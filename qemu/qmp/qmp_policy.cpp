#include "qemu/qmp/qmp_policy.hpp"

#include <algorithm>

namespace berth::qmp {
namespace {

// Read-only queries and guest-level actions that take no host path, create nothing on the host
// and cannot read guest memory out. Sorted.
const std::vector<std::string_view> kAllowed = {
    "cont",
    "inject-nmi",
    "input-send-event",
    "query-balloon",
    "query-block",
    "query-blockstats",
    "query-chardev",
    "query-commands",
    "query-cpus-fast",
    "query-hotpluggable-cpus",
    "query-kvm",
    "query-machines",
    "query-memory-size-summary",
    "query-name",
    "query-rx-filter",
    "query-status",
    "query-uuid",
    "query-version",
    "query-vnc",
    "send-key",
    "stop",
    "system_powerdown",
    "system_reset",
    "system_wakeup",
};

}  // namespace

bool remote_command_allowed(std::string_view command) {
  return std::binary_search(kAllowed.begin(), kAllowed.end(), command);
}

const std::vector<std::string_view>& remote_commands() {
  return kAllowed;
}

}  // namespace berth::qmp
