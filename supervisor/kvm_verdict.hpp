#pragma once
// A failed KVM try remembered per node: when a guest does not run under KVM with VM_ACCEL=auto
// (nested KVM that dies seconds into the guest), berth writes a verdict file into the node's shared
// image cache, keyed by what decides whether KVM works (kernel release, CPU model and flags, QEMU
// binary). The next start on the same node goes straight to TCG instead of paying the failed try
// again; deleting the file (or any change of kernel, CPU or QEMU) makes berth try KVM again.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth {

// What a KVM verdict holds for: equal hosts give equal verdicts.
struct KvmHost {
  std::string kernel;     // uname -r
  std::string cpu;        // /proc/cpuinfo's first "model name"
  std::string cpu_flags;  // and its "flags"
  std::string qemu;       // the QEMU binary: its path, size and modification time
  bool operator==(const KvmHost&) const = default;
};

// The host berth runs on, with `qemu_binary` looked up in PATH when it has no slash. Fields that
// cannot be read are left empty (the key still differs from a host where they can).
KvmHost describe_kvm_host(const std::string& qemu_binary);

// "kvm-failed-<16 hex digits>": a stable hash (FNV-1a, 64 bits) of every field of `host`.
std::string kvm_verdict_name(const KvmHost& host);

// The file's text: one "field: value" line per KvmHost field, then "reason:" and "when:".
std::string format_kvm_verdict(const KvmHost& host, std::string_view reason, std::string_view when);

// The reason recorded in `text` when it is a verdict for exactly `host` (a hash collision or a
// hand-edited file naming another host gives nullopt).
std::optional<std::string> parse_kvm_verdict(std::string_view text, const KvmHost& host);

// A failure recorded in `cache_dir` for `host`: "<reason> (recorded <when>)", else nullopt.
std::optional<std::string> read_kvm_failure(const std::filesystem::path& cache_dir,
                                            const KvmHost& host);

// Records that the guest did not run under KVM on `host`, atomically (a temporary file renamed
// into place: concurrent starts on the node see the old file or the new one).
Result<void> record_kvm_failure(const std::filesystem::path& cache_dir, const KvmHost& host,
                                std::string_view reason);

}  // namespace berth
