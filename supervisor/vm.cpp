#include "supervisor/vm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <csignal>
#include <cstdio>
#include <functional>

#include "common/async.hpp"
#include "net/plumbing.hpp"
#include "qemu/shell_words.hpp"

namespace berth {
namespace asio = boost::asio;
using boost::system::error_code;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kStderrTail = 20;
constexpr std::size_t kMaxLine = 64 * 1024;  // a stderr line longer than this is cut

struct Pipe {
  int read = -1, write = -1;
  bool open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return false;
    read = fds[0];
    write = fds[1];
    return true;
  }
  void close_both() {
    if (read >= 0)
      ::close(read);
    if (write >= 0)
      ::close(write);
    read = write = -1;
  }
};

}  // namespace

std::string_view vm_end_name(VmEnd end) {
  switch (end) {
    case VmEnd::kPoweredOff:
      return "powered-off";
    case VmEnd::kGuestPanicked:
      return "guest-panicked";
    case VmEnd::kInternalError:
      return "internal-error";
    case VmEnd::kQemuExited:
      return "qemu-exited";
    case VmEnd::kQmpLost:
      return "qmp-lost";
    case VmEnd::kQuit:
      return "quit";
  }
  return "?";
}

Vm::Vm(asio::io_context& io, ChildReaper& children, SerialConsole& console,
       std::shared_ptr<spdlog::logger> log)
    : io_(io),
      children_(children),
      console_(console),
      log_(std::move(log)),
      qemu_log_(log_->clone("qemu")),
      exited_(io, asio::steady_timer::time_point::max()),
      qmp_grace_(io) {}

Vm::~Vm() {
  *alive_ = false;
  if (qmp_)
    qmp_->close();
  if (running())
    ::kill(pid_, SIGKILL);  // the reaper still reaps it
}

namespace {

// What QEMU inherits, owned by berth until QEMU has its copies.
struct HandOver {
  qemu::InheritedFds fds;
  HandOver() = default;
  HandOver(const HandOver&) = delete;
  HandOver& operator=(const HandOver&) = delete;
  ~HandOver() { close(); }
  std::vector<int> open_fds() const {
    std::vector<int> open;
    for (const int fd : {fds.qmp, fds.tap, fds.agent})
      if (fd >= 0)
        open.push_back(fd);
    return open;
  }
  void close() {
    for (int* fd : {&fds.qmp, &fds.tap, &fds.agent})
      if (*fd >= 0)
        ::close(std::exchange(*fd, -1));
  }
};

// The QMP listener at spec.qmp_socket, the guest agent's at spec.agent_socket (when set) and, when
// the machine has a NIC, a descriptor of its tap.
Result<void> open_hand_over(const qemu::MachineSpec& spec, HandOver& out) {
  auto qmp = qmp::listen_socket(spec.qmp_socket);
  if (!qmp)
    return qmp.error();
  out.fds.qmp = *qmp;
  if (!spec.agent_socket.empty()) {
    auto agent = qmp::listen_socket(spec.agent_socket);
    if (!agent)
      return agent.error();
    out.fds.agent = *agent;
  }
  if (spec.tap) {
    auto tap = net::open_tap(*spec.tap);
    if (!tap)
      return tap.error();
    out.fds.tap = *tap;
  }
  return {};
}

std::string describe_identity(const std::optional<Credentials>& who) {
  if (!who)
    return fmt::format("berth's own uid {}", ::geteuid());
  return fmt::format(
      "uid {} gid {}{}", who->uid, who->gid,
      who->groups.empty() ? "" : fmt::format(" groups {}", fmt::join(who->groups, ",")));
}

// Why QEMU could not be started as `who`.
Error spawn_error(const std::string& binary, const std::optional<Credentials>& who, error_code ec) {
  const bool denied = ec == boost::system::errc::operation_not_permitted;
  return Error{
      ErrorKind::kProgram,
      fmt::format("cannot run {} as {}: {}{}", binary, describe_identity(who), ec.message(),
                  denied ? " (berth needs CAP_SETUID, CAP_SETGID and CAP_SETPCAP)" : ""),
      ec};
}

}  // namespace

