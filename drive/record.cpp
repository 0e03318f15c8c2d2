#include "drive/record.hpp"

#include <algorithm>
#include <boost/json.hpp>

namespace berth::drive {

namespace json = boost::json;

std::optional<Record> Record::parse(std::string_view text) {
  boost::system::error_code ec;
  auto value = json::parse(text, ec);
  if (ec || !value.is_object())
    return std::nullopt;
  Record record;
  for (const auto& [key, field] : value.as_object()) {
    if (field.is_string()) {
      record.set(key, std::string(field.as_string()));
    } else if (field.is_number()) {
      boost::system::error_code number_ec;
      const auto number = field.to_number<std::uint64_t>(number_ec);
      if (!number_ec)
        record.set(key, number);
    }
  }
  return record;
}

Record& Record::set(std::string_view key, Value value) {
  auto it = std::find_if(fields_.begin(), fields_.end(),
                         [&](const auto& field) { return field.first == key; });
  if (it != fields_.end())
    it->second = std::move(value);
  else
    fields_.emplace_back(std::string(key), std::move(value));
  return *this;
}

const Record::Value* Record::find(std::string_view key) const {
  auto it = std::find_if(fields_.begin(), fields_.end(),
                         [&](const auto& field) { return field.first == key; });
  return it == fields_.end() ? nullptr : &it->second;
}

std::optional<std::string> Record::string(std::string_view key) const {
  const Value* value = find(key);
  if (value == nullptr || !std::holds_alternative<std::string>(*value))
    return std::nullopt;
  return std::get<std::string>(*value);
}

std::optional<std::uint64_t> Record::number(std::string_view key) const {
  const Value* value = find(key);
  if (value == nullptr || !std::holds_alternative<std::uint64_t>(*value))
    return std::nullopt;
  return std::get<std::uint64_t>(*value);
}

bool Record::strings(
    std::initializer_list<std::pair<std::string_view, std::string*>> fields) const {
  for (const auto& [key, destination] : fields) {
    auto value = string(key);
    if (!value)
      return false;
    *destination = std::move(*value);
  }
  return true;
}

std::string Record::serialize() const {
  json::object o;
  for (const auto& [key, value] : fields_)
    std::visit([&, &key = key](const auto& v) { o[key] = v; }, value);
  return json::serialize(o) + "\n";
}

}  // namespace berth::drive
