#include "supervisor/tpm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

#include "common/async.hpp"
#include "supervisor/qemu_user.hpp"
#include "supervisor/vm.hpp"

namespace berth {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kStderrTail = 10;

}  // namespace

std::vector<std::string> swtpm_argv(const std::filesystem::path& state_dir,
                                    const std::filesystem::path& socket) {
  return {"swtpm",
          "socket",
          "--tpm2",
          "--tpmstate",
          "dir=" + state_dir.string(),
          "--ctrl",
          "type=unixio,path=" + socket.string(),
          "--terminate"};
}

Result<void> prepare_tpm_folders(const std::filesystem::path& state_dir,
                                 const std::filesystem::path& socket,
                                 const std::optional<Credentials>& who) {
  if (auto made = make_folder_for_qemu(state_dir, {}, who); !made)
    return made;
  if (auto made = make_folder_for_qemu(socket.parent_path(), socket, who); !made)
    return made;
  return {};
}

Swtpm::Swtpm(asio::io_context& io, ChildReaper& children, std::shared_ptr<spdlog::logger> log)
    : io_(io),
      children_(children),
      log_(std::move(log)),
      swtpm_log_(log_->clone("swtpm")),
      exited_(io, asio::steady_timer::time_point::max()) {}

Swtpm::~Swtpm() {
  *alive_ = false;
  if (running())
    ::kill(pid_, SIGKILL);
}

asio::awaitable<Result<void>> Swtpm::start(std::filesystem::path state_dir,
                                           std::filesystem::path socket,
                                           std::optional<Credentials> run_as,
                                           std::chrono::steady_clock::duration within) {
  if (auto prepared = prepare_tpm_folders(state_dir, socket, run_as); !prepared)
    co_return prepared.error();
  const auto argv = swtpm_argv(state_dir, socket);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    co_return system_error("cannot create a pipe for swtpm", errno);
  boost::system::error_code ec;
  std::weak_ptr<bool> alive = alive_;
  auto reaped = [this, alive](ExitStatus status) {
    if (alive.expired())
      return;  // this Swtpm is gone; the reaper still reaped the process
    exit_status_ = status;
    exited_.cancel();
  };
  const SpawnOptions options{.argv = argv,
                             .stdout_fd = fds[1],
                             .stderr_fd = fds[1],
                             .credentials = run_as,
                             .privileges = Privileges::kDrop};
  pid_ = children_.spawn(options, std::move(reaped), ec);
  ::close(fds[1]);
  if (ec) {
    ::close(fds[0]);
    co_return Error{ErrorKind::kProgram, fmt::format("cannot run swtpm (VM_TPM): {}", ec.message()),
                    ec};
  }
  auto output = std::make_shared<asio::posix::stream_descriptor>(io_, fds[0]);
  auto emit = [this, alive](std::string_view text) {
    if (!alive.expired())
      log_and_keep(text, *swtpm_log_, stderr_lines_, kStderrTail);
  };
  asio::co_spawn(io_, pump_lines(output, emit), log_exceptions(log_, "swtpm output pump"));
  log_->info("swtpm running as pid {}: {} (state {})", pid_, fmt::join(argv, " "),
             state_dir.string());

  const auto deadline = std::chrono::steady_clock::now() + within;
  asio::steady_timer poll(io_);
  while (!exit_status_ && !std::filesystem::exists(socket)
         && std::chrono::steady_clock::now() < deadline) {
    poll.expires_after(20ms);
    co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (running() && std::filesystem::exists(socket))
    co_return Result<void>{};
  if (running()) {
    ::kill(pid_, SIGKILL);
    co_await wait_exit(5s);
    co_return Error{ErrorKind::kProgram,
                    fmt::format("swtpm made no socket {} within {:.0f}s{}", socket.string(),
                                std::chrono::duration<double>(within).count(),
                                stderr_lines_.empty()
                                    ? ""
                                    : ": " + fmt::format("{}", fmt::join(stderr_lines_, " | ")))};
  }
  // Let the pump take its last words.
  poll.expires_after(100ms);
  co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return Error{ErrorKind::kProgram, "swtpm " + describe_end() + " at start"};
}

asio::awaitable<void> Swtpm::until_exit() {
  while (!exit_status_) {
    boost::system::error_code ec;
    co_await exited_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<bool> Swtpm::wait_exit(std::chrono::steady_clock::duration limit) {
  if (pid_ <= 0)
    co_return true;
  if (limit == std::chrono::steady_clock::duration::max())
    co_await until_exit();
  else if (!exit_status_)
    co_await with_deadline(until_exit(), limit);
  co_return exit_status_.has_value();
}

asio::awaitable<void> Swtpm::stop(std::chrono::seconds grace) {
  if (!running())
    co_return;
  ::kill(pid_, SIGTERM);
  if (co_await wait_exit(grace))
    co_return;
  log_->warn("swtpm did not exit within {}s of SIGTERM; killing it", grace.count());
  ::kill(pid_, SIGKILL);
  co_await wait_exit(5s);
}

std::string Swtpm::describe_end() const {
  const std::string how = exit_status_ ? exit_status_->describe() : "still runs";
  return fmt::format(
      "(pid {}) {}{}", pid_, how,
      stderr_lines_.empty() ? "" : fmt::format(": {}", fmt::join(stderr_lines_, " | ")));
}

}  // namespace berth
