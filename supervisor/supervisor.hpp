#pragma once
// The supervisor: one io_context, the lifecycle from configuration to exit, PID-1 duties (signals,
// reaping). Owns every module's runtime object.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <optional>

#include "dhcp/dhcp_server.hpp"
#include "dhcp/dns/dns_forwarder.hpp"
#include "dhcp/v6/ipv6_server.hpp"
#include "drive/configdrive/config_drive.hpp"
#include "drive/configdrive/config_watch.hpp"
#include "drive/image/image_cache.hpp"
#include "drive/image/lazy_start.hpp"
#include "drive/image/nbd_server.hpp"
#include "drive/program.hpp"
#include "net/network.hpp"
#include "net/pod.hpp"
#include "qemu/command_line.hpp"
#include "supervisor/children.hpp"
#include "supervisor/config.hpp"
#include "supervisor/console/serial_console.hpp"
#include "supervisor/console/stdio_console.hpp"
#include "supervisor/exit_code.hpp"
#include "supervisor/http/api.hpp"
#include "supervisor/http/http_server.hpp"
#include "supervisor/http/vnc_proxy.hpp"
#include "supervisor/kvm_verdict.hpp"
#include "supervisor/lifecycle.hpp"
#include "supervisor/logging.hpp"
#include "supervisor/loop_lag.hpp"
#include "supervisor/runtime_state.hpp"
#include "supervisor/tpm.hpp"
#include "supervisor/vm.hpp"

namespace berth {

// How a stop was asked for.
enum class StopKind {
  kGraceful,  // SIGTERM, SIGINT, SIGHUP: ACPI power-down, wait, exit 0
  kFast,      // SIGQUIT: no power-down, clean up, exit 128+3
};

// A start-up step failed: the exit code and the sentence for the log.
struct Failure {
  ExitCode code;
  std::string message;
};

// A start-up step: done, or the Failure that ends berth.
using StepResult = Result<void, Failure>;

class Supervisor {
 public:
  Supervisor(Config config, boost::asio::io_context& io);
  ~Supervisor();

  // Runs the whole lifecycle on the io_context and returns the process exit code.
  int run();

