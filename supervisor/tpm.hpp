#pragma once
// VM_TPM: a TPM 2.0 emulated by swtpm, one child process beside QEMU. berth starts it before QEMU
// (QEMU connects to its control socket), never restarts it behind the VM's back (a swtpm that dies
// while the VM runs ends berth with ExitCode::kTpm), and ends it after QEMU. Its state (the TPM's
// seeds, NV indices, sealed keys) lives in a folder beside the pet disk, so it survives restarts.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "supervisor/children.hpp"

namespace berth {

// swtpm's argv (no shell): TPM 2.0, state in `state_dir`, the control channel a unix socket at
// `socket` (QEMU's tpm emulator backend passes the data channel over it), and --terminate: swtpm
// exits when QEMU closes the connection.
std::vector<std::string> swtpm_argv(const std::filesystem::path& state_dir,
                                    const std::filesystem::path& socket);

// Makes `state_dir` (kept when it exists: never wiped) and the socket's folder (emptied of a stale
// socket), both mode 0700 and owned by `who` when given (QEMU's user, which swtpm runs as; berth
// must be root for that). The socket's folder is below BERTH_RUNTIME_DIR, which QEMU's group may
// traverse (qemu_user.hpp). Errors: kSystem naming the path.
Result<void> prepare_tpm_folders(const std::filesystem::path& state_dir,
                                 const std::filesystem::path& socket,
                                 const std::optional<Credentials>& who);

class Swtpm {
 public:
  Swtpm(boost::asio::io_context& io, ChildReaper& children, std::shared_ptr<spdlog::logger> log);
  ~Swtpm();  // a running swtpm is killed (the reaper still reaps it)
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  // Prepares the folders, spawns swtpm as `run_as` (nullopt: berth's own user) without
  // capabilities, its stdout and stderr into berth's log (component "swtpm"), and returns once
  // its control socket exists. Errors (kProgram): it could not be spawned, exited, or made no
  // socket within `within` (then it is killed); the message carries its last stderr lines.
  boost::asio::awaitable<Result<void>> start(
      std::filesystem::path state_dir, std::filesystem::path socket,
      std::optional<Credentials> run_as,
      std::chrono::steady_clock::duration within = std::chrono::seconds(10));

  // Waits until swtpm has exited (or `limit` passed); true when it has.
  boost::asio::awaitable<bool> wait_exit(
      std::chrono::steady_clock::duration limit = std::chrono::steady_clock::duration::max());
  // Ends it: SIGTERM, SIGKILL after `grace`; returns once it has been reaped.
  boost::asio::awaitable<void> stop(std::chrono::seconds grace = std::chrono::seconds(2));

  bool running() const { return pid_ > 0 && !exit_status_; }
  pid_t pid() const { return pid_; }
  // "swtpm (pid N) killed by signal 9 (SIGKILL): <its last stderr lines>".
  std::string describe_end() const;

 private:
  boost::asio::awaitable<void> until_exit();

  boost::asio::io_context& io_;
  ChildReaper& children_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<spdlog::logger> swtpm_log_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_status_;
  boost::asio::steady_timer exited_;  // cancelled when swtpm has been reaped
  std::deque<std::string> stderr_lines_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace berth