asio::awaitable<Result<void>> Vm::start(qemu::MachineSpec spec, std::optional<Credentials> run_as,
                                        std::optional<std::string> vnc_password,
                                        std::chrono::seconds connect_within) {
  HandOver hand_over;
  if (auto opened = open_hand_over(spec, hand_over); !opened)
    co_return opened.error();
  const auto argv = qemu::build_command_line(spec, hand_over.fds);
  log_->info("starting QEMU: {}", qemu::quote_command(argv));

  Pipe console, input, errors;
  if (!console.open() || !input.open() || !errors.open()) {
    console.close_both();
    input.close_both();
    co_return system_error("cannot create pipes for QEMU", errno);
  }
  error_code ec;
  std::weak_ptr<bool> alive = alive_;
  pid_ = children_.spawn(
      {.argv = argv,
       .stdin_fd = input.read,
       .stdout_fd = console.write,
       .stderr_fd = errors.write,
       .credentials = run_as,
       .privileges = Privileges::kDrop,
       .inherit_fds = hand_over.open_fds()},
      [this, alive](ExitStatus status) {
        if (alive.expired())
          return;
        exit_status_ = status;
        exited_.cancel();
      },
      ec);
  hand_over.close();  // QEMU holds its own copies now
  ::close(console.write);
  ::close(input.read);
  ::close(errors.write);
  if (ec) {
    ::close(console.read);
    ::close(input.write);
    ::close(errors.read);
    co_return spawn_error(spec.binary, run_as, ec);
  }
  console_guest_ = console_.attach_guest(input.write);
  auto console_in = std::make_shared<asio::posix::stream_descriptor>(io_, console.read);
  auto errors_in = std::make_shared<asio::posix::stream_descriptor>(io_, errors.read);
  asio::co_spawn(io_, pump_console(console_in), log_exceptions(log_, "QEMU console pump"));
  asio::co_spawn(io_, pump_stderr(errors_in), log_exceptions(log_, "QEMU stderr pump"));
  log_->info("QEMU running as pid {} ({}, no capabilities)", pid_, describe_identity(run_as));

  qmp_ = qmp::Client::create(io_.get_executor(), log_->clone("qmp"));
  const auto connected = co_await connect_qmp(spec.qmp_socket, connect_within);
  if (start_abandoned_ && !qmp_->connected()) {
    qmp_->close();
    co_return Error{ErrorKind::kProgram,
                    "stopped while QMP was connecting; QEMU still runs (end it with terminate)"};
  }
  if (connected && !exit_status_)
    co_await wait_exit(1s);  // a reset or refused connection: QEMU is most likely exiting
  if (exit_status_) {
    qmp_->close();
    // Let the stderr pump take QEMU's last words before they go into the message.
    asio::steady_timer drain(io_, 100ms);
    co_await drain.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return Error{ErrorKind::kProgram,
                    fmt::format("QEMU {} at start: {}", exit_status_->describe(), stderr_tail())};
  }
  if (connected) {
    kill();
    co_await wait_exit(5s);
    co_return Error{
        ErrorKind::kProgram,
        fmt::format("QMP socket {} did not answer within {}s: {}", spec.qmp_socket.string(),
                    connect_within.count(), connected.message()),
        connected};
  }
  log_->info("QMP connected (QEMU {})", qmp_->qemu_version());
  if (!spec.agent_socket.empty())
    agent_ = agent::Client::create(io_.get_executor(), spec.agent_socket, log_->clone("agent"));
  co_return co_await finish_start(std::move(vnc_password));
}

asio::awaitable<Result<void>> Vm::finish_start(std::optional<std::string> vnc_password) {
  if (vnc_password) {
    if (auto set = co_await set_vnc_password(std::move(*vnc_password)); !set) {
      kill();
      co_await wait_exit(5s);
      co_return set;
    }
  }
  std::weak_ptr<bool> alive = alive_;
  qmp_->subscribe([this](const qmp::Event& event) { on_event(event); });
  qmp_->on_close([this, alive](error_code closed_ec) {
    if (!alive.expired())
      on_qmp_closed(closed_ec);
  });
  co_return Result<void>{};
}