 private:
  boost::asio::awaitable<void> main_flow();
  // Start-up, then the VM's life; the exit code.
  boost::asio::awaitable<int> start_and_run();
  // The start-up steps in order. A stop cancels the image and disk steps in flight and ends
  // the others early; start_up then returns done, with stop_kind_ set.
  boost::asio::awaitable<StepResult> start_up();
  using Run = boost::asio::awaitable<StepResult> (Supervisor::*)();
  // Runs a step until it ends or a stop cancels it (then done).
  boost::asio::awaitable<StepResult> until_stopped(Run step_run);
  // Stops the running QEMU as stop_kind_ asks: ACPI power-down (graceful), QMP quit (fast), or
  // SIGTERM when QMP never connected; the exit code.
  boost::asio::awaitable<int> stop_vm();
  // The exit code of a stop that found no VM to power down: 0, or 128+n for a fast stop.
  int stop_exit_code() const;
  // Stops the services, tears the network down, removes runtime files.
  boost::asio::awaitable<void> clean_up();
  boost::asio::awaitable<StepResult> discover_pod();
  boost::asio::awaitable<StepResult> open_listeners();
  // VNC's password from BERTH_VNC_PASSWORD_FILE (or the warning that VNC has none).
  boost::asio::awaitable<StepResult> read_vnc_password();
  boost::asio::awaitable<StepResult> make_runtime_dir();
  boost::asio::awaitable<StepResult> fetch_base_image();
  // VM_CDROM, fetched and cached like the base image; part of the image phase.
  boost::asio::awaitable<StepResult> fetch_cdrom();
  // IMG_LAZY: boots from the base image while it fills (lazy_image_ set), or says why the full
  // download is taken instead (lazy_image_ unset).
  boost::asio::awaitable<StepResult> start_lazy_image();
  // The background fill; a checksum mismatch stops the VM with ExitCode::kImage.
  boost::asio::awaitable<void> fill_lazy_image();
  // Ends berth with ExitCode::kImage: a fast stop of the VM, logged by the caller.
  void stop_for_image();
  // IMG_LAZY: the file holding the base image's bytes while it still fills (T.lazy); none once
  // it is verified and cached, or without IMG_LAZY.
  std::optional<std::filesystem::path> filling_base() const;
  void register_lazy_metrics();
  boost::asio::awaitable<StepResult> prepare_disk();
  boost::asio::awaitable<StepResult> prepare_firmware();
  boost::asio::awaitable<StepResult> build_drive();
  boost::asio::awaitable<StepResult> set_up_network();
  boost::asio::awaitable<StepResult> start_services();
  boost::asio::awaitable<StepResult> boot_and_watch();
  // qemu-img and friends for the drive module, through the reaper.
  drive::RunProgram program_runner();
  // DHCP server and DNS forwarder on the bridge.
  StepResult start_guest_services();
  // Router advertisements, DHCPv6 and the forwarder's IPv6 twin, when the VM has IPv6.
  StepResult start_ipv6_services(bool dns);
  void register_dns_metrics();
  // The VM's IPv6 side (ipv6_), chosen and checked once the pod is known.
  StepResult choose_ipv6();
  // A DHCP lease event: readiness, and the neighbour announcement for a new address.
  void on_lease(const dhcp::LeaseEvent& event);
  // The ConfigMap watch that rebuilds and swaps the config drive into the running VM.
  void start_drive_watch();
  // Starts QEMU under the accelerator VM_ACCEL and the KVM probe call for (accel_policy.hpp).
  // QEMU's credentials (BERTH_QEMU_USER, /dev/kvm's group) and the files it opens by path
  // handed over to them; a warning when berth is not root and cannot switch.
  StepResult prepare_for_qemu();
  // The viewer display's socket folder (BERTH_VIEWER), QEMU's own.
  StepResult make_viewer_dir();
  // Sets config_.web_dir to the first of web_dir_candidates() that is a folder; fails (exit 3)
  // when none is and the viewer is on.
  StepResult find_web_dir();
  boost::asio::awaitable<StepResult> boot();
  // VM_ACCEL=auto: a KVM failure recorded for this node in the image cache (kvm_verdict.hpp),
  // with how to clear it; and recording one (a warning when the file cannot be written).
  std::optional<std::string> kvm_failed_before();
  void remember_kvm_failure(const std::string& reason);
  // Runs the guest under KVM for the probation time; fails with why KVM did not work.
  boost::asio::awaitable<Result<void>> try_kvm();
  boost::asio::awaitable<int> run_until_end();
  // Starts QEMU under `accel` (replacing any previous Vm), with VM_TPM a fresh swtpm first.
  boost::asio::awaitable<Result<void>> start_vm(qemu::Accelerator accel);
  // VM_TPM: swtpm for the next QEMU (the previous one, if any, is ended first); on failure
  // tpm_failed_ is set, so the failure ends berth with ExitCode::kTpm.
  boost::asio::awaitable<Result<void>> start_tpm();
  // Until a stop, QEMU's exit or (VM_TPM) swtpm's exit.
  boost::asio::awaitable<void> watch_vm();
  // Whether swtpm died under a running VM (QEMU ending first is the VM's own end: swtpm, started
  // with --terminate, follows it).
  boost::asio::awaitable<bool> tpm_died_first();
  // The guest lost its TPM: logs why, quits QEMU, returns ExitCode::kTpm.
  boost::asio::awaitable<int> end_for_tpm();
  boost::asio::awaitable<void> wait_for_stop();
  void watch_signals();
  void request_stop(StopKind kind, int signal_number);
  // The stop itself, logged by the caller: its kind, the wake-up, a QMP connect abandoned.
  void begin_stop(StopKind kind, int signal_number);
  void finish(int exit_code);
  // Moves the lifecycle on and tells the API.
  void enter(Phase phase);
  // Starts the health and control listeners; a failure to bind is a start-up failure.
  StepResult start_listeners();
  qemu::MachineSpec machine_spec(qemu::Accelerator accel) const;
  // Where VNC listens besides 127.0.0.1: the pod's IPv4 address (none in an IPv6-only pod).
  boost::asio::ip::address_v4 vnc_address() const;

