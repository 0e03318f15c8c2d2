#include "qemu/agent/agent_protocol.hpp"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace berth::agent {
namespace json = boost::json;

namespace {

std::string_view trim_newline(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  return line;
}

std::string string_or_empty(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (value == nullptr || !value->is_string())
    return {};
  return std::string(value->get_string());
}

std::optional<std::uint64_t> unsigned_of(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (value == nullptr)
    return std::nullopt;
  if (value->is_uint64())
    return value->get_uint64();
  if (value->is_int64() && value->get_int64() >= 0)
    return static_cast<std::uint64_t>(value->get_int64());
  return std::nullopt;
}

// Reads a list reply: at most kMaxItems objects, each with a string member `key`, each made into
// a T by `make(object, key's value)` (which may refuse it with a ParseError).
template <class T, class Make>
std::variant<std::vector<T>, ParseError> read_list(const json::value& value, std::string_view what,
                                                   std::string_view key, Make make) {
  const auto* array = value.if_array();
  if (array == nullptr || array->size() > kMaxItems)
    return ParseError{std::string(what) + ": not a list of at most 256 entries"};
  std::vector<T> out;
  for (const auto& item : *array) {
    const auto* object = item.if_object();
    const auto* name = object ? object->if_contains(key) : nullptr;
    if (name == nullptr || !name->is_string())
      return ParseError{fmt::format("{}: an entry without a string \"{}\"", what, key)};
    auto made = make(*object, std::string(name->get_string()));
    if (auto* bad = std::get_if<ParseError>(&made))
      return std::move(*bad);
    out.push_back(std::move(std::get<T>(made)));
  }
  return out;
}

}  // namespace

Reply parse_reply(std::string_view line) {
  line = trim_newline(line);
  if (line.size() > kMaxReplyBytes)
    return ParseError{"reply longer than 1 MiB"};
  boost::system::error_code ec;
  json::value value = json::parse(line, ec);
  json::object* parsed = ec ? nullptr : value.if_object();
  if (parsed == nullptr)
    return ParseError{ec ? "not JSON: " + ec.message() : std::string("not a JSON object")};
  json::object& object = *parsed;
  if (object.size() != 1)
    return ParseError{"a reply has exactly one member, \"return\" or \"error\""};
  if (auto* ret = object.if_contains("return"))
    return Return{std::move(*ret)};
  const auto* error = object.if_contains("error");
  if (error == nullptr)
    return ParseError{"neither \"return\" nor \"error\""};
  if (!error->is_object())
    return ParseError{"\"error\" is not an object"};
  const auto& fields = error->get_object();
  const auto* error_class = fields.if_contains("class");
  const auto* desc = fields.if_contains("desc");
  if (error_class == nullptr || !error_class->is_string() || desc == nullptr || !desc->is_string())
    return ParseError{"\"error\" without string \"class\" and \"desc\""};
  return Error{std::string(error_class->get_string()), std::string(desc->get_string())};
}

std::string serialize_command(std::string_view command, const json::object& arguments) {
  json::object object;
  object["execute"] = command;
  if (!arguments.empty())
    object["arguments"] = arguments;
  return json::serialize(object) + "\n";
}

std::string serialize_sync(std::uint64_t id) {
  json::object arguments;
  arguments["id"] = id;
  return std::string(1, kDelimiter) + serialize_command("guest-sync-delimited", arguments);
}

SyncScan scan_sync(std::string_view received, std::uint64_t id) {
  SyncScan scan;
  for (;;) {
    const auto delimiter = received.find(kDelimiter, scan.consumed);
    if (delimiter == std::string_view::npos) {
      // Nothing here can start the reply: drop it all.
      scan.consumed = received.size();
      return scan;
    }
    const auto end = received.find('\n', delimiter + 1);
    if (end == std::string_view::npos) {
      scan.consumed = delimiter;  // keep the delimiter and what follows: the line is incomplete
      return scan;
    }
    // The last delimiter before the line's end starts the reply (the agent may send more).
    const auto start = received.rfind(kDelimiter, end);
    const auto line = received.substr(start + 1, end - start - 1);
    scan.consumed = end + 1;
    const auto reply = parse_reply(line);
    if (const auto* ret = std::get_if<Return>(&reply)) {
      const auto& value = ret->value;
      if ((value.is_uint64() && value.get_uint64() == id)
          || (value.is_int64() && value.get_int64() >= 0
              && static_cast<std::uint64_t>(value.get_int64()) == id)) {
        scan.state = SyncScan::State::kSynced;
        return scan;
      }
    }
    // A stale handshake's reply, or garbage after a delimiter: look for the next one.
  }
}

