#include "drive/configdrive/cloud_config.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstdlib>

namespace berth::drive {

namespace json = boost::json;

namespace {

Error invalid(std::string message) {
  return {ErrorKind::kInvalidInput, std::move(message)};
}

std::string yaml_error(std::string_view what, const YAML::Exception& e) {
  if (e.mark.is_null())
    return fmt::format("{}: {}", what, e.msg);
  return fmt::format("{}: line {}, column {}: {}", what, e.mark.line + 1, e.mark.column + 1, e.msg);
}

// An upper bound of the nesting of YAML text, found without parsing it (yaml-cpp's parser recurses
// once per level, and gives deep input a misleading "bad file"): the open block levels (the
// columns of lines, one per compact "- " or "? " indicator, plus one for a "key:" after them)
// and the open flow brackets '[' '{' (counted even inside quotes and comments, so never under the
// real nesting). Returns the first line that goes past `limit`, or 0.
std::size_t line_past_depth(std::string_view text, std::size_t limit) {
  std::vector<std::size_t> levels;  // the columns of the open block levels, ascending
  std::size_t flow = 0;
  std::size_t line = 1;
  for (std::size_t pos = 0; pos < text.size(); ++line) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    const std::string_view row = text.substr(pos, end - pos);
    pos = end + 1;
    const std::size_t indent = std::min(row.find_first_not_of(' '), row.size());
    std::size_t i = indent;
    if (i == row.size() || row[i] == '#' || row[i] == '\r')
      continue;  // blank lines and comments do not close levels
    // A line closes the deeper levels; one at a level's column is a sibling there, or an
    // indentless sequence in it (counted by its "- " below).
    while (!levels.empty() && levels.back() > i)
      levels.pop_back();
    if (levels.empty() || levels.back() != i)
      levels.push_back(i);
    const auto separated = [&](std::size_t at) {
      return at + 1 == row.size() || row[at + 1] == ' ' || row[at + 1] == '\t';
    };
    // Compact nesting: "- - ? &anchor !tag - value", each indicator one more level.
    bool compact = false;
    while (i < row.size()) {
      if ((row[i] == '-' || row[i] == '?' || row[i] == ':') && separated(i)) {
        i = std::min(row.find_first_not_of(" \t", i + 1), row.size());
        levels.push_back(i);
        compact = true;
      } else if (row[i] == '&' || row[i] == '!') {
        i = std::min(row.find_first_not_of(" \t", std::min(row.find(' ', i), row.size())),
                     row.size());
      } else {
        break;
      }
    }
    if (compact && (row.find(": ", i) != std::string_view::npos || row.back() == ':'))
      levels.push_back(i);  // a mapping in the sequence item
    // The whole line: a tag or an anchor may touch a bracket ("![", found by the fuzzer).
    for (i = indent; i < row.size(); ++i) {
      if (row[i] == '[' || row[i] == '{')
        ++flow;
      else if ((row[i] == ']' || row[i] == '}') && flow > 0)
        --flow;
      if (levels.size() + flow > limit)
        return line;
    }
    if (levels.size() + flow > limit)
      return line;
  }
  return 0;
}

// Parses YAML text into a node; errors carry the line and column. Text nested deeper than
// kMaxYamlDepth is refused before the parser sees it.
Result<YAML::Node> load_yaml(std::string_view text, std::string_view what) {
  if (const std::size_t line = line_past_depth(text, kMaxYamlDepth))
    return Result<YAML::Node>(
        boost::system::in_place_error,
        invalid(fmt::format("{}: YAML is nested deeper than {} levels (line {}): flatten it", what,
                            kMaxYamlDepth, line)));
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Result<YAML::Node>(boost::system::in_place_error, invalid(yaml_error(what, e)));
  }
}

