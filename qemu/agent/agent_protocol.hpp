#pragma once
// The QEMU guest agent's wire protocol (qemu-ga, docs/interop/qemu-ga-ref), pure: commands out as
// one line of JSON, replies in as one line each, and the guest-sync-delimited handshake that finds
// the start of a fresh reply after a timeout, an agent restart or a guest reboot. Everything the
// agent sends is untrusted input from the guest: parsing never throws, and every reply is bounded
// by kMaxReplyBytes. No I/O here.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace berth::agent {

// The byte that starts the agent's reply to guest-sync-delimited, and that berth sends first to
// reset the agent's JSON parser: never part of valid UTF-8 JSON.
inline constexpr char kDelimiter = '\xff';
// The longest reply line berth reads; a longer one is a protocol error (the guest is untrusted).
inline constexpr std::size_t kMaxReplyBytes = 1024 * 1024;

struct Return {
  boost::json::value value;
};
struct Error {
  std::string error_class;  // "CommandNotFound", "GenericError", ...
  std::string description;
};
struct ParseError {
  std::string reason;
};
using Reply = std::variant<Return, Error, ParseError>;

// Parses one reply line (with or without its newline), strictly: a JSON object with exactly one
// member, "return" (any value) or "error" (an object with string "class" and "desc").
Reply parse_reply(std::string_view line);

// One command line to send: {"execute":..., "arguments":...} and a newline; empty `arguments` are
// left out.
std::string serialize_command(std::string_view command, const boost::json::object& arguments = {});

// The handshake to send: the delimiter, then guest-sync-delimited with `id`.
std::string serialize_sync(std::uint64_t id);

// Where a handshake stands in the bytes received since it was sent.
struct SyncScan {
  enum class State {
    kNeedMore,  // no complete reply after a delimiter yet: read more
    kSynced,    // the reply to this handshake: bytes after `consumed` are fresh replies
  };
  State state = State::kNeedMore;
  std::size_t consumed = 0;  // bytes of the input the caller may drop
};

// Scans `received` for the reply to the handshake with `id`: skips everything up to a delimiter
// (stale replies, the agent's complaint about the delimiter), then reads the line after it; a
// reply to an older handshake is skipped too. `consumed` never points into an incomplete line.
SyncScan scan_sync(std::string_view received, std::uint64_t id);

// What berth shows of the guest, from guest-get-osinfo, guest-get-host-name, guest-get-timezone,
// guest-network-get-interfaces, guest-get-fsinfo and guest-get-users. Fields the agent leaves out
// stay empty.
struct OsInfo {
  std::string id;           // "debian"
  std::string name;         // "Debian GNU/Linux"
  std::string pretty_name;  // "Debian GNU/Linux 12 (bookworm)"
  std::string version;      // "12 (bookworm)"
  std::string version_id;   // "12"
  std::string kernel_release;
  std::string kernel_version;
  std::string machine;  // "x86_64"
};
struct Timezone {
  std::string zone;         // "UTC"; empty when the guest does not name it
  std::int64_t offset = 0;  // seconds east of UTC
};
struct IpAddress {
  std::string type;  // "ipv4" or "ipv6"
  std::string address;
  int prefix = 0;
};
struct Interface {
  std::string name;
  std::string mac;  // "52:54:00:..."; empty for loopback on some guests
  std::vector<IpAddress> addresses;
};
struct Filesystem {
  std::string name;  // "vda1"
  std::string mountpoint;
  std::string type;                   // "ext4"
  std::optional<std::uint64_t> used;  // bytes; nullopt when the agent does not say
  std::optional<std::uint64_t> total;
};
struct User {
  std::string name;
  std::string domain;     // Windows only
  double login_time = 0;  // seconds since the epoch
};

// Each reads the "return" value of its command; anything else (a missing or mistyped required
// member, more than kMaxItems entries) is a ParseError's reason. Optional members that are
// absent or mistyped are left empty.
inline constexpr std::size_t kMaxItems = 256;
using OsInfoResult = std::variant<OsInfo, ParseError>;
OsInfoResult parse_osinfo(const boost::json::value& value);
std::variant<std::string, ParseError> parse_hostname(const boost::json::value& value);
std::variant<Timezone, ParseError> parse_timezone(const boost::json::value& value);
std::variant<std::vector<Interface>, ParseError> parse_interfaces(const boost::json::value& value);
std::variant<std::vector<Filesystem>, ParseError> parse_fsinfo(const boost::json::value& value);
std::variant<std::vector<User>, ParseError> parse_users(const boost::json::value& value);

// The frozen state from guest-fsfreeze-status: "thawed" or "frozen".
std::variant<std::string, ParseError> parse_fsfreeze_status(const boost::json::value& value);

}  // namespace berth::agent
