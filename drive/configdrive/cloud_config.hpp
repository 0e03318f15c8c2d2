#pragma once
// What goes on the config drive, decided from the user's inputs: pure (bytes in, files out), so
// every rule is testable without a file system.
//
// configdrive (label config-2): openstack/latest/meta_data.json, openstack/latest/user_data,
//   openstack/latest/network_data.json (when given: OpenStack's schema, JSON or YAML).
// nocloud (label cidata): meta-data, user-data, network-config (when given: cloud-init's network
//   config version 1 or 2). Network data of the other layout's schema is refused.
// Metadata may be JSON or YAML (a mapping); it is completed with an instance id (uuid /
// instance-id) and a hostname (hostname / local-hostname) when absent, derived from the pod's
// hostname so that they are stable for a pet. User-data is passed byte for byte; when it is a
// #cloud-config it must be valid YAML (a mapping).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace berth::drive {

// Limits on what a ConfigMap may hold, so that no content can crash or stall berth (PID 1):
// each input (user-data, metadata, network data) is at most 64 KiB, cloud-init's own user-data
// limit on most clouds; YAML is nested at most kMaxYamlDepth levels (checked on the text before
// parsing: yaml-cpp's parser recurses per level), and expands (aliases repeat their anchor's
// content) to at most kMaxYamlNodes nodes and kMaxYamlBytes bytes of scalars.
inline constexpr std::uint64_t kMaxInputBytes = 64 * 1024;
inline constexpr std::size_t kMaxYamlDepth = 64;
inline constexpr std::size_t kMaxYamlNodes = 100'000;
inline constexpr std::size_t kMaxYamlBytes = 1024 * 1024;

enum class DriveLayout { kConfigDrive, kNoCloud };

// The raw inputs; nullopt when the user gave none. The names say where each came from in error
// messages ("user-data from /userdata/userdata").
struct DriveInputs {
  std::optional<std::string> userdata;
  std::optional<std::string> metadata;
  std::optional<std::string> networkdata;
  std::string userdata_name = "user-data";
  std::string metadata_name = "metadata";
  std::string networkdata_name = "network data";
};

struct DriveFile {
  std::string path;  // inside the ISO, '/'-separated, no leading '/'
  std::string data;
};

struct DriveContent {
  std::string label;             // the volume id: "config-2" or "cidata"
  std::vector<DriveFile> files;  // in path order
  std::string instance_id;
  std::string hostname;

  // The file at `path`, or nullptr.
  const DriveFile* file(std::string_view path) const {
    for (const auto& f : files)
      if (f.path == path)
        return &f;
    return nullptr;
  }
};

// "config-2" or "cidata".
std::string_view drive_label(DriveLayout layout);

// Builds the drive's files. `hostname` is the pod's (used when the metadata names none). Errors
// (kInvalidInput) name the input (DriveInputs' names) and, for YAML, the line and column.
Result<DriveContent> make_drive_content(DriveLayout layout, std::string_view hostname,
                                        const DriveInputs& inputs);

// A stable instance id for a hostname: the name-based (version 5, SHA-1) UUID of the hostname in
// a Berth namespace, e.g. "7f0c7e1e-...".
std::string derive_instance_id(std::string_view hostname);

// Checks the size of an input against kMaxInputBytes. Errors: "<name> is 65537 bytes; the limit
// is 65536 bytes (64 KiB, ...)".
Result<void> check_input_size(std::string_view name, std::uint64_t size);

// Checks user-data: anything is accepted except a #cloud-config that is not a YAML mapping.
// Errors: "<name>: #cloud-config is not valid YAML: line 3, column 5: ...".
Result<void> check_user_data(std::string_view userdata, std::string_view name = "user-data");

}  // namespace berth::drive