// The offset of the first byte that is not part of valid UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF, as JSON parsers require), or npos.
std::size_t invalid_utf8_at(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = byte(i);
    std::size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;  // the second byte's range
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      low = c == 0xE0 ? 0xA0 : 0x80;
      high = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      low = c == 0xF0 ? 0x90 : 0x80;
      high = c == 0xF4 ? 0x8F : 0xBF;
    } else {
      return i;
    }
    if (i + length > text.size() || byte(i + 1) < low || byte(i + 1) > high)
      return i;
    for (std::size_t k = 2; k < length; ++k)
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF)
        return i;
    i += length;
  }
  return std::string_view::npos;
}

// A scalar (value or key) must be UTF-8 to go into JSON; the text was, but yaml-cpp writes the
// escapes \N, \_, \L and \P as raw bytes.
Result<void> check_utf8_scalar(const YAML::Node& node, std::string_view what) {
  if (invalid_utf8_at(node.Scalar()) == std::string_view::npos)
    return {};
  return invalid(fmt::format(
      "{}: line {}: a string is not valid UTF-8 after YAML's escapes (\\N, \\_, \\L, \\P): "
      "write the character itself",
      what, node.Mark().line + 1));
}

// What walking a YAML tree may cost: aliases repeat their anchor's node, so a small text can
// expand without bound ("a billion laughs"), and an alias inside its own anchor has no end.
struct YamlBudget {
  std::string_view what;
  std::size_t nodes = 0;
  std::size_t bytes = 0;

  // Counts one more node at `depth` holding `scalar` bytes; an error once past the limits.
  Result<void> take(std::size_t depth, std::size_t scalar) {
    if (depth > kMaxYamlDepth)
      return invalid(fmt::format(
          "{}: YAML is nested deeper than {} levels, or has an alias inside its own anchor", what,
          kMaxYamlDepth));
    bytes += scalar;
    if (++nodes > kMaxYamlNodes || bytes > kMaxYamlBytes)
      return invalid(fmt::format(
          "{}: YAML expands to more than {} nodes or {} bytes of text (aliases repeat their "
          "anchor's content): write it out without so many aliases",
          what, kMaxYamlNodes, kMaxYamlBytes));
    return {};
  }
};

// Walks the whole tree within the budget (aliases expanded, as a reader of the YAML would).
Result<void> walk_yaml(const YAML::Node& node, YamlBudget& budget, std::size_t depth = 0) {
  if (auto ok = budget.take(depth, node.IsScalar() ? node.Scalar().size() : 0); !ok)
    return ok;
  if (node.IsSequence()) {
    for (const auto& item : node)
      if (auto ok = walk_yaml(item, budget, depth + 1); !ok)
        return ok;
  } else if (node.IsMap()) {
    for (const auto& item : node) {
      if (auto ok = walk_yaml(item.first, budget, depth + 1); !ok)
        return ok;
      if (auto ok = walk_yaml(item.second, budget, depth + 1); !ok)
        return ok;
    }
  }
  return {};
}

bool is_yaml_bool(const std::string& s, bool& value) {
  // YAML 1.1, as PyYAML (and so cloud-init) reads it.
  static const std::array<std::string_view, 9> kTrue = {"true", "True", "TRUE", "yes", "Yes",
                                                        "YES",  "on",   "On",   "ON"};
  static const std::array<std::string_view, 9> kFalse = {"false", "False", "FALSE", "no", "No",
                                                         "NO",    "off",   "Off",   "OFF"};
  if (std::find(kTrue.begin(), kTrue.end(), s) != kTrue.end())
    return value = true, true;
  if (std::find(kFalse.begin(), kFalse.end(), s) != kFalse.end())
    return value = false, true;
  return false;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The digits [0-9]* from `i`; returns where they end.
std::size_t skip_digits(std::string_view s, std::size_t i) {
  while (i < s.size() && is_digit(s[i]))
    ++i;
  return i;
}

enum class ScalarKind { kString, kInt, kFloat };

// Classifies a plain scalar in one pass, without recursion (std::regex_match recursed once per
// character: a long scalar overflowed the stack):
//   int    [-+]?(0|[1-9][0-9]*)
//   float  [-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?
ScalarKind classify_number(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+'))
    ++i;
  const std::size_t int_begin = i;
  i = skip_digits(s, i);
  const std::size_t int_digits = i - int_begin;
  if (i == s.size()) {
    if (int_digits == 0 || (int_digits > 1 && s[int_begin] == '0'))
      return ScalarKind::kString;
    return ScalarKind::kInt;
  }
  if (s[i] != '.')
    return ScalarKind::kString;
  const std::size_t frac_begin = ++i;
  i = skip_digits(s, i);
  if (int_digits == 0 && i == frac_begin)
    return ScalarKind::kString;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+'))
      ++i;
    const std::size_t exp_begin = i;
    i = skip_digits(s, i);
    if (i == exp_begin)
      return ScalarKind::kString;
  }
  return i == s.size() ? ScalarKind::kFloat : ScalarKind::kString;
}