asio::awaitable<error_code> Vm::connect_qmp(std::filesystem::path socket,
                                            std::chrono::seconds within) {
  // Client::connect retries until `within` and reports the last error, so it keeps its own
  // deadline; it runs beside this waiter, which also wakes when QEMU dies (a bad option makes it
  // exit at once).
  struct Connecting {
    bool done = false;
    error_code ec;
  };
  auto connecting = std::make_shared<Connecting>();
  std::weak_ptr<bool> alive = alive_;
  asio::co_spawn(
      io_,
      [client = qmp_, within, socket, connecting, this, alive]() -> asio::awaitable<void> {
        auto result = co_await client->connect(socket, within);
        if (alive.expired())
          co_return;
        connecting->ec = result;
        connecting->done = true;
        exited_.cancel();  // wake the waiter below
      },
      log_exceptions(log_, "QMP connect"));
  while (!connecting->done && !exit_status_ && !start_abandoned_) {
    error_code wait_ec;
    co_await exited_.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
  }
  co_return connecting->ec;
}

asio::awaitable<Result<void>> Vm::set_vnc_password(std::string password) {
  boost::json::object arguments;
  arguments["password"] = std::move(password);
  auto client = qmp_;
  std::string command = "change-vnc-password";  // named: no temporary inside co_await (GCC 12)
  auto result = co_await client->execute(std::move(command), std::move(arguments), 5s);
  if (!result.ok())
    co_return Error{ErrorKind::kProgram,
                    "QMP change-vnc-password (BERTH_VNC_PASSWORD_FILE): " + result.describe()};
  log_->info("VNC: password set over QMP");
  co_return Result<void>{};
}

void Vm::on_event(const qmp::Event& event) {
  if (event.name == "SHUTDOWN") {
    const auto* guest = event.data.if_contains("guest");
    const auto* reason = event.data.if_contains("reason");
    const std::string why = reason && reason->is_string() ? std::string(reason->get_string()) : "";
    if (why == "guest-panic")
      panicked_ = true;
    if (guest && guest->is_bool() && guest->get_bool())
      shutdown_by_guest_ = true;
    log_->info("QMP event SHUTDOWN (reason {})", why.empty() ? "unknown" : why);
  } else if (event.name == "GUEST_PANICKED") {
    panicked_ = true;
    log_->error("the guest panicked");
  } else if (event.name == "RESET") {
    log_->info("the guest rebooted");
  } else if (event.name == "STOP") {
    asio::co_spawn(io_, check_status_after_stop(), log_exceptions(log_, "QMP status check"));
  } else if (event.name == "BLOCK_IO_ERROR") {
    log_->error("block I/O error: {}", boost::json::serialize(event.data));
  } else {
    log_->debug("QMP event {} {}", event.name, boost::json::serialize(event.data));
  }
}

// Spawned detached, so it may outlive this Vm: once QEMU exits, the supervisor can destroy the Vm
// (VM_ACCEL=auto starts a new one under TCG) while this still waits. After every suspension it
// checks `alive` before touching a member, and it never awaits a member coroutine such as quit(),
// whose frame would resume inside a destroyed Vm (ASan: heap-use-after-free in wait_exit).
asio::awaitable<void> Vm::check_status_after_stop() {
  const std::weak_ptr<bool> alive = alive_;
  auto client = qmp_;
  auto result = co_await client->execute("query-status", {}, 5s);
  if (alive.expired() || !result.ok() || !result.value.is_object())
    co_return;
  const auto* status = result.value.get_object().if_contains("status");
  if (!status || !status->is_string() || status->get_string() != "internal-error")
    co_return;
  internal_error_ = true;
  log_->error("the VM stopped with an internal error (see QEMU's messages above); quitting QEMU");
  if (!running())
    co_return;
  we_quit_ = true;
  if (auto quit = co_await client->execute("quit", {}, 2s); !quit.ok() && !alive.expired())
    log_->warn("QMP quit: {}", quit.describe());
  if (alive.expired() || !running())
    co_return;
  asio::steady_timer grace(co_await asio::this_coro::executor, 5s);
  error_code ec;
  co_await grace.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!alive.expired() && running()) {
    log_->warn("QEMU did not quit; killing it");
    kill();
  }
}

