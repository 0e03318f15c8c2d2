#pragma once
// The small JSON records Berth keeps next to its files (T.berth.json and T.download.json in the
// image cache, <host>.qcow2.berth.json next to a pet disk): one flat object of string and unsigned
// number fields, one line, fields in the order they were set.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace berth::drive {

class Record {
 public:
  using Value = std::variant<std::string, std::uint64_t>;

  // Parses `text`; nullopt when it is not a JSON object. Fields that are neither strings nor
  // unsigned integers are left out (so asking for them finds nothing).
  static std::optional<Record> parse(std::string_view text);

  // Sets a field, replacing an earlier value of the same key.
  Record& set(std::string_view key, Value value);
  // The field's value when it is there and a string (or a number); nullopt otherwise.
  std::optional<std::string> string(std::string_view key) const;
  std::optional<std::uint64_t> number(std::string_view key) const;
  // Reads each listed string field into its destination; false (destinations partly written)
  // when one is missing or not a string.
  bool strings(std::initializer_list<std::pair<std::string_view, std::string*>> fields) const;

  // One line of JSON and a newline.
  std::string serialize() const;

 private:
  const Value* find(std::string_view key) const;
  std::vector<std::pair<std::string, Value>> fields_;
};

}  // namespace berth::drive