// A plain YAML scalar as a typed JSON value: null, bool, integer, float, else string. Quoted
// scalars (tag "!") and explicitly tagged ones stay strings.
json::value scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() != "?")
    return json::value(s);
  bool flag = false;
  if (is_yaml_bool(s, flag))
    return json::value(flag);
  switch (classify_number(s)) {
    case ScalarKind::kInt: {
      std::int64_t value = 0;
      const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
      auto [end, ec] = std::from_chars(begin, s.data() + s.size(), value);
      if (ec == std::errc() && end == s.data() + s.size())
        return json::value(value);
      break;
    }
    case ScalarKind::kFloat: {
      // strtod reads any length; out of range gives HUGE_VAL or 0 (JSON has no infinity).
      errno = 0;
      const double value = std::strtod(s.c_str(), nullptr);
      if (errno != ERANGE)
        return json::value(value);
      break;
    }
    case ScalarKind::kString:
      break;
  }
  return json::value(s);
}

Result<json::value> yaml_to_json(const YAML::Node& node, std::string_view what, YamlBudget& budget,
                                 std::size_t depth = 0) {
  if (auto ok = budget.take(depth, node.IsScalar() ? node.Scalar().size() : 0); !ok)
    return ok.error();
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return json::value(nullptr);
    case YAML::NodeType::Scalar:
      if (auto ok = check_utf8_scalar(node, what); !ok)
        return ok.error();
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      json::array array;
      for (const auto& item : node) {
        auto value = yaml_to_json(item, what, budget, depth + 1);
        if (!value)
          return value;
        array.push_back(std::move(*value));
      }
      return json::value(std::move(array));
    }
    case YAML::NodeType::Map: {
      json::object object;
      for (const auto& item : node) {
        if (!item.first.IsScalar())
          return invalid(fmt::format("{}: line {}: only scalar keys are supported", what,
                                     item.first.Mark().line + 1));
        auto value = yaml_to_json(item.second, what, budget, depth + 1);
        if (!value)
          return value;
        if (auto ok = budget.take(depth + 1, item.first.Scalar().size()); !ok)
          return ok.error();
        if (auto ok = check_utf8_scalar(item.first, what); !ok)
          return ok.error();
        object[item.first.Scalar()] = std::move(*value);
      }
      return json::value(std::move(object));
    }
  }
  return json::value(nullptr);
}

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// A mapping from JSON or YAML text; blank text is an empty mapping.
Result<json::object> parse_mapping(std::string_view text, std::string_view what) {
  if (is_blank(text))
    return json::object();
  // It becomes JSON (meta_data.json, network_data.json), which must be UTF-8.
  if (const std::size_t at = invalid_utf8_at(text); at != std::string_view::npos)
    return invalid(fmt::format("{} is not valid UTF-8 (byte {} at offset {}): save it as UTF-8",
                               what, fmt::format("{:#04x}", static_cast<unsigned char>(text[at])),
                               at));
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec) {
    auto node = load_yaml(text, fmt::format("{} is neither JSON nor valid YAML", what));
    if (!node)
      return node.error();
    YamlBudget budget{what};
    auto converted = yaml_to_json(*node, what, budget);
    if (!converted)
      return converted.error();
    value = std::move(*converted);
  }
  if (value.is_null())
    return json::object();
  if (!value.is_object())
    return invalid(fmt::format("{} must be a mapping (key: value), not a {}", what,
                               value.is_array() ? "list" : "single value"));
  return std::move(value.as_object());
}

