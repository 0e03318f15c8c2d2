#include "supervisor/qemu_user.hpp"

#include <fcntl.h>
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

bool may_access(const struct stat& st, const Credentials& who, unsigned want) {
  const bool in_group =
      st.st_gid == who.gid
      || std::find(who.groups.begin(), who.groups.end(), st.st_gid) != who.groups.end();
  // Only the first class that matches counts (owner, then group, then others), as in the kernel.
  const unsigned shift = st.st_uid == who.uid ? 6 : in_group ? 3 : 0;
  const unsigned bits = (st.st_mode >> shift) & 07;
  return (bits & want) == want;
}

bool may_read_write(const struct stat& st, const Credentials& who) {
  return may_access(st, who, 06);
}

Result<void> check_reachable(const std::filesystem::path& file, const Credentials& who,
                             std::string_view what) {
  std::filesystem::path folder;
  for (const auto& part : file.parent_path()) {
    folder /= part;
    struct stat st {};
    if (::stat(folder.c_str(), &st) != 0)
      return system_error(fmt::format("checking the way to {} {}", what, file.string()), errno);
    if (!may_access(st, who, 01))
      return invalid_input(fmt::format(
          "QEMU (uid {}, gid {}) cannot reach {} {}: the folder {} is {}; make it traversable "
          "for QEMU's user (e.g. chmod o+x {}) or choose another folder",
          who.uid, who.gid, what, file.string(), folder.string(), describe_mode(st),
          folder.string()));
  }
  return {};
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
                             const std::filesystem::path& base_image,
                             const std::filesystem::path& runtime_dir,
                             const std::vector<std::filesystem::path>& cdroms) {
  // chmod first: once the file is QEMU's, changing its mode would need CAP_FOWNER.
  if (::chmod(pet_disk.c_str(), 0600) != 0 || ::chown(pet_disk.c_str(), who.uid, who.gid) != 0)
    return system_error(fmt::format("handing the pet disk {} to QEMU's user {}:{}",
                                    pet_disk.string(), who.uid, who.gid),
                        errno);
  if (::chown(runtime_dir.c_str(), 0, who.gid) != 0 || ::chmod(runtime_dir.c_str(), 0710) != 0)
    return system_error(fmt::format("opening BERTH_RUNTIME_DIR {} to QEMU's group {}",
                                    runtime_dir.string(), who.gid),
                        errno);
  std::vector<std::pair<std::filesystem::path, std::string>> cached = {{base_image, "base image"}};
  for (const auto& iso : cdroms)
    cached.emplace_back(iso, "CD-ROM's ISO");
  for (const auto& [image, what] : cached) {
    struct stat st {};
    if (::stat(image.c_str(), &st) != 0 || !may_access(st, who, 04))
      return invalid_input(fmt::format(
          "QEMU (uid {}, gid {}) cannot read the {} {} ({}); the image cache keeps it 0644",
          who.uid, who.gid, what, image.string(), describe_mode(st)));
    if (auto reachable = check_reachable(image, who, "the " + what); !reachable)
      return reachable;
  }
  const std::filesystem::path inside_runtime = runtime_dir / "";  // its folders and itself
  for (const auto& [file, what] :
       {std::pair{&pet_disk, "the pet disk"}, std::pair{&inside_runtime, "the runtime folder"}})
    if (auto reachable = check_reachable(*file, who, what); !reachable)
      return reachable;
  return {};
}

Result<void> make_file_for_qemu(const std::filesystem::path& path, const QemuUser& user) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return system_error(fmt::format("creating {} for QEMU", path.string()), errno);
  const bool handed = ::geteuid() != 0 || ::fchown(fd, user.uid, user.gid) == 0;
  const int error = errno;
  ::close(fd);
  if (!handed)
    return system_error(
        fmt::format("handing {} to QEMU's user {}:{}", path.string(), user.uid, user.gid), error);
  return {};
}

Result<void> make_folder_for_qemu(const std::filesystem::path& path,
                                  const std::filesystem::path& socket,
                                  const std::optional<Credentials>& who) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return system_error(fmt::format("creating {} for QEMU", path.string()), errno);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return system_error(fmt::format("creating {} for QEMU", path.string()), errno);
  if (!S_ISDIR(st.st_mode))
    return invalid_input(fmt::format("{} is not a folder; remove it", path.string()));
  if (!socket.empty())
    ::unlink(socket.c_str());  // QEMU (or swtpm) binds the socket anew
  if (::chmod(path.c_str(), 0700) != 0 || (who && ::chown(path.c_str(), who->uid, who->gid) != 0))
    return system_error(fmt::format("handing {} to QEMU's user", path.string()), errno);
  return {};
}

}  // namespace berth
