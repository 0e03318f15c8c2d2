// Who QEMU runs as and whether it may open /dev/kvm: the pure decisions of supervisor/qemu_user.

#include "supervisor/qemu_user.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

using namespace berth;

namespace {

struct stat node(uid_t uid, gid_t gid, mode_t mode) {
  struct stat st {};
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_mode = S_IFCHR | mode;
  return st;
}

}  // namespace

TEST_CASE("QEMU's credentials: BERTH_QEMU_USER, plus /dev/kvm's group unless it is root's",
          "[qemu-user]") {
  const QemuUser user{107, 107};
  CHECK(qemu_credentials(user, 0, std::nullopt)->groups.empty());
  const auto with_kvm = qemu_credentials(user, 0, gid_t{993});
  REQUIRE(with_kvm);
  CHECK(with_kvm->uid == 107);
  CHECK(with_kvm->gid == 107);
  CHECK(with_kvm->groups == std::vector<gid_t>{993});
  // Root's group would open every root:root 0660 file to QEMU: never added.
  CHECK(qemu_credentials(user, 0, gid_t{0})->groups.empty());
  CHECK(qemu_credentials(user, 0, gid_t{107})->groups.empty());  // already its group
  // berth not root: it cannot switch, QEMU runs as berth's user.
  CHECK_FALSE(qemu_credentials(user, 1000, gid_t{993}));
}

TEST_CASE("may_read_write follows the kernel: owner, else group, else others", "[qemu-user]") {
  const Credentials qemu{107, 107, {993}};
  CHECK_FALSE(may_read_write(node(0, 0, 0600), qemu));
  CHECK_FALSE(may_read_write(node(0, 0, 0660), qemu));  // root's group: not QEMU's
  CHECK(may_read_write(node(0, 993, 0660), qemu));      // the kvm group as supplementary
  CHECK(may_read_write(node(0, 107, 0660), qemu));      // its primary group
  CHECK_FALSE(may_read_write(node(0, 993, 0640), qemu));
  CHECK(may_read_write(node(0, 0, 0666), qemu));
  CHECK(may_read_write(node(107, 0, 0600), qemu));
  // The owner class alone counts for the owner, even when others may more.
  CHECK_FALSE(may_read_write(node(107, 0, 0066), qemu));
  CHECK(describe_mode(node(0, 993, 0660)) == "0660 0:993");
}

TEST_CASE("a KVM that QEMU's user may not open is not usable, and says why", "[qemu-user]") {
  // berth's own identity (not root): the probe stands as it is.
  const qemu::KvmProbe usable{true, ""};
  CHECK(kvm_for_qemu(usable, "/nonexistent/kvm", std::nullopt).usable);
  // An unusable probe keeps its reason.
  const qemu::KvmProbe absent{false, "/dev/kvm: No such file or directory"};
  CHECK(kvm_for_qemu(absent, "/dev/null", Credentials{107, 107, {}}).reason == absent.reason);
  // /dev/null is 0666: QEMU may open it.
  CHECK(kvm_for_qemu(usable, "/dev/null", Credentials{107, 107, {}}).usable);
  // A node only its owner may open (0600, as /dev/kvm is on some hosts): not usable, mode named.
  std::string path = (std::filesystem::temp_directory_path() / "berth-kvm-XXXXXX").string();
  const int fd = ::mkstemp(path.data());
  REQUIRE(fd >= 0);
  ::close(fd);
  ::chmod(path.c_str(), 0600);
  const auto refused = kvm_for_qemu(usable, path.c_str(), Credentials{107, 107, {}});
  ::unlink(path.c_str());
  CHECK_FALSE(refused.usable);
  CHECK_THAT(refused.reason, Catch::Contains(path + " is 0600") && Catch::Contains("uid 107")
                                 && Catch::Contains("0660 root:kvm"));
}

TEST_CASE("a folder QEMU's user may not traverse on the way to a file is named with its mode",
          "[qemu-user]") {
  std::string made = (std::filesystem::temp_directory_path() / "berth-reach-XXXXXX").string();
  REQUIRE(::mkdtemp(made.data()) != nullptr);
  const std::filesystem::path top = made;
  std::filesystem::create_directories(top / "disks");
  const Credentials qemu{107, 107, {}};
  ::chmod(top.c_str(), 0700);  // what mkdtemp makes
  const auto refused = check_reachable(top / "disks" / "vm.qcow2", qemu, "the pet disk");
  ::chmod(top.c_str(), 0711);
  const auto allowed = check_reachable(top / "disks" / "vm.qcow2", qemu, "the pet disk");
  std::filesystem::remove_all(top);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == ErrorKind::kInvalidInput);
  CHECK_THAT(refused.error().message,
             Catch::Contains("cannot reach the pet disk " + (top / "disks/vm.qcow2").string())
                 && Catch::Contains("the folder " + top.string() + " is 0700"));
  CHECK(allowed);
}
