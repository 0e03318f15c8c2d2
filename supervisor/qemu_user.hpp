#pragma once
// QEMU never runs as root: who it runs as, and what berth prepares so that it needs no privilege.
// QEMU gets the tap and the QMP socket as descriptors (vm.cpp); what it opens by path is handed
// over here: the pet disk becomes QEMU's, the runtime folder (config-drive ISO) traversable for its
// group, /dev/kvm reachable through its group. The image cache stays root's and read-only to QEMU.

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "qemu/kvm.hpp"
#include "supervisor/children.hpp"
#include "supervisor/config.hpp"

namespace berth {

// The credentials QEMU is spawned with: BERTH_QEMU_USER's uid and gid, and as its only
// supplementary group the group of /dev/kvm (`kvm_group`) unless that is root's. nullopt when
// berth is not root (`berth_euid` != 0): it cannot switch, and QEMU runs as berth's own user.
std::optional<Credentials> qemu_credentials(const QemuUser& user, uid_t berth_euid,
                                            std::optional<gid_t> kvm_group);

// Whether `who` may open a file with `st`'s owner and mode for reading and writing, by the mode
// bits (ACLs are not consulted; an ACL can only add access here).
bool may_read_write(const struct stat& st, const Credentials& who);

// Whether `who` may search every folder on the way to `file` (the folders above it), by the mode
// bits. Errors: kInvalidInput naming the first folder it may not traverse and its mode; kSystem.
Result<void> check_reachable(const std::filesystem::path& file, const Credentials& who,
                             std::string_view what);

// "0600 0:0" style: `st`'s permission bits and numeric owner.
std::string describe_mode(const struct stat& st);

// Narrows a usable KVM probe to what QEMU running as `who` can use: /dev/kvm (`device`) must be
// readable and writable for it. A probe for berth's own identity (`who` nullopt) is returned as
// it is.
qemu::KvmProbe kvm_for_qemu(qemu::KvmProbe probe, const char* device,
                            const std::optional<Credentials>& who);

// Hands QEMU what it opens by path: the pet disk becomes uid:gid, mode 0600 (berth, root, still
// reads and grows it); the runtime folder becomes root:gid, mode 0710 (QEMU's group may traverse
// it to the config-drive ISO, 0644, but neither list nor create; the QMP socket and the control
// token stay root's 0600). The base image (the pet disk's backing file) stays root's: QEMU must
// be able to read it, and to traverse every folder above these three; the same goes for the
// bootable CD-ROMs' ISOs (`cdroms`, in the image cache too). Errors: kSystem (chown or chmod
// failed, with the path), kInvalidInput (QEMU could not reach or read a file; the message names
// the folder and its mode).
Result<void> hand_over_files(const Credentials& who, const std::filesystem::path& pet_disk,
                             const std::filesystem::path& base_image,
                             const std::filesystem::path& runtime_dir,
                             const std::vector<std::filesystem::path>& cdroms = {});

// Creates `path` empty (a stale file there is removed first; never through a symlink), mode 0600,
// owned by `user` when berth is root, so that QEMU can write it (screendump) without write access
// to its folder. Errors: kSystem.
Result<void> make_file_for_qemu(const std::filesystem::path& path, const QemuUser& user);

// Creates the folder `path` (mode 0700; an existing one is kept, a symlink there is refused) and
// gives it to `who`, so that QEMU can create a socket in it (the viewer's VNC display) without
// write access to the runtime folder. `who` nullopt: berth's own user, nothing to hand over.
// A stale `socket` in it is removed (none when empty: swtpm's state folder). Errors: kSystem (with
// the path), kInvalidInput (not a folder).
Result<void> make_folder_for_qemu(const std::filesystem::path& path,
                                  const std::filesystem::path& socket,
                                  const std::optional<Credentials>& who);

}  // namespace berth
