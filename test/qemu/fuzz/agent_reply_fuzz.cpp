// libFuzzer target: what the guest agent sends (untrusted input from the guest) through the reply
// codec, the handshake scan and every guest-info reader. It must not crash, hang or run out of
// memory; the scan never points past its input, and a synced scan ends just after a newline.

#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "qemu/agent/agent_protocol.hpp"

using namespace berth::agent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const std::uint64_t id : {std::uint64_t{0}, std::uint64_t{42}}) {
    const auto scan = scan_sync(input, id);
    FUZZ_CHECK(scan.consumed <= input.size());
    if (scan.state == SyncScan::State::kSynced)
      FUZZ_CHECK(scan.consumed > 0 && input[scan.consumed - 1] == '\n');
  }
  const auto reply = parse_reply(input);
  if (const auto* error = std::get_if<Error>(&reply))
    FUZZ_CHECK(error->error_class.size() <= input.size());
  if (const auto* ret = std::get_if<Return>(&reply)) {
    const boost::json::value& value = ret->value;
    (void)parse_osinfo(value);
    (void)parse_hostname(value);
    (void)parse_timezone(value);
    (void)parse_fsfreeze_status(value);
    if (auto interfaces = parse_interfaces(value);
        const auto* list = std::get_if<std::vector<Interface>>(&interfaces))
      FUZZ_CHECK(list->size() <= kMaxItems);
    if (auto fs = parse_fsinfo(value); const auto* list = std::get_if<std::vector<Filesystem>>(&fs))
      FUZZ_CHECK(list->size() <= kMaxItems);
    if (auto users = parse_users(value); const auto* list = std::get_if<std::vector<User>>(&users))
      FUZZ_CHECK(list->size() <= kMaxItems);
  }
  return 0;
}
