#include "supervisor/supervisor.hpp"

#include <fmt/ranges.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/async.hpp"
#include "drive/disk/pet_disk.hpp"
#include "drive/files.hpp"
#include "drive/image/image_cache.hpp"
#include "drive/image/image_format.hpp"
#include "net/network.hpp"
#include "qemu/config_drive_medium.hpp"
#include "qemu/kvm.hpp"
#include "supervisor/accel_policy.hpp"
#include "supervisor/console/serial_websocket.hpp"
#include "supervisor/data_disks.hpp"
#include "supervisor/firmware.hpp"
#include "supervisor/logging.hpp"
#include "supervisor/module_params.hpp"
#include "supervisor/qemu_user.hpp"
#include "supervisor/secret_file.hpp"

namespace berth {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

constexpr const char* kKvmDevice = "/dev/kvm";

}  // namespace

Supervisor::Supervisor(Config config, asio::io_context& io)
    : config_(std::move(config)),
      io_(io),
      log_(component_logger("berth")),
      lifecycle_(log_),
      children_(io),
      signals_(io, SIGTERM, SIGINT, SIGHUP),
      stop_signal_(io, asio::steady_timer::time_point::max()) {
  signals_.add(SIGQUIT);
  state_.register_metrics(registry_);
  register_lazy_metrics();
  state_.set_guest_agent(&guest_agent_);
  guest_agent_.register_metrics(registry_);
  registry_.counter("berth_console_lines_dropped_total",
                    "Guest console lines dropped because stdout's reader did not keep up.",
                    [this] { return static_cast<double>(console_out_.dropped()); });
  registry_.counter(
      "berth_console_input_dropped_bytes_total",
      "Bytes typed into the guest's serial console (stdin, viewers) that were dropped "
      "because 64 KiB already waited for the guest.",
      [this] { return static_cast<double>(serial_.counters().input_dropped_bytes); });
  registry_.counter(
      "berth_console_viewer_skipped_bytes_total",
      "Serial console output that slow viewers skipped (more than 256 KiB behind).",
      [this] { return static_cast<double>(serial_.counters().viewer_skipped_bytes); });
  registry_.gauge("berth_console_viewers", "Serial console viewers connected (WebSocket).",
                  [this] { return static_cast<double>(serial_.viewers()); });
  stdio_ = std::make_unique<StdioConsole>(
      io_, serial_, console_out_,
      console_output_for(::isatty(STDOUT_FILENO) == 1, config_.log_format),
      component_logger("console"));
  registry_.counter("berth_log_lines_dropped_total",
                    "Log lines (QEMU's stderr among them) dropped because stderr's reader did not "
                    "keep up.",
                    [] { return static_cast<double>(log_lines_dropped()); });
}

Supervisor::~Supervisor() = default;

int Supervisor::run() {
  std::signal(SIGPIPE, SIG_IGN);  // a closed peer is an error code, never a death
  watch_signals();
  loop_lag_.start();
  stdio_->forward_stdin();
  asio::co_spawn(io_, main_flow(), [this](std::exception_ptr error) {
    if (!error)
      return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_->critical("internal error: {}", e.what());
    }
    if (vm_)
      vm_->kill();
    finish(to_int(ExitCode::kInternal));
  });
  io_.run();
  return exit_code_.value_or(to_int(ExitCode::kInternal));
}

void Supervisor::watch_signals() {
  signals_.async_wait([this](boost::system::error_code ec, int signal_number) {
    if (ec)
      return;
    const bool fast = signal_number == SIGQUIT;
    request_stop(fast ? StopKind::kFast : StopKind::kGraceful, signal_number);
    watch_signals();
  });
}

void Supervisor::request_stop(StopKind kind, int signal_number) {
  const char* abbrev = sigabbrev_np(signal_number);
  if (stop_kind_ && !(kind == StopKind::kFast && *stop_kind_ == StopKind::kGraceful)) {
    log_->info("SIG{} received; already stopping", abbrev ? abbrev : "?");
    return;
  }
  log_->info("SIG{} received: {} stop", abbrev ? abbrev : "?",
             kind == StopKind::kFast ? "fast" : "graceful");
  begin_stop(kind, signal_number);
}

void Supervisor::begin_stop(StopKind kind, int signal_number) {
  stop_kind_ = kind;
  stop_signal_number_ = signal_number;
  stop_signal_.cancel();
  if (vm_)
    vm_->abandon_start();  // a QMP connect in progress gives up; stop_vm ends QEMU
}

