#include "supervisor/children.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/async.hpp"

namespace berth {

bool ExitStatus::signaled() const {
  return WIFSIGNALED(wait_status);
}
int ExitStatus::signal() const {
  return signaled() ? WTERMSIG(wait_status) : 0;
}
int ExitStatus::exit_code() const {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 0;
}
int ExitStatus::as_shell_code() const {
  return signaled() ? 128 + signal() : exit_code();
}

std::string ExitStatus::describe() const {
  if (signaled()) {
    const char* abbrev = sigabbrev_np(signal());
    return fmt::format("killed by signal {} (SIG{}){}", signal(), abbrev ? abbrev : "?",
                       WCOREDUMP(wait_status) ? ", core dumped" : "");
  }
  return fmt::format("exited with code {}", exit_code());
}

std::optional<std::string> find_program(const std::string& name) {
  if (name.empty())
    return std::nullopt;
  if (name.find('/') != std::string::npos)
    return name;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path
                               : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

ChildReaper::ChildReaper(boost::asio::io_context& io) : sigchld_(io, SIGCHLD) {
  if (::getpid() != 1)
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  wait_for_signal();
  // Children that ended before the signal_set existed would otherwise wait for the next SIGCHLD.
  boost::asio::post(io, [this] { reap(); });
}

void ChildReaper::wait_for_signal() {
  sigchld_.async_wait([this](boost::system::error_code ec, int) {
    if (ec)
      return;  // cancelled: the reaper is going away
    reap();
    wait_for_signal();
  });
}

void ChildReaper::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;  // 0: children left but none exited; -1/ECHILD: none at all
    auto it = handlers_.find(pid);
    if (it == handlers_.end()) {
      ++orphans_reaped_;
      continue;
    }
    ExitHandler handler = std::move(it->second);
    handlers_.erase(it);
    if (handler)
      handler(ExitStatus{status});
  }
}

namespace {

// The capabilities this kernel knows, all of them in each set: what kDrop empties.
constexpr int kMaxCapability = 63;

// Empties the bounding set; needs CAP_SETPCAP, and without it (berth not root) the set stays as
// it is: no_new_privs already keeps the child from gaining anything the set would cap.
void drop_bounding_set() {
  for (int cap = 0; cap <= kMaxCapability; ++cap)
    if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0)
      ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

// setgroups, setresgid, setresuid as raw system calls: the child of a fork has one thread, and
// glibc's wrappers would signal every thread of the parent's list. 0, or the errno.
int switch_credentials(const Credentials& who) {
  if (::syscall(SYS_setgroups, who.groups.size(), who.groups.data()) != 0
      || ::syscall(SYS_setresgid, who.gid, who.gid, who.gid) != 0
      || ::syscall(SYS_setresuid, who.uid, who.uid, who.uid) != 0)
    return errno;
  return 0;
}

// Empties the ambient, inheritable, permitted and effective sets and sets no_new_privs. 0, or the
// errno.
int drop_capabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0
      || ::syscall(SYS_capset, &header, none) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return errno;
  return 0;
}

// The forked child up to exec; only async-signal-safe calls. On failure the errno goes to
// `report` and the child exits 127.
[[noreturn]] void run_child(const SpawnOptions& options, const char* program, char* const* argv,
                            pid_t parent, int report) {
  auto fail = [report](int error) {
    [[maybe_unused]] auto written = ::write(report, &error, sizeof error);
    ::_exit(127);
  };
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig)
    ::signal(sig, SIG_DFL);  // fails harmlessly for KILL/STOP
  if (options.group == ProcessGroup::kOwn)
    ::setpgid(0, 0);
  const int null_fd = ::open("/dev/null", O_RDWR);
  auto redirect = [&](int from, int to) {
    if (from >= 0 && from != to)
      ::dup2(from, to);
  };
  redirect(options.stdin_fd >= 0 ? options.stdin_fd : null_fd, STDIN_FILENO);
  redirect(options.stdout_fd, STDOUT_FILENO);
  redirect(options.stderr_fd, STDERR_FILENO);
  for (const int fd : options.inherit_fds)
    if (::fcntl(fd, F_SETFD, 0) != 0)
      fail(errno);
  if (options.privileges == Privileges::kDrop)
    drop_bounding_set();
  if (options.credentials)
    if (const int error = switch_credentials(*options.credentials))
      fail(error);
  if (options.privileges == Privileges::kDrop)
    if (const int error = drop_capabilities())
      fail(error);
  // After the credentials: changing them clears the parent-death signal.
  if (options.parent_death == ParentDeath::kKillChild) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);  // the parent already died
  }
  ::execv(program, argv);
  fail(errno);
  ::_exit(127);  // not reached: fail does not return
}

}  // namespace

