#include "drive/configdrive/cloud_config.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <regex>

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

// Parses YAML text into a node; errors carry the line and column.
Result<YAML::Node> load_yaml(std::string_view text, std::string_view what) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Result<YAML::Node>(boost::system::in_place_error, invalid(yaml_error(what, e)));
  }
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

// A plain YAML scalar as a typed JSON value: null, bool, integer, float, else string. Quoted
// scalars (tag "!") and explicitly tagged ones stay strings.
json::value scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() != "?")
    return json::value(s);
  bool flag = false;
  if (is_yaml_bool(s, flag))
    return json::value(flag);
  static const std::regex kInt("[-+]?(0|[1-9][0-9]*)");
  static const std::regex kFloat("[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  if (std::regex_match(s, kInt)) {
    std::int64_t value = 0;
    const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
    auto [end, ec] = std::from_chars(begin, s.data() + s.size(), value);
    if (ec == std::errc() && end == s.data() + s.size())
      return json::value(value);
  } else if (std::regex_match(s, kFloat)) {
    try {
      return json::value(std::stod(s));
    } catch (const std::exception&) {
    }
  }
  return json::value(s);
}

Result<json::value> yaml_to_json(const YAML::Node& node, std::string_view what) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return json::value(nullptr);
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      json::array array;
      for (const auto& item : node) {
        auto value = yaml_to_json(item, what);
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
        auto value = yaml_to_json(item.second, what);
        if (!value)
          return value;
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
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec) {
    auto node = load_yaml(text, fmt::format("{} is neither JSON nor valid YAML", what));
    if (!node)
      return node.error();
    auto converted = yaml_to_json(*node, what);
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

bool is_plain_key(std::string_view key) {
  static const std::regex kPlain("[A-Za-z_][A-Za-z0-9_-]*");
  bool ignored = false;
  const std::string k(key);
  return std::regex_match(k, kPlain) && !is_yaml_bool(k, ignored) && k != "null" && k != "Null"
         && k != "NULL";
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

Result<void> check_user_data(std::string_view userdata, std::string_view name) {
  // cloud-init picks the longest matching header, so these two are not #cloud-config.
  if (!starts_with_line(userdata, "#cloud-config")
      || starts_with_line(userdata, "#cloud-config-archive")
      || starts_with_line(userdata, "#cloud-config-jsonp"))
    return {};
  auto node = load_yaml(userdata, fmt::format("{}: #cloud-config is not valid YAML", name));
  if (!node)
    return node.error();
  if (!node->IsMap() && !node->IsNull())
    return invalid(
        fmt::format("{}: #cloud-config must be a mapping (key: value) at the top "
                    "level, not a {}",
                    name, node->IsSequence() ? "list" : "single value"));
  return {};
}

Result<DriveContent> make_drive_content(DriveLayout layout, std::string_view hostname,
                                        const DriveInputs& inputs) {
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