// The value of the first of `keys` that is a non-empty string or a number, as a string.
std::optional<std::string> first_string(const json::object& o,
                                        std::initializer_list<std::string_view> keys) {
  for (auto key : keys) {
    auto it = o.find(key);
    if (it == o.end())
      continue;
    if (it->value().is_string() && !it->value().as_string().empty())
      return std::string(it->value().as_string());
    if (it->value().is_number())
      return json::serialize(it->value());
  }
  return std::nullopt;
}

// [A-Za-z_][A-Za-z0-9_-]*, and not a word YAML reads as a bool or null.
bool is_plain_key(std::string_view key) {
  const auto letter = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  if (key.empty() || !letter(key[0]))
    return false;
  for (const char c : key.substr(1))
    if (!letter(c) && !is_digit(c) && c != '-')
      return false;
  bool ignored = false;
  const std::string k(key);
  return !is_yaml_bool(k, ignored) && k != "null" && k != "Null" && k != "NULL";
}

void emit_yaml(YAML::Emitter& out, const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      out << YAML::Null;
      break;
    case json::kind::bool_:
      out << value.get_bool();
      break;
    case json::kind::int64:
      out << value.get_int64();
      break;
    case json::kind::uint64:
      out << value.get_uint64();
      break;
    case json::kind::double_:
      out << value.get_double();
      break;
    case json::kind::string:
      out << YAML::DoubleQuoted << std::string(value.get_string());
      break;
    case json::kind::array:
      out << YAML::BeginSeq;
      for (const auto& item : value.get_array())
        emit_yaml(out, item);
      out << YAML::EndSeq;
      break;
    case json::kind::object:
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.get_object()) {
        out << YAML::Key;
        if (is_plain_key(key))
          out << std::string(key);
        else
          out << YAML::DoubleQuoted << std::string(key);
        out << YAML::Value;
        emit_yaml(out, item);
      }
      out << YAML::EndMap;
      break;
  }
}

std::string to_yaml(const json::object& object) {
  YAML::Emitter out;
  if (object.empty())
    return "{}\n";
  emit_yaml(out, json::value(object));
  return std::string(out.c_str()) + "\n";
}

bool starts_with_line(std::string_view text, std::string_view header) {
  return text.substr(0, header.size()) == header;
}

}  // namespace

std::string_view drive_label(DriveLayout layout) {
  return layout == DriveLayout::kConfigDrive ? "config-2" : "cidata";
}

std::string derive_instance_id(std::string_view hostname) {
  // RFC 4122 version 5 in the DNS namespace: uuid.uuid5(uuid.NAMESPACE_DNS, hostname).
  static constexpr unsigned char kNamespace[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                                   0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr);
  EVP_DigestUpdate(ctx, kNamespace, sizeof kNamespace);
  EVP_DigestUpdate(ctx, hostname.data(), hostname.size());
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out.push_back('-');
    out += fmt::format("{:02x}", digest[i]);
  }
  return out;
}

Result<void> check_input_size(std::string_view name, std::uint64_t size) {
  if (size <= kMaxInputBytes)
    return {};
  return invalid(fmt::format(
      "{} is {} bytes; the limit is {} bytes (64 KiB, cloud-init's own user-data limit on most "
      "clouds): move large files into the image or fetch them from the guest",
      name, size, kMaxInputBytes));
}

Result<void> check_user_data(std::string_view userdata, std::string_view name) {
  // cloud-init picks the longest matching header, so these two are not #cloud-config.
  if (!starts_with_line(userdata, "#cloud-config")
      || starts_with_line(userdata, "#cloud-config-archive")
      || starts_with_line(userdata, "#cloud-config-jsonp"))
    return {};
  auto node = load_yaml(userdata, fmt::format("{}: #cloud-config is not valid YAML", name));
  if (!node)
    return node.error();
  const std::string what = fmt::format("{}: #cloud-config", name);
  YamlBudget budget{what};
  if (auto ok = walk_yaml(*node, budget); !ok)
    return ok.error();
  if (!node->IsMap() && !node->IsNull())
    return invalid(
        fmt::format("{}: #cloud-config must be a mapping (key: value) at the top "
                    "level, not a {}",
                    name, node->IsSequence() ? "list" : "single value"));
  return {};
}

