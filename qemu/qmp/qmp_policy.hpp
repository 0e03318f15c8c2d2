#pragma once
// Which QMP commands remote callers (the control API) may run. An allow-list: anything not named
// here is refused, and the commands that must never be exposed (host paths, migration, memory
// dumps, device and object creation, the human monitor, x-*; the team's ../shared/SPEC-NOTES.md)
// are never on it.

#include <string_view>
#include <vector>

namespace berth::qmp {

// True when `command` may be run on behalf of a remote caller.
bool remote_command_allowed(std::string_view command);

// The allowed commands, sorted (for the console's command list and the API's 403 message).
const std::vector<std::string_view>& remote_commands();

}  // namespace berth::qmp
