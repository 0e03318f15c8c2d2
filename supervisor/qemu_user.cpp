#include "supervisor/qemu_user.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace berth {

std::optional<Credentials> qemu_credentials(const QemuUser& user, uid_t berth_euid,
                                            std::optional<gid_t> kvm_group) {
  if (berth_euid != 0)
    return std::nullopt;
  Credentials who{user.uid, user.gid, {}};
  if (kvm_group && *kvm_group != 0 && *kvm_group != user.gid)
    who.groups.push_back(*kvm_group);
  return who;
}

bool may_read_write(const struct stat& st, const Credentials& who) {
  const bool in_group =
      st.st_gid == who.gid
      || std::find(who.groups.begin(), who.groups.end(), st.st_gid) != who.groups.end();
  // Only the first class that matches counts (owner, then group, then others), as in the kernel.
  const unsigned shift = st.st_uid == who.uid ? 6 : in_group ? 3 : 0;
  const unsigned bits = (st.st_mode >> shift) & 07;
  return (bits & 06) == 06;
}

std::string describe_mode(const struct stat& st) {
  return fmt::format("{:04o} {}:{}", st.st_mode & 07777, st.st_uid, st.st_gid);
}

qemu::KvmProbe kvm_for_qemu(qemu::KvmProbe probe, const char* device,
                            const std::optional<Credentials>& who) {
  if (!probe.usable || !who)
    return probe;
  struct stat st {};
  if (::stat(device, &st) != 0)
    return {false, fmt::format("{}: cannot stat it: {}", device, std::strerror(errno))};
  if (may_read_write(st, *who))
    return probe;
  return {false, fmt::format("{} is {}, so QEMU (uid {}, gid {}) may not open it; give the node's "
                             "/dev/kvm a group with rw (udev's default is 0660 root:kvm) or mode "
                             "0666",
                             device, describe_mode(st), who->uid, who->gid)};
}

Result<void> hand_over_files(const Credentials& who, const std::filesystem::path& pet_disk,
                             const std::filesystem::path& runtime_dir) {
  if (::chown(pet_disk.c_str(), who.uid, who.gid) != 0 || ::chmod(pet_disk.c_str(), 0600) != 0)
    return system_error(fmt::format("handing the pet disk {} to QEMU's user {}:{}",
                                    pet_disk.string(), who.uid, who.gid),
                        errno);
  if (::chown(runtime_dir.c_str(), 0, who.gid) != 0 || ::chmod(runtime_dir.c_str(), 0710) != 0)
    return system_error(fmt::format("opening BERTH_RUNTIME_DIR {} to QEMU's group {}",
                                    runtime_dir.string(), who.gid),
                        errno);
  return {};
}

}  // namespace berth
