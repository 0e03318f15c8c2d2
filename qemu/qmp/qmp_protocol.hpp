#pragma once
// QMP messages (docs/interop/qmp-spec.rst), pure: one line of JSON in, one value out; commands
// out as one line. No I/O and no exceptions on bad input.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace berth::qmp {

struct Greeting {
  boost::json::object qmp;  // {"version":..., "capabilities":[...]}
};
struct Return {
  std::uint64_t id = 0;
  boost::json::value value;
};
struct Error {
  std::uint64_t id = 0;  // 0 when QEMU could not read the id (malformed command)
  std::string error_class;
  std::string description;
};
struct Event {
  std::string name;
  boost::json::object data;
  double timestamp = 0;  // seconds since the epoch, as QEMU reported
};
struct ParseError {
  std::string reason;
};

using Message = std::variant<Greeting, Return, Error, Event, ParseError>;

// Parses one line received from QEMU (with or without its CRLF). Replies to commands sent without
// a numeric id, and anything not of the QMP forms, are ParseErrors.
Message parse_message(std::string_view line);

// One command line to send: {"execute":..., "arguments":..., "id":...} and CRLF. Empty
// `arguments` are left out.
std::string serialize_command(std::string_view command, const boost::json::object& arguments,
                              std::uint64_t id);

}  // namespace berth::qmp