OsInfoResult parse_osinfo(const json::value& value) {
  if (!value.is_object())
    return ParseError{"guest-get-osinfo: not an object"};
  const auto& o = value.get_object();
  return OsInfo{string_or_empty(o, "id"),
                string_or_empty(o, "name"),
                string_or_empty(o, "pretty-name"),
                string_or_empty(o, "version"),
                string_or_empty(o, "version-id"),
                string_or_empty(o, "kernel-release"),
                string_or_empty(o, "kernel-version"),
                string_or_empty(o, "machine")};
}

std::variant<std::string, ParseError> parse_hostname(const json::value& value) {
  const auto* o = value.if_object();
  const auto* name = o ? o->if_contains("host-name") : nullptr;
  if (name == nullptr || !name->is_string())
    return ParseError{"guest-get-host-name: no string \"host-name\""};
  return std::string(name->get_string());
}

std::variant<Timezone, ParseError> parse_timezone(const json::value& value) {
  const auto* o = value.if_object();
  const auto* offset = o ? o->if_contains("offset") : nullptr;
  if (offset == nullptr || !offset->is_int64())
    return ParseError{"guest-get-timezone: no integer \"offset\""};
  return Timezone{string_or_empty(*o, "zone"), offset->get_int64()};
}

std::variant<std::vector<Interface>, ParseError> parse_interfaces(const json::value& value) {
  return read_list<Interface>(
      value, "guest-network-get-interfaces", "name",
      [](const json::object& o, std::string name) -> std::variant<Interface, ParseError> {
        Interface interface {
          std::move(name), string_or_empty(o, "hardware-address"), {}
        };
        const auto* addresses = o.if_contains("ip-addresses");
        if (addresses == nullptr)
          return interface;
        auto list = read_list<IpAddress>(
            *addresses, "ip-addresses", "ip-address",
            [](const json::object& a, std::string address) -> std::variant<IpAddress, ParseError> {
              const auto* prefix = a.if_contains("prefix");
              if (prefix == nullptr || !prefix->is_int64() || prefix->get_int64() < 0
                  || prefix->get_int64() > 128)
                return ParseError{"ip-addresses: an address without a prefix of 0 to 128"};
              return IpAddress{string_or_empty(a, "ip-address-type"), std::move(address),
                               static_cast<int>(prefix->get_int64())};
            });
        if (auto* bad = std::get_if<ParseError>(&list))
          return std::move(*bad);
        interface.addresses = std::move(std::get<std::vector<IpAddress>>(list));
        return interface;
      });
}

std::variant<std::vector<Filesystem>, ParseError> parse_fsinfo(const json::value& value) {
  return read_list<Filesystem>(
      value, "guest-get-fsinfo", "mountpoint",
      [](const json::object& o, std::string mountpoint) -> std::variant<Filesystem, ParseError> {
        return Filesystem{string_or_empty(o, "name"), std::move(mountpoint),
                          string_or_empty(o, "type"), unsigned_of(o, "used-bytes"),
                          unsigned_of(o, "total-bytes")};
      });
}

std::variant<std::vector<User>, ParseError> parse_users(const json::value& value) {
  return read_list<User>(
      value, "guest-get-users", "user",
      [](const json::object& o, std::string user) -> std::variant<User, ParseError> {
        const auto* login = o.if_contains("login-time");
        return User{std::move(user), string_or_empty(o, "domain"),
                    login != nullptr && login->is_number() ? login->to_number<double>() : 0.0};
      });
}

std::variant<std::string, ParseError> parse_fsfreeze_status(const json::value& value) {
  if (!value.is_string() || (value.get_string() != "thawed" && value.get_string() != "frozen"))
    return ParseError{"guest-fsfreeze-status: neither \"thawed\" nor \"frozen\""};
  return std::string(value.get_string());
}

}  // namespace berth::agent