  Config config_;
  boost::asio::io_context& io_;
  std::shared_ptr<spdlog::logger> log_;
  Lifecycle lifecycle_;
  ChildReaper children_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer stop_signal_;  // cancelled when a stop is requested
  std::optional<StopKind> stop_kind_;
  int stop_signal_number_ = 0;
  std::optional<int> exit_code_;

  // What start-up found and made.
  net::Pod pod_;
  std::optional<net::NatSpec6> ipv6_;  // the VM's IPv6 side: the pod has IPv6, VM_IP6 not off
  std::optional<net::PodNetwork> network_;
  drive::CachedImage image_;
  bool image_is_iso_ = false;  // IMG_SOURCE is an installer ISO: a CD-ROM and a blank disk
  std::vector<std::filesystem::path> cdroms_;  // bootable CD-ROMs, in boot order
  std::filesystem::path pet_disk_;
  bool pet_disk_created_ = false;
  std::vector<qemu::DataDrive> data_disks_;   // VM_DISKS, prepared
  std::optional<qemu::FirmwareFlash> flash_;  // OVMF's code and the VM's variables; none: BIOS
  std::optional<Credentials> qemu_user_;      // nullopt: QEMU runs as berth's own (non-root) user
  drive::ConfigDriveParams drive_params_;
  std::unique_ptr<dhcp::DhcpServer> dhcp_;
  std::unique_ptr<dhcp::DnsForwarder> dns_;
  std::unique_ptr<dhcp::DnsForwarder> dns6_;  // on the bridge's IPv6 address
  std::unique_ptr<dhcp::v6::Ipv6Server> ipv6_server_;
  std::shared_ptr<drive::ConfigDriveWatcher> watcher_;
  MacAddress mac_{};
  using Announced = std::pair<boost::asio::ip::address_v4, MacAddress>;
  std::optional<Announced> announced_;        // the lease last announced to the bridge's neighbours
  LineWriter console_out_{stdout};            // the guest's console, to berth's stdout
  SerialConsole serial_{io_.get_executor()};  // the guest's ttyS0: stdout, stdin, viewers
  std::unique_ptr<StdioConsole> stdio_;       // berth's stdin and stdout as its terminal
  std::unique_ptr<Vm> vm_;
  std::unique_ptr<Swtpm> tpm_;  // VM_TPM: the swtpm of the current QEMU
  bool tpm_failed_ = false;     // swtpm could not be started
  // IMG_LAZY: the filling base image, its NBD export and the cache lock held until it is done.
  std::shared_ptr<drive::LazyImage> lazy_image_;
  std::shared_ptr<drive::NbdServer> lazy_export_;
  drive::FileLock lazy_lock_;
  bool image_failed_ = false;  // the lazily filled image failed its checksum: exit kImage
  RuntimeState state_;
  // The guest agent of every QEMU in turn (BERTH_FSFREEZE_TIMEOUT), known to state_.
  GuestAgent guest_agent_{component_logger("agent"), config_.fsfreeze_timeout};
  bool guest_agent_polling_ = false;  // its poll loop runs (from the first QEMU on)
  // Every figure on /metrics. Its readers point into the modules above and the API below, so it is
  // declared after the modules (destroyed before them) and rendered only through api_.
  MetricsRegistry registry_;
  LoopLagProbe loop_lag_{io_.get_executor(), registry_};
  std::unique_ptr<Api> api_;
  std::unique_ptr<VncProxy> viewer_;  // BERTH_VIEWER: /api/v1/vnc to QEMU's viewer display
  // The control token berth made up at start (no BERTH_CONTROL_TOKEN_FILE); make_runtime_dir
  // writes it to <BERTH_RUNTIME_DIR>/control-token.
  std::optional<std::string> generated_token_;
  // VNC's password, set over QMP whenever QEMU starts; never logged, never on QEMU's argv.
  std::optional<std::string> vnc_password_;
  std::unique_ptr<HttpServer> health_server_;
  std::unique_ptr<HttpServer> control_server_;
  qemu::Accelerator accel_ = qemu::Accelerator::kTcg;
  std::chrono::steady_clock::time_point vm_started_;
  std::optional<KvmHost> kvm_host_;  // described on first use
};

}  // namespace berth