void Vm::on_qmp_closed(error_code ec) {
  if (exit_status_)
    return;
  // QEMU closes QMP as it exits: give the reaper a moment before calling it a lost socket.
  qmp_grace_.expires_after(2s);
  std::weak_ptr<bool> alive = alive_;
  qmp_grace_.async_wait([this, alive, ec](error_code timer_ec) {
    if (timer_ec || alive.expired() || exit_status_)
      return;
    qmp_lost_ = true;
    log_->error("the QMP socket closed ({}) while QEMU still runs; killing QEMU", ec.message());
    kill();
  });
}

asio::awaitable<void> Vm::until_exit() {
  // exited_ never expires: it is a condition that the reaper signals by cancel().
  while (!exit_status_) {
    error_code ec;
    co_await exited_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<bool> Vm::wait_exit(std::chrono::steady_clock::duration limit) {
  if (limit == std::chrono::steady_clock::duration::max())
    co_await until_exit();
  else if (!exit_status_)
    co_await with_deadline(until_exit(), limit);
  co_return exit_status_.has_value();
}

asio::awaitable<bool> Vm::power_down(std::chrono::seconds timeout, std::chrono::seconds repeat) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // With an agent that answers (the guest agent's poll keeps this fresh), the last third of the
  // time is the agent's (guest-shutdown); without one, nothing changes.
  const bool agent_answers = agent_ && agent_->answering();
  const auto acpi_deadline = agent_answers ? deadline - timeout / 3 : deadline;
  log_->info("asking the guest to power off (ACPI power button), up to {}s", timeout.count());
  while (running()) {
    const auto left = acpi_deadline - std::chrono::steady_clock::now();
    if (left <= 0s)
      break;
    auto result = co_await qmp_->execute("system_powerdown", {}, 2s);
    if (!result.ok())
      log_->warn("system_powerdown: {}", result.describe());
    co_await wait_exit(std::min<std::chrono::steady_clock::duration>(repeat, left));
  }
  if (running() && agent_answers)
    co_await agent_shutdown(deadline);
  if (!running())
    co_return shutdown_by_guest_;
  log_->warn("the guest did not power off within {}s; quitting QEMU", timeout.count());
  co_await quit();
  co_return false;
}

asio::awaitable<void> Vm::agent_shutdown(std::chrono::steady_clock::time_point deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= 0s)
    co_return;
  log_->warn("the guest ignored the ACPI power button; asking its agent (guest-shutdown)");
  boost::json::object mode;
  mode["mode"] = "powerdown";
  auto client = agent_;
  const auto send_within = std::min<std::chrono::steady_clock::duration>(left, 5s);
  auto result = co_await client->send("guest-shutdown", mode, send_within, 1s);
  if (result.error) {
    log_->warn("guest-shutdown: {}", result.describe());
    co_return;
  }
  // Sent (no answer), or the socket closed under it: QEMU is most likely exiting.
  if (result.transport)
    log_->info("guest-shutdown: {}", result.describe());
  co_await wait_exit(deadline - std::chrono::steady_clock::now());
}

asio::awaitable<void> Vm::quit() {
  if (!running())
    co_return;
  we_quit_ = true;
  if (qmp_ && qmp_->connected()) {
    auto result = co_await qmp_->execute("quit", {}, 2s);
    if (!result.ok())
      log_->warn("QMP quit: {}", result.describe());
  }
  if (!co_await wait_exit(5s)) {
    log_->warn("QEMU did not quit; killing it");
    kill();
    co_await wait_exit(5s);
  }
}

