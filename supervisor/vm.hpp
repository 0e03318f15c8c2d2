#pragma once
// One QEMU process as the supervisor sees it: spawned as our child with its serial console (QEMU's
// stdin and stdout, both pipes) connected to the SerialConsole hub and its stderr into our log,
// QMP connected, and how it ended.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "qemu/agent/agent_client.hpp"
#include "qemu/command_line.hpp"
#include "qemu/qmp/qmp_client.hpp"
#include "supervisor/children.hpp"
#include "supervisor/console/serial_console.hpp"

namespace berth {

// Why the VM is over.
enum class VmEnd {
  kPoweredOff,     // the guest powered itself off (SHUTDOWN guest=true) or honoured ACPI
  kGuestPanicked,  // GUEST_PANICKED, or SHUTDOWN reason guest-panic
  kInternalError,  // the VM stopped with QEMU's internal-error state (e.g. a KVM failure)
  kQemuExited,     // QEMU exited or was killed without the guest powering off
  kQmpLost,        // the QMP socket died while QEMU lived on; QEMU was killed
  kQuit,           // we quit or killed QEMU (shutdown timeout, fast stop, fallback)
};
std::string_view vm_end_name(VmEnd end);

// Reads `in` to its end and calls `emit` with each line (without its newline; a very long line is
// cut in pieces): a child's console or stderr.
boost::asio::awaitable<void> pump_lines(std::shared_ptr<boost::asio::posix::stream_descriptor> in,
                                        std::function<void(std::string_view)> emit);
// One line of a child's stderr: trailing blanks cut, logged as a warning on `log` unless empty,
// and kept in `tail`, which holds the last `keep` lines.
void log_and_keep(std::string_view text, spdlog::logger& log, std::deque<std::string>& tail,
                  std::size_t keep);

class Vm {
 public:
  // The guest's serial console is connected to `console` (output and input).
  Vm(boost::asio::io_context& io, ChildReaper& children, SerialConsole& console,
     std::shared_ptr<spdlog::logger> log);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // Spawns QEMU with `spec` as `run_as` (nullopt: berth's own user), without capabilities and
  // with no_new_privs, connects QMP within `connect_within` and, with `vnc_password`, sets VNC's
  // password over QMP (until then QEMU lets no VNC client in). QEMU inherits the QMP socket (made
  // at spec.qmp_socket) and the tap spec.tap as descriptors. On failure the Error's message
  // includes what QEMU wrote to stderr, and QEMU is gone, except after abandon_start: then QEMU
  // still runs without QMP; end it with terminate().
  boost::asio::awaitable<Result<void>> start(
      qemu::MachineSpec spec, std::optional<Credentials> run_as,
      std::optional<std::string> vnc_password = std::nullopt,
      std::chrono::seconds connect_within = std::chrono::seconds(30));

  // Waits until QEMU has exited (or `limit` passed); returns true when it has exited.
  boost::asio::awaitable<bool> wait_exit(
      std::chrono::steady_clock::duration limit = std::chrono::steady_clock::duration::max());

  // Graceful: ACPI power-down every `repeat` until the guest powers off or `timeout` passes (with
  // a guest agent that answers: two thirds of it, then guest-shutdown through the agent);
  // then `quit`, then SIGKILL. Returns true when the guest powered off by itself.
  boost::asio::awaitable<bool> power_down(std::chrono::seconds timeout,
                                          std::chrono::seconds repeat = std::chrono::seconds(5));
  // Fast: `quit`, then SIGKILL after a short grace.
  boost::asio::awaitable<void> quit();
  // A stop: a start() waiting for QMP gives up at once (later calls change nothing).
  void abandon_start();
  // Without QMP (a stop while it connects): SIGTERM, QEMU's own clean quit that flushes its
  // disks. The caller waits (wait_exit) and kills it if it does not go.
  void terminate();
  void kill();

  bool running() const { return pid_ > 0 && !exit_status_; }
  // How it ended; meaningful once it has exited.
  VmEnd end() const;
  // A sentence for the log: "guest powered off" / "QEMU killed by signal 9 (SIGKILL)" ...
  std::string describe_end() const;
  // The last lines QEMU wrote to stderr.
  std::string stderr_tail() const;
  const std::shared_ptr<qmp::Client>& qmp() const { return qmp_; }
  // The guest agent's client (null before QMP connected, or without an agent channel).
  const std::shared_ptr<agent::Client>& agent() const { return agent_; }

 private:
  boost::asio::awaitable<void> pump_console(
      std::shared_ptr<boost::asio::posix::stream_descriptor> in);
  boost::asio::awaitable<void> pump_stderr(
      std::shared_ptr<boost::asio::posix::stream_descriptor> in);
  boost::asio::awaitable<void> check_status_after_stop();
  // guest-shutdown through the agent, then waits for the exit until `deadline`.
  boost::asio::awaitable<void> agent_shutdown(std::chrono::steady_clock::time_point deadline);
  // change-vnc-password; the password is in no message.
  boost::asio::awaitable<Result<void>> set_vnc_password(std::string password);
  // After QMP connected: VNC's password (QEMU is killed when it fails), then the event and close
  // handlers.
  boost::asio::awaitable<Result<void>> finish_start(std::optional<std::string> vnc_password);
  // Connects qmp_ within `within`, or gives up when QEMU exits first; the connect error, if any.
  boost::asio::awaitable<boost::system::error_code> connect_qmp(std::filesystem::path socket,
                                                                std::chrono::seconds within);
  // Returns once QEMU has been reaped.
  boost::asio::awaitable<void> until_exit();
  void on_event(const qmp::Event& event);
  void on_qmp_closed(boost::system::error_code ec);

  boost::asio::io_context& io_;
  ChildReaper& children_;
  SerialConsole& console_;
  std::uint64_t console_guest_ = 0;  // SerialConsole::attach_guest's number for this QEMU
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<spdlog::logger> qemu_log_;
  std::shared_ptr<qmp::Client> qmp_;
  std::shared_ptr<agent::Client> agent_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> exit_status_;
  boost::asio::steady_timer exited_;  // cancelled when QEMU has been reaped
  boost::asio::steady_timer qmp_grace_;
  std::deque<std::string> stderr_lines_;
  bool shutdown_by_guest_ = false;
  bool panicked_ = false;
  bool internal_error_ = false;
  bool qmp_lost_ = false;
  bool we_quit_ = false;
  bool start_abandoned_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace berth