pid_t ChildReaper::spawn(const SpawnOptions& options, ExitHandler on_exit,
                         boost::system::error_code& ec) {
  ec.clear();
  if (options.argv.empty()) {
    ec = make_error_code(boost::system::errc::invalid_argument);
    return -1;
  }
  const auto program = find_program(options.argv[0]);
  if (!program) {
    ec = make_error_code(boost::system::errc::no_such_file_or_directory);
    return -1;
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<char*> argv;
  for (const auto& arg : options.argv)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  int report[2];  // the child writes errno here if exec fails; CLOEXEC closes it on success
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ec.assign(errno, boost::system::system_category());
    return -1;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ec.assign(errno, boost::system::system_category());
    ::close(report[0]);
    ::close(report[1]);
    return -1;
  }
  if (pid == 0) {
    ::close(report[0]);
    run_child(options, program->c_str(), argv.data(), parent, report[1]);
  }
  ::close(report[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == sizeof child_errno) {
    ::waitpid(pid, nullptr, 0);  // it exits at once with 127
    ec.assign(child_errno, boost::system::system_category());
    return -1;
  }
  handlers_.emplace(pid, std::move(on_exit));
  return pid;
}

}  // namespace berth

namespace berth {

namespace {

namespace asio = boost::asio;

// A program run_program started: its exit status once reaped, and the timer that wakes waiters.
struct Running {
  pid_t pid = -1;
  std::shared_ptr<std::optional<ExitStatus>> status = std::make_shared<std::optional<ExitStatus>>();
  std::shared_ptr<asio::steady_timer> reaped;
};

asio::awaitable<void> until_reaped(const Running& r) {
  while (!*r.status) {
    boost::system::error_code ec;
    co_await r.reaped->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// Reads the program's output (at most 64 KiB kept) until it closes, then waits for its exit.
asio::awaitable<void> read_and_reap(asio::posix::stream_descriptor& out, std::string& output,
                                    const Running& r) {
  std::array<char, 4096> chunk;
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = co_await out.async_read_some(
        asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    if (output.size() < 64 * 1024)
      output.append(chunk.data(), n);
  }
  co_await until_reaped(r);
}

// SIGTERM to the program's process group, SIGKILL after `grace`; returns once it is reaped.
asio::awaitable<void> end_program(const Running& r, std::chrono::seconds grace) {
  ::kill(-r.pid, SIGTERM);
  auto reaped = until_reaped(r);  // named: see ARCHITECTURE.md, GCC 12 and coroutines
  if (!co_await with_deadline(std::move(reaped), grace)) {
    ::kill(-r.pid, SIGKILL);
    co_await until_reaped(r);
  }
}

}  // namespace

boost::asio::awaitable<ProgramResult> run_program(boost::asio::io_context& io,
                                                  ChildReaper& children,
                                                  std::vector<std::string> argv,
                                                  std::chrono::steady_clock::duration deadline) {
  ProgramResult result;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    result.spawn_error.assign(errno, boost::system::system_category());
    co_return result;
  }
  Running running;
  running.reaped = std::make_shared<asio::steady_timer>(io, asio::steady_timer::time_point::max());
  running.pid = children.spawn(
      {.argv = std::move(argv), .stdout_fd = fds[1], .stderr_fd = fds[1]},
      [status = running.status, reaped = running.reaped](ExitStatus s) {
        *status = s;
        reaped->cancel();
      },
      result.spawn_error);
  ::close(fds[1]);
  asio::posix::stream_descriptor out(io, fds[0]);
  if (result.spawn_error)
    co_return result;
  std::exception_ptr cancelled;  // operation_aborted (or Asio's multiple_exceptions of `||`)
  try {
    auto work = read_and_reap(out, result.output, running);
    result.timed_out = !co_await with_deadline(std::move(work), deadline);
  } catch (...) {
    cancelled = std::current_exception();  // a stop: the program must not outlive its step
  }
  if (cancelled || result.timed_out) {
    co_await asio::this_coro::reset_cancellation_state();
    co_await end_program(running, kProgramGrace);
    if (cancelled)
      std::rethrow_exception(cancelled);
  }
  result.status = **running.status;
  while (!result.output.empty() && result.output.back() == '\n')
    result.output.pop_back();
  co_return result;
}

}  // namespace berth