Result<DriveContent> make_drive_content(DriveLayout layout, std::string_view hostname,
                                        const DriveInputs& inputs) {
  const std::pair<const std::optional<std::string>&, const std::string&> sized[] = {
      {inputs.userdata, inputs.userdata_name},
      {inputs.metadata, inputs.metadata_name},
      {inputs.networkdata, inputs.networkdata_name},
  };
  for (const auto& [data, name] : sized)
    if (data)
      if (auto ok = check_input_size(name, data->size()); !ok)
        return ok.error();
  DriveContent content;
  content.label = std::string(drive_label(layout));
  const bool configdrive = layout == DriveLayout::kConfigDrive;

  // Metadata, completed with the keys cloud-init needs.
  auto metadata = parse_mapping(inputs.metadata.value_or(""), inputs.metadata_name);
  if (!metadata)
    return metadata.error();
  const std::string_view id_key = configdrive ? "uuid" : "instance-id";
  const std::string_view host_key = configdrive ? "hostname" : "local-hostname";
  content.instance_id = first_string(*metadata, {id_key, configdrive ? "instance-id" : "uuid"})
                            .value_or(derive_instance_id(hostname));
  content.hostname =
      first_string(*metadata, {host_key, configdrive ? "local-hostname" : "hostname"})
          .value_or(std::string(hostname));
  (*metadata)[id_key] = content.instance_id;
  if (!content.hostname.empty())
    (*metadata)[host_key] = content.hostname;

  // User-data: byte for byte, checked when it is a #cloud-config.
  const std::string userdata = inputs.userdata.value_or("");
  if (auto ok = check_user_data(userdata, inputs.userdata_name); !ok)
    return ok.error();

  if (configdrive) {
    content.files.push_back({"openstack/latest/meta_data.json", json::serialize(*metadata) + "\n"});
    content.files.push_back({"openstack/latest/user_data", userdata});
  } else {
    content.files.push_back({"meta-data", to_yaml(*metadata)});
    content.files.push_back({"user-data", userdata});
  }

  // Network data: OpenStack's network_data.json (JSON; YAML is converted) or NoCloud's
  // network-config (YAML, JSON being YAML), checked to be a mapping, otherwise as given.
  if (inputs.networkdata && !is_blank(*inputs.networkdata)) {
    auto network = parse_mapping(*inputs.networkdata, inputs.networkdata_name);
    if (!network)
      return network.error();
    // The two layouts carry different schemas; the wrong one would be ignored by cloud-init.
    const bool netplan_style = network->contains("version") || network->contains("network");
    if (configdrive && netplan_style)
      return invalid(fmt::format(
          "{} is a cloud-init network-config (it has \"version\"), but a configdrive carries "
          "OpenStack network_data.json (links, networks, services): set BERTH_DRIVE_FORMAT=nocloud "
          "or write network_data.json",
          inputs.networkdata_name));
    if (!configdrive && !netplan_style)
      return invalid(fmt::format(
          "{} has no \"version\": a NoCloud network-config is cloud-init's network config "
          "version 1 or 2 (for OpenStack network_data.json use BERTH_DRIVE_FORMAT=configdrive)",
          inputs.networkdata_name));
    if (configdrive) {
      boost::system::error_code ec;
      json::parse(*inputs.networkdata, ec);
      content.files.push_back({"openstack/latest/network_data.json",
                               ec ? json::serialize(*network) + "\n" : *inputs.networkdata});
    } else {
      content.files.push_back({"network-config", *inputs.networkdata});
    }
  }
  std::sort(content.files.begin(), content.files.end(),
            [](const DriveFile& a, const DriveFile& b) { return a.path < b.path; });
  return content;
}

}  // namespace berth::drive