void Vm::abandon_start() {
  start_abandoned_ = true;
  exited_.cancel();  // wakes connect_qmp's waiter
}

void Vm::terminate() {
  if (!running())
    return;
  we_quit_ = true;
  log_->info("QMP is not connected: asking QEMU to quit with SIGTERM");
  ::kill(pid_, SIGTERM);
}

void Vm::kill() {
  if (!running())
    return;
  we_quit_ = true;
  ::kill(pid_, SIGKILL);
}

VmEnd Vm::end() const {
  if (panicked_)
    return VmEnd::kGuestPanicked;
  if (internal_error_)
    return VmEnd::kInternalError;
  if (shutdown_by_guest_ && exit_status_ && !exit_status_->signaled())
    return VmEnd::kPoweredOff;
  if (qmp_lost_)
    return VmEnd::kQmpLost;
  if (we_quit_)
    return VmEnd::kQuit;
  return VmEnd::kQemuExited;
}

std::string Vm::describe_end() const {
  const std::string status = exit_status_ ? exit_status_->describe() : "still running";
  switch (end()) {
    case VmEnd::kPoweredOff:
      return "the guest powered off";
    case VmEnd::kGuestPanicked:
      return "the guest panicked; QEMU " + status;
    case VmEnd::kInternalError:
      return "the VM stopped with an internal error; QEMU " + status;
    case VmEnd::kQmpLost:
      return "the QMP socket died; QEMU " + status;
    case VmEnd::kQuit:
      return "QEMU was stopped by berth; it " + status;
    case VmEnd::kQemuExited:
      return fmt::format("QEMU {} without the guest powering off{}", status,
                         stderr_lines_.empty() ? "" : ": " + stderr_tail());
  }
  return status;
}

std::string Vm::stderr_tail() const {
  std::string out;
  for (const auto& line : stderr_lines_)
    out += (out.empty() ? "" : " | ") + line;
  return out.empty() ? "(no message)" : out;
}

// Reads `in` to its end and calls `emit` with each line (without its newline; a line longer than
// kMaxLine is cut there).
asio::awaitable<void> pump_lines(std::shared_ptr<asio::posix::stream_descriptor> in,
                                 std::function<void(std::string_view)> emit) {
  std::string pending;
  std::array<char, 4096> chunk;
  for (;;) {
    error_code ec;
    const std::size_t n = co_await in->async_read_some(
        asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    pending.append(chunk.data(), n);
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
      emit(std::string_view(pending).substr(start, nl - start));
    pending.erase(0, start);
    if (pending.size() > kMaxLine)
      emit(std::exchange(pending, {}));
  }
  if (!pending.empty())
    emit(pending);
}

// The guest's serial output, as it comes, to the hub; at its end (QEMU exits) the hub stops
// writing to this QEMU's stdin.
asio::awaitable<void> Vm::pump_console(std::shared_ptr<asio::posix::stream_descriptor> in) {
  std::weak_ptr<bool> alive = alive_;
  std::array<char, 4096> chunk;
  for (;;) {
    error_code ec;
    const std::size_t n = co_await in->async_read_some(
        asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (alive.expired())
      co_return;
    if (ec)
      break;
    console_.output(std::string_view(chunk.data(), n));
  }
  console_.output_ended();
  console_.guest_gone(console_guest_);
}

asio::awaitable<void> Vm::pump_stderr(std::shared_ptr<asio::posix::stream_descriptor> in) {
  co_await pump_lines(std::move(in), [this](std::string_view text) {
    log_and_keep(text, *qemu_log_, stderr_lines_, kStderrTail);
  });
}

void log_and_keep(std::string_view text, spdlog::logger& log, std::deque<std::string>& tail,
                  std::size_t keep) {
  std::string line(text);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  if (line.empty())
    return;
  log.warn("{}", line);
  tail.push_back(std::move(line));
  if (tail.size() > keep)
    tail.pop_front();
}

}  // namespace berth
