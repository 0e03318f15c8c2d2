#include "supervisor/kvm_verdict.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>

#include "drive/files.hpp"

namespace berth {
namespace {

constexpr std::uint64_t kMaxVerdictBytes = 64 * 1024;

// "field: value" from a /proc/cpuinfo line, or nullopt for another field.
std::optional<std::string> cpuinfo_value(const std::string& line, std::string_view field) {
  if (!line.starts_with(field))
    return std::nullopt;
  const auto colon = line.find(':', field.size());
  if (colon == std::string::npos || line.find_first_not_of(" \t", field.size()) != colon)
    return std::nullopt;
  const auto start = line.find_first_not_of(' ', colon + 1);
  return start == std::string::npos ? std::string() : line.substr(start);
}

std::filesystem::path find_in_path(const std::string& binary) {
  if (binary.find('/') != std::string::npos)
    return binary;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto end = dirs.find(':');
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(0, end)) / binary;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    dirs = end == std::string_view::npos ? std::string_view() : dirs.substr(end + 1);
  }
  return binary;
}

std::string binary_identity(const std::string& binary) {
  const std::filesystem::path found = find_in_path(binary);
  struct stat st {};
  if (::stat(found.c_str(), &st) != 0)
    return found.string();
  return fmt::format("{} size {} mtime {}", found.string(), st.st_size, st.st_mtim.tv_sec);
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 0xcbf29ce484222325ULL) {
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

KvmHost describe_kvm_host(const std::string& qemu_binary) {
  KvmHost host;
  struct utsname names {};
  if (::uname(&names) == 0)
    host.kernel = names.release;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line) && line != "";) {
    if (auto model = cpuinfo_value(line, "model name"))
      host.cpu = *model;
    else if (auto flags = cpuinfo_value(line, "flags"))
      host.cpu_flags = *flags;
  }
  host.qemu = binary_identity(qemu_binary);
  return host;
}

std::string kvm_verdict_name(const KvmHost& host) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const std::string* field : {&host.kernel, &host.cpu, &host.cpu_flags, &host.qemu}) {
    hash = fnv1a(*field, hash);
    hash = fnv1a(std::string_view("\n", 1), hash);
  }
  return fmt::format("kvm-failed-{:016x}", hash);
}

std::string format_kvm_verdict(const KvmHost& host, std::string_view reason,
                               std::string_view when) {
  auto one_line = [](std::string_view text) {
    std::string line(text);
    for (char& c : line)
      c = (c == '\n' || c == '\r') ? ' ' : c;
    return line;
  };
  return fmt::format("kernel: {}\ncpu: {}\ncpu flags: {}\nqemu: {}\nreason: {}\nwhen: {}\n",
                     host.kernel, host.cpu, host.cpu_flags, host.qemu, one_line(reason),
                     one_line(when));
}

std::optional<std::string> parse_kvm_verdict(std::string_view text, const KvmHost& host) {
  KvmHost found;
  std::string reason;
  std::string when;
  const std::pair<std::string_view, std::string*> fields[] = {
      {"kernel: ", &found.kernel}, {"cpu: ", &found.cpu}, {"cpu flags: ", &found.cpu_flags},
      {"qemu: ", &found.qemu},     {"reason: ", &reason}, {"when: ", &when}};
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    for (const auto& [prefix, value] : fields)
      if (line.starts_with(prefix))
        *value = std::string(line.substr(prefix.size()));
  }
  if (!(found == host) || reason.empty())
    return std::nullopt;
  return when.empty() ? reason : fmt::format("{} (recorded {})", reason, when);
}

std::optional<std::string> read_kvm_failure(const std::filesystem::path& cache_dir,
                                            const KvmHost& host) {
  auto text = drive::read_file(cache_dir / kvm_verdict_name(host), kMaxVerdictBytes);
  if (!text)
    return std::nullopt;
  return parse_kvm_verdict(*text, host);
}

Result<void> record_kvm_failure(const std::filesystem::path& cache_dir, const KvmHost& host,
                                std::string_view reason) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  const std::string when = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", now);
  return drive::write_file_atomic(cache_dir / kvm_verdict_name(host),
                                  format_kvm_verdict(host, reason, when));
}

}  // namespace berth