asio::awaitable<void> Supervisor::wait_for_stop() {
  while (!stop_kind_) {
    boost::system::error_code ec;
    co_await stop_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> Supervisor::main_flow() {
  log_->info("berth {} starting as pid {}", BERTH_VERSION, ::getpid());
  const int code = co_await start_and_run();
  co_await clean_up();
  finish(code);
}

asio::awaitable<int> Supervisor::start_and_run() {
  auto started = co_await start_up();
  if (!started) {
    log_->error("{}", started.error().message);
    if (vm_ && vm_->running())
      co_await vm_->quit();
    co_return to_int(started.error().code);
  }
  if (stop_kind_) {
    // Stopped during start-up: a QEMU that was started is stopped like a running one.
    if (vm_ && vm_->running())
      co_return co_await stop_vm();
    enter(Phase::kStopping);
    co_return stop_exit_code();
  }
  enter(Phase::kRunning);
  co_return co_await run_until_end();
}

asio::awaitable<StepResult> Supervisor::until_stopped(Run step_run) {
  // The loser of `||` is cancelled: the step's download, lock wait or qemu-img ends and cleans up
  // as it unwinds, and `||` returns once it has.
  auto step = (this->*step_run)();
  auto stop = wait_for_stop();
  auto winner = co_await (std::move(step) || std::move(stop));
  if (winner.index() == 0)
    co_return std::move(std::get<0>(winner));
  co_return StepResult{};
}

int Supervisor::stop_exit_code() const {
  if (image_failed_)
    return to_int(ExitCode::kImage);
  return stop_kind_ == StopKind::kFast ? kSignalExitBase + stop_signal_number_
                                       : to_int(ExitCode::kOk);
}

asio::awaitable<int> Supervisor::stop_vm() {
  enter(Phase::kStopping);
  const auto& qmp = vm_->qmp();
  if (!qmp || !qmp->connected()) {
    vm_->terminate();
    const bool exited = co_await vm_->wait_exit(5s);
    if (!exited) {
      log_->warn("QEMU did not exit within 5s of SIGTERM; killing it");
      vm_->kill();
      co_await vm_->wait_exit(5s);
    }
    co_return stop_exit_code();
  }
  if (stop_kind_ == StopKind::kFast) {
    co_await vm_->quit();
    co_return stop_exit_code();
  }
  if (co_await vm_->power_down(config_.shutdown_timeout)) {
    log_->info("the guest powered off");
    co_return to_int(ExitCode::kOk);
  }
  co_return to_int(ExitCode::kShutdownTimeout);
}

asio::awaitable<void> Supervisor::clean_up() {
  enter(Phase::kCleaningUp);
  if (viewer_)
    co_await viewer_->close_all(1s);
  if (watcher_)
    watcher_->stop();
  if (dns_)
    dns_->stop();
  if (dns6_)
    dns6_->stop();
  if (ipv6_server_)
    ipv6_server_->stop();  // a last advertisement: the guest drops its default route at once
  if (dhcp_)
    dhcp_->stop();
  if (vm_ && vm_->running()) {
    log_->warn("QEMU still runs at clean-up; killing it");  // every path above stops it first
    vm_->kill();
    co_await vm_->wait_exit(5s);
  }
  if (tpm_) {
    // QEMU is gone, so swtpm (--terminate) is ending on its own; SIGTERM only if it lingers.
    const bool exited = co_await tpm_->wait_exit(2s);
    if (!exited)
      co_await tpm_->stop();
  }
  if (lazy_export_)
    lazy_export_->close();  // QEMU is gone: the export's socket goes
  if (image_failed_ && pet_disk_created_) {
    drive::discard_pet_disk(pet_disk_);  // made over bytes that failed the check
    log_->warn("IMG_LAZY: the pet disk {} made over that image in this start was removed",
               pet_disk_.string());
  }
  state_.vm_gone();
  guest_agent_.attach(nullptr);
  if (network_) {
    if (auto done = network_->teardown(); !done)
      log_->error("network teardown: {}", done.error().message);
    else
      log_->info("network: removed {}, {} and table {}", network_->spec().bridge,
                 network_->spec().tap, network_->spec().table);
    network_.reset();
  }
  std::error_code ignored;
  std::filesystem::remove(qmp_socket_path(config_), ignored);
  std::filesystem::remove(agent_socket_path(config_), ignored);
  if (config_.viewer)
    std::filesystem::remove_all(viewer_dir(config_), ignored);
  if (generated_token_)
    std::filesystem::remove(control_token_path(config_), ignored);
  enter(Phase::kExited);
}

asio::awaitable<StepResult> Supervisor::start_up() {
  // How a stop reaches a step: kCancel cancels it (Asio's cancellation, until_stopped); the others
  // are short and synchronous, or (booting) end early on their own and leave QEMU to stop_vm.
  enum class OnStop { kCancel, kHandled };
  struct Step {
    std::optional<Phase> phase;  // entered before the step runs
    Run run;
    OnStop on_stop = OnStop::kHandled;
  };
  static const Step kSteps[] = {
      {Phase::kDiscovering, &Supervisor::discover_pod},
      {std::nullopt, &Supervisor::open_listeners},
      {std::nullopt, &Supervisor::read_vnc_password},
      {std::nullopt, &Supervisor::make_runtime_dir},
      {Phase::kImage, &Supervisor::fetch_base_image, OnStop::kCancel},
      {Phase::kDisk, &Supervisor::prepare_disk, OnStop::kCancel},
      {std::nullopt, &Supervisor::prepare_firmware},
      {Phase::kDrive, &Supervisor::build_drive},
      {Phase::kNetwork, &Supervisor::set_up_network},
      {Phase::kServices, &Supervisor::start_services},
      {Phase::kBooting, &Supervisor::boot_and_watch},
  };
  for (const auto& step : kSteps) {
    if (step.phase)
      enter(*step.phase);
    StepResult done;  // not `?:` around two co_awaits: GCC 12 frees that result twice
    if (step.on_stop == OnStop::kCancel)
      done = co_await until_stopped(step.run);
    else
      done = co_await (this->*step.run)();
    if (stop_kind_) {
      // Stopped during start-up (a step that failed because of the stop did not fail).
      log_->info("start-up stopped in phase {} ({:.3f}s in it)", phase_name(lifecycle_.phase()),
                 std::chrono::duration<double>(lifecycle_.in_phase()).count());
      co_return StepResult{};
    }
    if (!done)
      co_return done;
  }
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::discover_pod() {
  auto pod = net::discover_pod();
  if (!pod)
    co_return Failure{ExitCode::kNetwork, pod.error().message};
  if (auto subnet = net::check_vm_subnet(*pod, config_.vm_ip, config_.vm_gw); !subnet)
    co_return Failure{ExitCode::kNetwork, subnet.error().message};
  pod_ = std::move(*pod);
  std::vector<std::string> servers;
  for (const auto& server : pod_.resolv_conf.nameservers)
    servers.push_back(server.to_string());
  log_->info("pod: {} {} mtu {}, gateway {}, hostname {}, nameservers [{}], search [{}]",
             pod_.interface, pod_.address ? pod_.address->to_string() : "no IPv4", pod_.mtu,
             pod_.gateway ? pod_.gateway->to_string() : "none", pod_.hostname,
             fmt::join(servers, " "), fmt::join(pod_.resolv_conf.search, " "));
  mac_ = config_.vm_mac.value_or(mac_for(pod_.hostname));
  if (auto chosen = choose_ipv6(); !chosen)
    co_return chosen;
  state_.pod_discovered(pod_.hostname, config_.vm_ip);
  co_return StepResult{};
}

StepResult Supervisor::choose_ipv6() {
  if (!pod_.ipv6) {
    if (!pod_.address)  // discover_pod fails a pod with neither
      return Failure{ExitCode::kNetwork, "the pod has no IPv4 address and no IPv6 one"};
    log_->info("IPv6: none (the pod has no IPv6 address on {})", pod_.interface);
    return {};
  }
  const auto& pod6 = *pod_.ipv6;
  if (!config_.vm_ip6) {
    if (!pod_.address)
      return Failure{ExitCode::kConfig,
                     fmt::format("VM_IP6=off, but the pod is IPv6-only ({} has {} and no IPv4 "
                                 "address): the VM would have no network; unset VM_IP6",
                                 pod_.interface, pod6.address().to_string())};
    log_->info("IPv6: off (VM_IP6=off); the pod's {} stays the pod's", pod6.address().to_string());
    return {};
  }
  if (auto prefix = net::check_vm_prefix6(pod_, *config_.vm_ip6); !prefix)
    return Failure{ExitCode::kNetwork, prefix.error().message};
  ipv6_ = ipv6_spec(config_, pod_, mac_);
  log_->info(
      "IPv6: {}: the VM is {} in VM_IP6 {} (SLAAC and DHCPv6), bridge {}, NAT66 to the pod's {}, "
      "pod gateway {}{}",
      pod_.address ? "dual-stack" : "IPv6-only", ipv6_->vm_ip.to_string(),
      config_.vm_ip6->to_string(), ipv6_->vm_gw.to_string(), ipv6_->pod_ip.to_string(),
      pod6.gateway ? pod6.gateway->to_string() : "none",
      pod_.address ? "" : "; the VM's IPv4 (VM_IP) reaches only berth (DHCP, DNS)");
  return {};
}

asio::awaitable<StepResult> Supervisor::open_listeners() {
  co_return start_listeners();
}

asio::awaitable<StepResult> Supervisor::read_vnc_password() {
  if (!config_.vnc)
    co_return StepResult{};
  if (config_.vnc_auth == VncAuth::kNone) {
    log_->warn(
        "VNC: NO AUTHENTICATION (BERTH_VNC_INSECURE_NO_AUTH): whoever reaches {}:5900 gets the "
        "VM's screen and keyboard; set BERTH_VNC_PASSWORD_FILE instead",
        vnc_address().to_string());
    co_return StepResult{};
  }
  auto text = read_secret_file("BERTH_VNC_PASSWORD_FILE", *config_.vnc_password_file);
  if (!text)
    co_return Failure{ExitCode::kConfig, text.error().message};
  auto password = check_vnc_password(std::move(*text), *config_.vnc_password_file);
  if (!password)
    co_return Failure{ExitCode::kConfig, password.error().message};
  if (password->size() > kVncPasswordLength)
    log_->warn(
        "VNC: the password in {} has {} characters; VNC authentication uses only the first "
        "{}",
        config_.vnc_password_file->string(), password->size(), kVncPasswordLength);
  log_->info("VNC: on {}:5900 and 127.0.0.1:5900, password from {}", vnc_address().to_string(),
             config_.vnc_password_file->string());
  vnc_password_ = std::move(*password);
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::make_runtime_dir() {
  std::error_code dir_error;
  std::filesystem::create_directories(config_.runtime_dir, dir_error);
  ::chmod(config_.runtime_dir.c_str(), 0700);
  if (dir_error)
    co_return Failure{
        ExitCode::kConfig,
        fmt::format("BERTH_RUNTIME_DIR {}: {}", config_.runtime_dir.string(), dir_error.message())};
  if (generated_token_) {
    const auto path = control_token_path(config_);
    if (auto written = drive::write_file_atomic(path, *generated_token_ + "\n",
                                                drive::Durability::kAtomicOnly, 0600);
        !written)
      co_return Failure{ExitCode::kConfig,
                        fmt::format("BERTH_RUNTIME_DIR: {}", written.error().message)};
    log_->info(
        "control API: token {} (also in {}): log in at http://{}/ or send Authorization: Bearer",
        *generated_token_, path.string(), format_endpoint(config_.control_listen));
  }
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::fetch_base_image() {
  if (config_.img_lazy) {
    auto lazy = co_await start_lazy_image();
    if (!lazy || lazy_image_)
      co_return lazy;
  }
  auto params = fetch_params(config_);
  params.on_progress = [this] { state_.progress(); };
  auto log = log_->clone("image");  // arguments named, not temporaries: a stop unwinds this
  auto image = co_await drive::fetch_image(std::move(params), std::move(log));
  if (!image)
    co_return Failure{ExitCode::kImage, image.error().message};
  if (image->outcome == drive::CacheOutcome::kDownloaded)
    state_.image_fetched(image->size);
  image_ = std::move(*image);
  auto iso = drive::is_iso9660_file(image_.path);
  if (!iso)
    co_return Failure{ExitCode::kImage, iso.error().message};
  image_is_iso_ = *iso;
  if (image_is_iso_) {
    if (!config_.vm_disk_size)
      co_return Failure{ExitCode::kConfig,
                        fmt::format("IMG_SOURCE: {} is an ISO 9660 image (an installer): it is "
                                    "attached as a CD-ROM and the system disk is a blank pet "
                                    "disk, whose size VM_DISK_SIZE must give, e.g. "
                                    "VM_DISK_SIZE=20Gi",
                                    config_.img_source)};
    log_->info("IMG_SOURCE is an ISO 9660 image: a bootable CD-ROM ({}) behind a blank pet disk",
               image_.path.string());
    cdroms_.push_back(image_.path);
  }
  auto cdrom = co_await fetch_cdrom();
  co_return cdrom;
}

asio::awaitable<StepResult> Supervisor::start_lazy_image() {
  auto params = lazy_params(config_);
  auto log = log_->clone("image");
  auto decision = co_await drive::start_lazy(std::move(params), log);
  if (!decision)
    co_return Failure{ExitCode::kImage, decision.error().message};
  if (!decision->start) {
    log_->info("IMG_LAZY: a full download first, because {}", decision->reason);
    co_return StepResult{};
  }
  auto& start = *decision->start;
  const auto size = start.image->stats().image_size;
  drive::NbdExport exported{lazy_socket_path(config_), "base", size,
                            [image = start.image](std::uint64_t offset, std::uint32_t length) {
                              return image->read(offset, length);
                            }};
  auto server = drive::NbdServer::listen(io_.get_executor(), std::move(exported), log);
  if (!server)
    co_return Failure{ExitCode::kImage, "IMG_LAZY: " + server.error().message};
  lazy_image_ = start.image;
  lazy_lock_ = std::move(start.lock);
  lazy_export_ = *server;
  image_ =
      drive::CachedImage{lazy_image_->final_path(), start.format, config_.img_sha256.value_or(""),
                         size, drive::CacheOutcome::kDownloaded};
  asio::co_spawn(io_, lazy_export_->run(), log_exceptions(log_, "IMG_LAZY NBD export"));
  asio::co_spawn(io_, fill_lazy_image(), log_exceptions(log_, "IMG_LAZY fill"));
  log_->info("IMG_LAZY: QEMU reads the base image {} ({}, {} bytes) through {} while it fills",
             image_.path.string(), drive::image_format_name(start.format), size,
             lazy_socket_path(config_).string());
  co_return StepResult{};
}

asio::awaitable<void> Supervisor::fill_lazy_image() {
  auto image = lazy_image_;  // named: kept alive across the waits
  for (unsigned attempt = 1;; ++attempt) {
    auto filled = co_await image->fill();
    if (filled) {
      lazy_lock_ = drive::FileLock{};
      state_.image_fetched(image->stats().image_size);
      co_return;
    }
    if (filled.error().kind == ErrorKind::kIntegrity) {
      log_->error("IMG_LAZY: {}; the VM is stopped and berth exits with code {}",
                  filled.error().message, to_int(ExitCode::kImage));
      stop_for_image();
      co_return;
    }
    const auto pause = std::chrono::seconds(5 * std::min(attempt, 12u));
    log_->warn("IMG_LAZY: the fill stopped ({}); retrying in {}s", filled.error().message,
               pause.count());
    asio::steady_timer timer(io_, pause);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void Supervisor::stop_for_image() {
  image_failed_ = true;
  if (!stop_kind_)
    begin_stop(StopKind::kFast, 0);  // already stopping: that stop goes on, exiting kImage
}

std::optional<std::filesystem::path> Supervisor::filling_base() const {
  if (lazy_image_ && !lazy_image_->stats().verified)
    return lazy_image_->partial_path();
  return std::nullopt;
}

void Supervisor::register_lazy_metrics() {
  auto stats = [this] { return lazy_image_ ? lazy_image_->stats() : drive::LazyStats{}; };
  registry_.gauge("berth_image_lazy_size_bytes",
                  "IMG_LAZY: the size of the base image being served while it fills.",
                  [stats] { return static_cast<double>(stats().image_size); });
  registry_.gauge("berth_image_lazy_present_bytes",
                  "IMG_LAZY: bytes of the base image on disk (durable) so far.",
                  [stats] { return static_cast<double>(stats().present_bytes); });
  registry_.counter("berth_image_lazy_on_demand_bytes_total",
                    "IMG_LAZY: bytes fetched because the guest read them before the fill did.",
                    [stats] { return static_cast<double>(stats().demand_bytes); });
  registry_.counter("berth_image_lazy_fill_bytes_total",
                    "IMG_LAZY: bytes fetched by the background fill.",
                    [stats] { return static_cast<double>(stats().fill_bytes); });
  registry_.gauge("berth_image_lazy_verified",
                  "IMG_LAZY: 1 once the whole image matched IMG_CHECKSUM and was cached.",
                  [stats] { return stats().verified ? 1.0 : 0.0; });
}

asio::awaitable<StepResult> Supervisor::fetch_cdrom() {
  if (!config_.cdrom)
    co_return StepResult{};
  auto params = cdrom_fetch_params(config_);
  params.on_progress = [this] { state_.progress(); };
  auto log = log_->clone("cdrom");
  auto image = co_await drive::fetch_image(std::move(params), std::move(log));
  if (!image)
    co_return Failure{ExitCode::kImage, "VM_CDROM: " + image.error().message};
  auto iso = drive::is_iso9660_file(image->path);
  if (!iso)
    co_return Failure{ExitCode::kImage, iso.error().message};
  if (!*iso)
    co_return Failure{ExitCode::kImage,
                      fmt::format("VM_CDROM: {} is not an ISO 9660 image (no \"CD001\" at byte "
                                  "0x8001); give a disk image as IMG_SOURCE instead",
                                  config_.cdrom->source)};
  log_->info("VM_CDROM: a bootable CD-ROM ({})", image->path.string());
  cdroms_.push_back(image->path);
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::prepare_disk() {
  auto params = pet_disk_params(config_, pod_.hostname, image_, image_is_iso_);
  params.base_contents = filling_base();
  auto run = program_runner();
  auto log = log_->clone("disk");
  auto disk = co_await drive::prepare_pet_disk(std::move(params), std::move(run), std::move(log));
  if (!disk)
    co_return Failure{ExitCode::kDisk, disk.error().message};
  pet_disk_ = disk->path;
  pet_disk_created_ = disk->outcome == drive::PetOutcome::kCreated;
  for (const auto& spec : config_.vm_disks)
    if (spec.kind == DataDiskKind::kFile
        && (spec.path / (spec.name + ".qcow2")).lexically_normal() == pet_disk_.lexically_normal())
      co_return Failure{ExitCode::kConfig,
                        fmt::format("VM_DISKS: the disk \"{}\" would be the pet disk {}; give it "
                                    "another name or folder",
                                    spec.name, pet_disk_.string())};
  auto data_run = program_runner();
  auto data_log = log_->clone("disk");
  auto data =
      co_await prepare_data_disks(config_.vm_disks, std::move(data_run), std::move(data_log));
  if (!data)
    co_return Failure{
        data.error().kind == ErrorKind::kInvalidInput ? ExitCode::kConfig : ExitCode::kDisk,
        data.error().message};
  data_disks_ = std::move(*data);
  state_.data_disks_prepared(data_disks_, config_.vm_cpus);
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::prepare_firmware() {
  const FirmwareParams params{config_.vm_firmware, config_.ovmf_dir,  config_.disk_dir,
                              pod_.hostname,       pet_disk_created_, config_.efivars_reset};
  auto flash = berth::prepare_firmware(params, *log_);
  if (!flash)
    co_return Failure{
        flash.error().kind == ErrorKind::kInvalidInput ? ExitCode::kConfig : ExitCode::kDisk,
        flash.error().message};
  flash_ = std::move(*flash);
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::build_drive() {
  drive_params_ = config_drive_params(config_, pod_.hostname);
  auto drive_log = log_->clone("drive");
  auto built = drive::build_config_drive(drive_params_, *drive_log);
  if (!built)
    co_return Failure{ExitCode::kDrive, built.error().message};
  log_->info("config drive {} ({}, instance-id {}, hostname {}): {}", built->iso.string(),
             built->label, built->instance_id, built->hostname, fmt::join(built->files, " "));
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::set_up_network() {
  auto network = net::PodNetwork::setup(network_spec(config_, pod_, ipv6_));
  if (!network && ipv6_ && pod_.address) {
    // A dual-stack pod whose IPv6 side cannot be set up (a read-only /proc/sys, IPv6 disabled)
    // keeps the VM on IPv4, as before berth had IPv6, rather than failing the pod.
    log_->warn("IPv6: off for the VM, which stays on IPv4: {}", network.error().message);
    ipv6_.reset();
    network = net::PodNetwork::setup(network_spec(config_, pod_, ipv6_));
  }
  if (!network)
    co_return Failure{ExitCode::kNetwork, network.error().message};
  network_ = std::move(*network);
  const auto& spec = network_->spec();
  log_->info("network: {} {}/30 and {} bridged, NAT {} <-> {} (nft list table ip {})", spec.bridge,
             config_.vm_gw.to_string(), spec.tap,
             spec.pod_ip ? spec.pod_ip->to_string() : "none (IPv6-only pod)",
             config_.vm_ip.to_string(), spec.table);
  if (ipv6_)
    log_->info("network: {} {}/64, NAT66 {} <-> {} (nft list table ip6 {})", spec.bridge,
               ipv6_->vm_gw.to_string(), ipv6_->pod_ip.to_string(), ipv6_->vm_ip.to_string(),
               spec.table);
  co_return StepResult{};
}

asio::awaitable<StepResult> Supervisor::start_services() {
  co_return start_guest_services();
}

asio::awaitable<StepResult> Supervisor::boot_and_watch() {
  auto booted = co_await boot();
  if (booted)
    start_drive_watch();
  co_return booted;
}

asio::ip::address_v4 Supervisor::vnc_address() const {
  return pod_.address ? pod_.address->address() : asio::ip::address_v4::loopback();
}

qemu::MachineSpec Supervisor::machine_spec(qemu::Accelerator accel) const {
  MachineInputs inputs;
  inputs.accel = accel;
  inputs.disk = pet_disk_;
  inputs.config_drive = drive_params_.iso;
  inputs.cdroms = cdroms_;
  inputs.mac = mac_;
  inputs.mtu = pod_.mtu;
  inputs.pod_address = vnc_address();
  if (network_)
    inputs.tap = network_->spec().tap;
  inputs.flash = flash_;
  inputs.data_disks = data_disks_;
  if (lazy_export_)
    inputs.lazy_backing =
        qemu::NbdBacking{lazy_socket_path(config_), "base",
                         image_.format == drive::ImageFormat::kQcow2 ? qemu::DiskFormat::kQcow2
                                                                     : qemu::DiskFormat::kRaw};
  return berth::machine_spec(config_, inputs);
}

asio::awaitable<Result<void>> Supervisor::try_kvm() {
  if (auto started = co_await start_vm(qemu::Accelerator::kKvm); !started)
    co_return started;
  auto probation = vm_->wait_exit(kKvmProbation);
  auto stop = wait_for_stop();
  co_await (std::move(probation) || std::move(stop));
  if (stop_kind_)
    co_return Result<void>{};  // stopped: start_and_run powers the guest off
  if (!vm_->running())
    co_return Error{ErrorKind::kUnsupported, vm_->describe_end()};
  co_return Result<void>{};
}

StepResult Supervisor::prepare_for_qemu() {
  struct stat kvm {};
  std::optional<gid_t> kvm_group;
  if (::stat(kKvmDevice, &kvm) == 0 && S_ISCHR(kvm.st_mode))
    kvm_group = kvm.st_gid;
  qemu_user_ = qemu_credentials(config_.qemu_user, ::geteuid(), kvm_group);
  if (!qemu_user_) {
    log_->warn(
        "berth runs as uid {}, not root, so QEMU runs as that user too (BERTH_QEMU_USER "
        "{}:{} needs root to switch to), still without capabilities",
        ::geteuid(), config_.qemu_user.uid, config_.qemu_user.gid);
    return {};
  }
  // IMG_LAZY: QEMU reads the base through the export (its socket QEMU's), not the file.
  if (auto handed = hand_over_files(*qemu_user_, pet_disk_, filling_base().value_or(image_.path),
                                    config_.runtime_dir, cdroms_);
      !handed)
    return Failure{ExitCode::kDisk, handed.error().message};
  if (lazy_export_
      && ::chown(lazy_socket_path(config_).c_str(), qemu_user_->uid, qemu_user_->gid) != 0)
    return Failure{ExitCode::kImage,
                   fmt::format("IMG_LAZY: chown of {}: {}", lazy_socket_path(config_).string(),
                               std::strerror(errno))};
  if (auto handed = hand_over_data_disks(*qemu_user_, data_disks_); !handed)
    return Failure{ExitCode::kDisk, handed.error().message};
  if (flash_)
    if (auto handed = hand_over_vars(*qemu_user_, flash_->vars); !handed)
      return Failure{ExitCode::kDisk, handed.error().message};
  return {};
}

StepResult Supervisor::make_viewer_dir() {
  if (!config_.viewer)
    return {};
  if (auto made =
          make_folder_for_qemu(viewer_dir(config_), viewer_socket_path(config_), qemu_user_);
      !made)
    return Failure{ExitCode::kConfig, "BERTH_VIEWER: " + made.error().message};
  return {};
}

asio::awaitable<StepResult> Supervisor::boot() {
  if (auto prepared = prepare_for_qemu(); !prepared)
    co_return prepared;
  if (auto viewer = make_viewer_dir(); !viewer)
    co_return viewer;
  const auto probe = config_.vm_accel == Accel::kTcg
                         ? qemu::KvmProbe{}
                         : kvm_for_qemu(qemu::probe_kvm(kKvmDevice), kKvmDevice, qemu_user_);
  std::optional<std::string> failed_before;
  if (config_.vm_accel == Accel::kAuto && probe.usable)
    failed_before = kvm_failed_before();
  const auto plan = plan_accel(config_.vm_accel, probe, failed_before);
  switch (plan.start) {
    case AccelStart::kFailKvmNotUsable:
      co_return Failure{ExitCode::kQemu, plan.reason};
    case AccelStart::kTcg:
      if (config_.vm_accel == Accel::kTcg)
        log_->info("acceleration: TCG ({})", plan.reason);
      else
        log_->info("acceleration: TCG, because {}", plan.reason);
      break;
    case AccelStart::kKvmOrFail: {
      auto ran = co_await try_kvm();
      if (stop_kind_)
        co_return StepResult{};  // stopped during the probation: start_and_run powers it off
      if (!ran)
        co_return Failure{ExitCode::kQemu,
                          fmt::format("VM_ACCEL=kvm, but the guest did not run under KVM: {}; set "
                                      "VM_ACCEL=auto or tcg",
                                      ran.error().message)};
      log_->info("acceleration: KVM (VM_ACCEL=kvm)");
      co_return StepResult{};
    }
    case AccelStart::kKvmElseTcg: {
      auto ran = co_await try_kvm();
      if (stop_kind_)
        co_return StepResult{};
      if (ran) {
        log_->info("acceleration: KVM (the guest ran {}s under it)", kKvmProbation.count());
        co_return StepResult{};
      }
      log_->warn("acceleration: TCG, because the guest did not run under KVM: {}",
                 ran.error().message);
      remember_kvm_failure(ran.error().message);
      if (vm_->running())
        co_await vm_->quit();
      if (stop_kind_)
        co_return StepResult{};
      break;
    }
  }
  if (auto started = co_await start_vm(qemu::Accelerator::kTcg); !started)
    co_return Failure{tpm_failed_ ? ExitCode::kTpm : ExitCode::kQemu, started.error().message};
  co_return StepResult{};
}

std::optional<std::string> Supervisor::kvm_failed_before() {
  if (!kvm_host_)
    kvm_host_ = describe_kvm_host(qemu::MachineSpec{}.binary);
  auto failed = read_kvm_failure(config_.image_dir, *kvm_host_);
  if (!failed)
    return std::nullopt;
  return fmt::format("{}; to try KVM again, delete {}", *failed,
                     (config_.image_dir / kvm_verdict_name(*kvm_host_)).string());
}

void Supervisor::remember_kvm_failure(const std::string& reason) {
  if (config_.vm_accel != Accel::kAuto)
    return;
  if (!kvm_host_)
    kvm_host_ = describe_kvm_host(qemu::MachineSpec{}.binary);
  const auto path = config_.image_dir / kvm_verdict_name(*kvm_host_);
  if (auto recorded = record_kvm_failure(config_.image_dir, *kvm_host_, reason); !recorded)
    log_->warn("acceleration: could not remember the KVM failure for this node: {}",
               recorded.error().message);
  else
    log_->info(
        "acceleration: remembered in {}: later starts on this node (same kernel, CPU and QEMU) "
        "use TCG without trying KVM; delete the file to try KVM again",
        path.string());
}

asio::awaitable<Result<void>> Supervisor::start_vm(qemu::Accelerator accel) {
  if (vm_ && accel_ == qemu::Accelerator::kKvm && accel == qemu::Accelerator::kTcg)
    state_.kvm_fell_back();
  accel_ = accel;
  vm_started_ = std::chrono::steady_clock::now();
  state_.vm_gone();
  guest_agent_.attach(nullptr);
  if (config_.vm_tpm) {
    if (auto tpm = co_await start_tpm(); !tpm)
      co_return tpm;
  }
  vm_ = std::make_unique<Vm>(io_, children_, serial_, log_);
  state_.qemu_starting();
  auto spec = machine_spec(accel);  // named: a stop unwinds this (GCC 12, ARCHITECTURE.md)
  auto run_as = qemu_user_;         // named, not temporaries inside co_await (GCC 12)
  auto vnc_password = vnc_password_;
  auto started = co_await vm_->start(std::move(spec), std::move(run_as), std::move(vnc_password));
  if (started) {
    state_.vm_started(accel, vm_->qmp());
    guest_agent_.attach(vm_->agent());
    if (!std::exchange(guest_agent_polling_, true))
      asio::co_spawn(io_, guest_agent_.run(), log_exceptions(log_, "guest agent poll"));
    vm_->qmp()->subscribe([this](const qmp::Event& event) { state_.events().publish(event); });
  }
  co_return started;
}

asio::awaitable<Result<void>> Supervisor::start_tpm() {
  if (tpm_)
    co_await tpm_->stop();
  tpm_ = std::make_unique<Swtpm>(io_, children_, log_);
  auto state_dir = tpm_state_dir(config_, pod_.hostname);  // named: GCC 12 and co_await
  auto socket = swtpm_socket_path(config_);
  auto run_as = qemu_user_;
  auto started = co_await tpm_->start(std::move(state_dir), std::move(socket), std::move(run_as));
  if (!started) {
    tpm_failed_ = true;
    co_return Error{started.error().kind,
                    fmt::format("VM_TPM: {} (state {})", started.error().message,
                                tpm_state_dir(config_, pod_.hostname).string())};
  }
  co_return started;
}

asio::awaitable<void> Supervisor::watch_vm() {
  if (tpm_)
    co_await (wait_for_stop() || vm_->wait_exit() || tpm_->wait_exit());
  else
    co_await (wait_for_stop() || vm_->wait_exit());
}

asio::awaitable<bool> Supervisor::tpm_died_first() {
  if (!tpm_ || tpm_->running() || !vm_->running() || stop_kind_)
    co_return false;
  const bool vm_ended_too = co_await vm_->wait_exit(1s);
  co_return !vm_ended_too;
}

asio::awaitable<int> Supervisor::end_for_tpm() {
  enter(Phase::kStopping);
  log_->error(
      "swtpm (VM_TPM) ended while the VM ran, {}; the guest lost its TPM, so QEMU is quit and "
      "berth exits with code {} (the TPM state in {} is kept)",
      tpm_->describe_end(), to_int(ExitCode::kTpm), tpm_state_dir(config_, pod_.hostname).string());
  co_await vm_->quit();
  co_return to_int(ExitCode::kTpm);
}

asio::awaitable<int> Supervisor::run_until_end() {
  co_await watch_vm();
  // VM_ACCEL=auto: a guest that stops running under KVM (internal error, QEMU dying) is started
  // again under TCG, once, rather than failing the pod into a restart loop on the same KVM.
  while (!vm_->running() && !stop_kind_ && fall_back_to_tcg(config_.vm_accel, accel_, vm_->end())) {
    log_->warn(
        "acceleration: TCG, because the guest stopped running under KVM after {:.1f}s: {}",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - vm_started_).count(),
        vm_->describe_end());
    remember_kvm_failure(fmt::format(
        "the guest stopped running under KVM after {:.1f}s: {}",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - vm_started_).count(),
        vm_->describe_end()));
    if (auto started = co_await start_vm(qemu::Accelerator::kTcg); !started) {
      log_->error("{}", started.error().message);
      co_return to_int(tpm_failed_ ? ExitCode::kTpm : ExitCode::kQemu);
    }
    co_await watch_vm();
  }
  if (co_await tpm_died_first())
    co_return co_await end_for_tpm();
  if (vm_->running() && stop_kind_)
    co_return co_await stop_vm();
  enter(Phase::kStopping);
  const VmEnd end = vm_->end();
  switch (end) {
    case VmEnd::kPoweredOff:
      log_->info("{}", vm_->describe_end());
      co_return to_int(ExitCode::kOk);
    case VmEnd::kGuestPanicked:
    case VmEnd::kInternalError:
      log_->error("{}", vm_->describe_end());
      co_return to_int(ExitCode::kGuestCrash);
    case VmEnd::kQemuExited:
    case VmEnd::kQmpLost:
    case VmEnd::kQuit:
      log_->error("{}", vm_->describe_end());
      co_return to_int(ExitCode::kQemu);
  }
  co_return to_int(ExitCode::kInternal);
}

drive::RunProgram Supervisor::program_runner() {
  // Each run gets the disk phase's budget as its deadline: a hung qemu-img (a dead NFS server)
  // fails the step with a clear error rather than holding start-up forever.
  const auto deadline = config_.phase_budgets.of(Phase::kDisk)->limit;
  return [this, deadline](std::vector<std::string> argv) -> asio::awaitable<drive::ProgramResult> {
    auto result = co_await run_program(io_, children_, std::move(argv), deadline);
    if (result.spawn_error)
      co_return drive::ProgramResult{-1, result.spawn_error.message()};
    co_return drive::ProgramResult{result.status.as_shell_code(), std::move(result.output),
                                   result.timed_out};
  };
}

StepResult Supervisor::start_guest_services() {
  const auto& bridge = network_->spec().bridge;
  const auto dhcp_config = berth::dhcp_config(config_, pod_, bridge, mac_);
  dhcp_ = std::make_unique<dhcp::DhcpServer>(io_, dhcp_config, log_->clone("dhcp"));
  dhcp_->on_lease([this](const dhcp::LeaseEvent& event) { on_lease(event); });
  if (auto started = dhcp_->start(); !started)
    return Failure{ExitCode::kNetwork, started.error().message};
  dhcp_->register_metrics(registry_);

  auto dns_config = berth::dns_config(config_, pod_, bridge);
  if (!dns_config) {
    log_->warn("DNS: /etc/resolv.conf names no IPv4 nameserver; the guest gets no DNS forwarder");
  } else {
    dns_ = std::make_unique<dhcp::DnsForwarder>(io_, *dns_config, log_->clone("dns"));
    if (auto started = dns_->start(); !started)
      return Failure{ExitCode::kNetwork, started.error().message};
  }
  if (ipv6_)
    if (auto started = start_ipv6_services(dns_config.has_value()); !started)
      return started;
  register_dns_metrics();
  return {};
}

void Supervisor::register_dns_metrics() {
  std::vector<dhcp::DnsForwarder::Listener> listeners;
  if (dns_)
    listeners.push_back({"ipv4", dns_.get()});
  if (dns6_)
    listeners.push_back({"ipv6", dns6_.get()});
  if (!listeners.empty())
    dhcp::DnsForwarder::register_metrics(registry_, std::move(listeners));
}

StepResult Supervisor::start_ipv6_services(bool dns) {
  const auto& bridge = network_->spec().bridge;
  if (dns) {
    auto dns6_config = berth::dns6_config(config_, pod_, bridge, *ipv6_);
    dns6_ = std::make_unique<dhcp::DnsForwarder>(io_, *dns6_config, log_->clone("dns"));
    if (auto started = dns6_->start(); !started)
      return Failure{ExitCode::kNetwork, started.error().message};
  }
  ipv6_server_ = std::make_unique<dhcp::v6::Ipv6Server>(
      io_, ipv6_server_config(pod_, bridge, *ipv6_, dns), log_->clone("ipv6"));
  ipv6_server_->on_lease([this, logged = false](const asio::ip::address_v6& address) mutable {
    if (!logged)
      log_->info("the guest took its IPv6 address {} (DHCPv6) after {:.1f}s", address.to_string(),
                 std::chrono::duration<double>(lifecycle_.since_start()).count());
    logged = true;
  });
  if (auto started = ipv6_server_->start(); !started)
    return Failure{ExitCode::kNetwork, "IPv6: " + started.error().message};
  ipv6_server_->register_metrics(registry_);
  return {};
}

void Supervisor::on_lease(const dhcp::LeaseEvent& event) {
  const bool holds =
      event.kind == dhcp::LeaseEventKind::kBound || event.kind == dhcp::LeaseEventKind::kRenewed;
  if (holds && !state_.lease_given())
    log_->info("the guest took its lease {} after {:.1f}s", event.address.to_string(),
               std::chrono::duration<double>(lifecycle_.since_start()).count());
  // The first connection to the guest then goes out at once (see announce_neighbor). A netlink
  // round trip: only for a new lease or a changed address or MAC, not for every renewal.
  const Announced lease{event.address, event.mac};
  const bool changed = event.kind == dhcp::LeaseEventKind::kBound || announced_ != lease;
  if (holds && network_ && changed) {
    if (auto told = net::announce_neighbor(network_->spec().bridge, event.address, event.mac);
        !told)
      log_->warn("{}", told.error().message);
    else
      announced_ = lease;
  }
  if (!holds)
    announced_.reset();
  if (holds)
    state_.lease_bound(event.lease_time);
  else if (event.kind == dhcp::LeaseEventKind::kReleased)
    state_.lease_ended("the guest released its DHCP lease");
  else if (event.kind == dhcp::LeaseEventKind::kNaked)
    state_.lease_ended("the guest asked for an address that is not its lease "
                       + event.address.to_string()
                       + " and was refused (DHCPNAK); it has no lease until it binds again");
  else
    state_.lease_ended("the guest declined its DHCP address " + event.address.to_string()
                       + " (another host on the bridge uses it)");
}

void Supervisor::start_drive_watch() {
  auto swap = [this](std::filesystem::path iso) -> asio::awaitable<Result<void>> {
    auto qmp = state_.qmp();
    if (!qmp || !qmp->connected())
      co_return Error{ErrorKind::kUnsupported, "the VM is not running"};
    co_return co_await qemu::change_config_drive_medium(qmp, std::move(iso));
  };
  watcher_ = drive::ConfigDriveWatcher::create(io_.get_executor(), drive_params_, std::move(swap),
                                               log_->clone("drive"));
  watcher_->register_metrics(registry_);
  if (auto started = watcher_->start(); !started)
    log_->warn("config drive: not watching for ConfigMap changes: {}", started.error().message);
}

void Supervisor::enter(Phase phase) {
  lifecycle_.enter(phase);
  state_.enter_phase(lifecycle_.phase());
}

StepResult Supervisor::find_web_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto candidates = web_dir_candidates(config_, exe);
  for (const auto& dir : candidates) {
    if (std::filesystem::is_directory(dir, ec)) {
      config_.web_dir = dir;  // what the API serves /web/ from
      return {};
    }
  }
  config_.web_dir = candidates.front();
  if (!config_.viewer)
    return {};
  std::string tried;
  for (const auto& dir : candidates)
    tried += (tried.empty() ? "" : " or ") + dir.string();
  return Failure{ExitCode::kConfig,
                 fmt::format("BERTH_WEB_DIR: no folder at {}, but the browser viewer "
                             "(BERTH_VIEWER) serves its pages from there; install berth's web "
                             "files (scripts/build.sh makes <build>/web), set BERTH_WEB_DIR, or "
                             "set BERTH_VIEWER=no",
                             tried)};
}

StepResult Supervisor::start_listeners() {
  std::optional<std::string> token;
  if (config_.control_token_file) {
    auto text = read_secret_file("BERTH_CONTROL_TOKEN_FILE", *config_.control_token_file);
    if (!text)
      return Failure{ExitCode::kConfig, text.error().message};
    if (text->size() < 16)
      return Failure{ExitCode::kConfig,
                     fmt::format("BERTH_CONTROL_TOKEN_FILE {}: the token must be at least 16 "
                                 "characters (it has {}); e.g. `openssl rand -hex 32`",
                                 config_.control_token_file->string(), text->size())};
    token = std::move(*text);
  } else {
    // Even on loopback: `kubectl port-forward` makes this port every local page's neighbour.
    std::array<unsigned char, 16> bytes{};
    if (::getrandom(bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
      return Failure{ExitCode::kInternal,
                     fmt::format("cannot generate the control token: {}", std::strerror(errno))};
    generated_token_ = fmt::format("{:02x}", fmt::join(bytes, ""));
    token = generated_token_;
  }
  api_ =
      std::make_unique<Api>(io_, state_, registry_, config_, std::move(token), log_->clone("http"));
  if (auto found = find_web_dir(); !found)
    return found;
  if (config_.viewer) {
    viewer_ = std::make_unique<VncProxy>(io_, viewer_socket_path(config_), registry_,
                                         log_->clone("viewer"));
    api_->add_websocket("/api/v1/vnc", viewer_->session(), "binary");
  }
  const HttpLimits limits;
  health_server_ = std::make_unique<HttpServer>(
      io_, "health", probe_limits(),
      [this](HttpRequest request, asio::ip::tcp::endpoint peer) {
        return api_->health(std::move(request), peer);
      },
      log_->clone("http"));
  control_server_ = std::make_unique<HttpServer>(
      io_, "control", limits,
      [this](HttpRequest request, asio::ip::tcp::endpoint peer) {
        return api_->control(std::move(request), peer);
      },
      log_->clone("http"));
  api_->add_websocket(std::string(kSerialWebSocketPath), serial_websocket_session(serial_));
  health_server_->register_metrics(registry_);
  control_server_->register_metrics(registry_);
  // The health port is reserved from the VM's NAT, so it is answered here on every pod address.
  // With IPv6 on the pod: [::], which takes IPv4 too (HttpServer clears IPV6_V6ONLY).
  const asio::ip::tcp::endpoint health{pod_.ipv6 ? asio::ip::address(asio::ip::address_v6::any())
                                                 : asio::ip::address(asio::ip::address_v4::any()),
                                       config_.health_port};
  if (auto ec = health_server_->listen(health))
    return Failure{ExitCode::kNetwork, fmt::format("BERTH_HEALTH_PORT {}: cannot listen: {}",
                                                   config_.health_port, ec.message())};
  const asio::ip::tcp::endpoint control{config_.control_listen.address,
                                        config_.control_listen.port};
  if (auto ec = control_server_->listen(control))
    return Failure{ExitCode::kNetwork,
                   fmt::format("BERTH_CONTROL_LISTEN {}: cannot listen: {}",
                               format_endpoint(config_.control_listen), ec.message())};
  return {};
}

void Supervisor::finish(int exit_code) {
  if (exit_code_)
    return;
  exit_code_ = exit_code;
  log_->info("exiting with code {} after {:.3f}s", exit_code,
             std::chrono::duration<double>(lifecycle_.since_start()).count());
  signals_.cancel();
  loop_lag_.stop();
  if (health_server_)
    health_server_->close();
  if (control_server_)
    control_server_->close();
  io_.stop();
}

}  // namespace berth
