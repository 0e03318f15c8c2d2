#include "qemu/qmp/qmp_protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace berth::qmp {
namespace json = boost::json;

namespace {

std::string string_field(const json::object& object, std::string_view key) {
  const auto* value = object.if_contains(key);
  if (value == nullptr || !value->is_string())
    return {};
  return std::string(value->get_string());
}

}  // namespace

Message parse_message(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  boost::system::error_code ec;
  json::value value = json::parse(line, ec);
  if (ec)
    return ParseError{"not JSON: " + ec.message()};
  if (!value.is_object())
    return ParseError{"not a JSON object"};
  const json::object& object = value.get_object();

  if (const auto* greeting = object.if_contains("QMP")) {
    if (!greeting->is_object())
      return ParseError{"greeting without an object"};
    return Greeting{greeting->get_object()};
  }
  if (const auto* event = object.if_contains("event")) {
    if (!event->is_string())
      return ParseError{"event name is not a string"};
    Event out{std::string(event->get_string()), {}, 0};
    if (const auto* data = object.if_contains("data"); data && data->is_object())
      out.data = data->get_object();
    if (const auto* ts = object.if_contains("timestamp"); ts && ts->is_object()) {
      const auto& t = ts->get_object();
      const auto* s = t.if_contains("seconds");
      const auto* us = t.if_contains("microseconds");
      if (s && s->is_number() && us && us->is_number())
        out.timestamp = s->to_number<double>() + us->to_number<double>() / 1e6;
    }
    return out;
  }

  std::uint64_t id = 0;
  if (const auto* id_value = object.if_contains("id")) {
    if (id_value->is_uint64())
      id = id_value->get_uint64();
    else if (id_value->is_int64() && id_value->get_int64() >= 0)
      id = static_cast<std::uint64_t>(id_value->get_int64());
    else
      return ParseError{"reply id is not a non-negative integer"};
  }
  if (const auto* ret = object.if_contains("return")) {
    if (id == 0)
      return ParseError{"reply without an id"};
    return Return{id, *ret};
  }
  if (const auto* error = object.if_contains("error")) {
    if (!error->is_object())
      return ParseError{"error is not an object"};
    return Error{id, string_field(error->get_object(), "class"),
                 string_field(error->get_object(), "desc")};
  }
  return ParseError{"neither greeting, event, return nor error"};
}

std::string serialize_command(std::string_view command, const json::object& arguments,
                              std::uint64_t id) {
  json::object object;
  object["execute"] = command;
  if (!arguments.empty())
    object["arguments"] = arguments;
  object["id"] = id;
  return json::serialize(object) + "\r\n";
}

}  // namespace berth::qmp
