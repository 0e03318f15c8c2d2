#pragma once
// Child processes: spawning with a clean signal state, and reaping every child (PID-1 duty),
// including orphans that the kernel re-parents to us. Exit statuses arrive on the io_context.

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth {

// How a child ended, as waitpid reported it.
struct ExitStatus {
  int wait_status = 0;

  bool signaled() const;
  int signal() const;     // the terminating signal; 0 when it exited
  int exit_code() const;  // its exit code; 0 when killed
  // The shell convention: the exit code, or 128+n when killed by signal n.
  int as_shell_code() const;
  // "exited with code 3" / "killed by signal 9 (SIGKILL)".
  std::string describe() const;
};

enum class ProcessGroup { kInherit, kOwn };      // kOwn: Ctrl-C in a terminal does not reach it
enum class ParentDeath { kIgnore, kKillChild };  // kKillChild: PR_SET_PDEATHSIG SIGKILL
// kDrop: before exec the child empties every capability set (bounding and ambient included, the
// bounding set only when it holds CAP_SETPCAP) and sets no_new_privs, so neither setuid programs
// nor file capabilities give it anything back.
enum class Privileges { kKeep, kDrop };

// Who a child runs as: set with setgroups, setresgid and setresuid before exec (berth needs
// CAP_SETUID and CAP_SETGID for it; without them the spawn fails with EPERM).
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // the supplementary groups; empty: none
};

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  int stdin_fd = -1;              // -1: /dev/null
  int stdout_fd = -1;             // -1: inherit ours
  int stderr_fd = -1;             // -1: inherit ours
  ProcessGroup group = ProcessGroup::kOwn;
  ParentDeath parent_death = ParentDeath::kKillChild;
  std::optional<Credentials> credentials =
      std::nullopt;  // nullopt: berth's own uid, gid and groups
  Privileges privileges = Privileges::kKeep;
  std::vector<int> inherit_fds = {};  // stay open across exec at the same numbers (above 2)
};

class ChildReaper {
 public:
  using ExitHandler = std::function<void(ExitStatus)>;

  // Starts watching SIGCHLD on `io`. When berth is not PID 1 it also becomes a child subreaper,
  // so grandchildren orphaned under it are reaped here too.
  explicit ChildReaper(boost::asio::io_context& io);
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;

  // Forks and execs; in the child the signal mask is emptied and every disposition reset before
  // exec, then the credentials and privileges of `options` are applied. Returns the pid, or the
  // error that stopped the exec (e.g. no such file, or EPERM from setresuid), in which case
  // `on_exit` is never called. `on_exit` runs on the io_context once the child has been reaped.
  pid_t spawn(const SpawnOptions& options, ExitHandler on_exit, boost::system::error_code& ec);

  // Children spawned here that have not been reaped yet.
  std::size_t running() const { return handlers_.size(); }
  // Processes reaped that were not spawned here (orphans re-parented to us).
  std::uint64_t orphans_reaped() const { return orphans_reaped_; }

  // Reaps whatever has exited now (also called on every SIGCHLD).
  void reap();

 private:
  void wait_for_signal();

  boost::asio::signal_set sigchld_;
  std::map<pid_t, ExitHandler> handlers_;
  std::uint64_t orphans_reaped_ = 0;
};

// Resolves a program name against PATH the way execvp would; nullopt when not found.
std::optional<std::string> find_program(const std::string& name);

}  // namespace berth

namespace berth {

// What a short-lived program (qemu-img) did.
struct ProgramResult {
  boost::system::error_code spawn_error;  // set when it could not be started at all
  ExitStatus status;
  std::string output;      // stdout and stderr together, at most 64 KiB
  bool timed_out = false;  // it outran its deadline and was ended (status says how)

  bool ok() const { return !spawn_error && !timed_out && status.as_shell_code() == 0; }
};

// How long a program that is ended (deadline, or a stop) gets between SIGTERM and SIGKILL.
inline constexpr std::chrono::seconds kProgramGrace{2};

// Runs `argv` as a child (no shell) and waits for it without blocking the io_context. Past
// `deadline` the program gets SIGTERM, SIGKILL kProgramGrace later, and the result says
// timed_out. Cancelled (a stop), it ends the program the same way, waits until it is reaped,
// and throws operation_aborted.
boost::asio::awaitable<ProgramResult> run_program(boost::asio::io_context& io,
                                                  ChildReaper& children,
                                                  std::vector<std::string> argv,
                                                  std::chrono::steady_clock::duration deadline);

}  // namespace berth
