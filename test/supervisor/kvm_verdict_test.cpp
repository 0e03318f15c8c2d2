// The KVM verdict remembered per node: its key, its file, and that it holds for one host only.

#include "supervisor/kvm_verdict.hpp"

#include <catch2/catch.hpp>
#include <fstream>

#include "drive/files.hpp"
#include "test/support/berth_process.hpp"

using namespace berth;
using berth::test::TempDir;

namespace {

KvmHost host() {
  return {"6.1.0-28-amd64", "AMD EPYC 7B13", "fpu vme de pse svm",
          "/usr/bin/qemu-system-x86_64 size 19218432 mtime 1700000000"};
}

}  // namespace

TEST_CASE("KVM verdict: the file name changes with kernel, CPU, flags and QEMU", "[kvm-verdict]") {
  const KvmHost base = host();
  const std::string name = kvm_verdict_name(base);
  CHECK(name.starts_with("kvm-failed-"));
  CHECK(name.size() == std::string("kvm-failed-").size() + 16);
  CHECK(kvm_verdict_name(host()) == name);  // stable
  for (std::string KvmHost::*field :
       {&KvmHost::kernel, &KvmHost::cpu, &KvmHost::cpu_flags, &KvmHost::qemu}) {
    KvmHost other = base;
    other.*field += "x";
    CHECK(kvm_verdict_name(other) != name);
  }
}

TEST_CASE("KVM verdict: recorded, read back, only for the same host", "[kvm-verdict]") {
  TempDir dir;
  CHECK_FALSE(read_kvm_failure(dir.path, host()));
  REQUIRE(record_kvm_failure(dir.path, host(), "KVM internal error\ncode 1"));
  const auto failed = read_kvm_failure(dir.path, host());
  REQUIRE(failed);
  CHECK_THAT(*failed, Catch::StartsWith("KVM internal error code 1 (recorded 20"));
  KvmHost upgraded = host();
  upgraded.kernel = "6.1.0-29-amd64";
  CHECK_FALSE(read_kvm_failure(dir.path, upgraded));
  // One file, readable by a person, nothing left behind by the atomic write.
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    ++files;
    CHECK(entry.path().filename() == kvm_verdict_name(host()));
  }
  CHECK(files == 1);
  const auto text = drive::read_file(dir.path / kvm_verdict_name(host()), 4096);
  REQUIRE(text);
  CHECK_THAT(*text,
             Catch::Contains("kernel: 6.1.0-28-amd64\n") && Catch::Contains("cpu: AMD EPYC"));
}

TEST_CASE("KVM verdict: a file naming another host is not taken", "[kvm-verdict]") {
  KvmHost other = host();
  other.cpu = "Intel Xeon";
  const std::string text = format_kvm_verdict(other, "failed", "2026-12-03T10:00:00Z");
  CHECK_FALSE(parse_kvm_verdict(text, host()));
  CHECK(parse_kvm_verdict(text, other) == "failed (recorded 2026-12-03T10:00:00Z)");
  CHECK_FALSE(parse_kvm_verdict("", host()));
  CHECK_FALSE(parse_kvm_verdict(format_kvm_verdict(host(), "", "now"), host()));
}

TEST_CASE("KVM verdict: this machine is described", "[kvm-verdict]") {
  const KvmHost here = describe_kvm_host("sh");
  CHECK_FALSE(here.kernel.empty());
  CHECK_FALSE(here.cpu_flags.empty());
  CHECK_THAT(here.qemu, Catch::Contains("/sh size "));
}
