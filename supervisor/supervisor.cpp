#include "supervisor/supervisor.hpp"

#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <fstream>
#include <sstream>

#include "drive/disk/pet_disk.hpp"
#include "drive/image/image_cache.hpp"
#include "net/network.hpp"
#include "qemu/kvm.hpp"
#include "supervisor/logging.hpp"

namespace berth {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

// How long a guest must run under KVM before VM_ACCEL=auto reports that it uses KVM. A later KVM
// failure still falls back to TCG once (run_until_end): nested KVM can fail well after start.
constexpr auto kKvmProbation = 5s;

// A locally administered unicast MAC, stable for a hostname (and so for its pet disk).
MacAddress mac_for(const std::string& host) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (unsigned char c : host)
    hash = (hash ^ c) * 16777619u;
  return {0x52,
          0x54,
          0x00,
          static_cast<std::uint8_t>(hash >> 16),
          static_cast<std::uint8_t>(hash >> 8),
          static_cast<std::uint8_t>(hash)};
}

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
}

Supervisor::~Supervisor() = default;

int Supervisor::run() {
  std::signal(SIGPIPE, SIG_IGN);  // a closed peer is an error code, never a death
  watch_signals();
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
  stop_kind_ = kind;
  stop_signal_number_ = signal_number;
  stop_signal_.cancel();
}

asio::awaitable<void> Supervisor::wait_for_stop() {
  while (!stop_kind_) {
    boost::system::error_code ec;
    co_await stop_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> Supervisor::main_flow() {
  log_->info("berth {} starting as pid {}", BERTH_VERSION, ::getpid());
  int code = 0;
  if (auto started = co_await start_up(); !started) {
    log_->error("{}", started.error().message);
    code = to_int(started.error().code);
  } else if (stop_kind_) {
    code = 0;  // stopped during start-up; QEMU, if it ran, is stopped below
  } else {
    enter(Phase::kRunning);
    code = co_await run_until_end();
  }
  enter(Phase::kCleaningUp);
  if (watcher_)
    watcher_->stop();
  if (dns_)
    dns_->stop();
  if (dhcp_)
    dhcp_->stop();
  if (vm_ && vm_->running()) {
    vm_->kill();
    co_await vm_->wait_exit(5s);
  }
  state_.vm_gone();
  if (network_) {
    if (auto done = network_->teardown(); !done)
      log_->error("network teardown: {}", done.error().message);
    else
      log_->info("network: removed {}, {} and table {}", network_->spec().bridge,
                 network_->spec().tap, network_->spec().table);
    network_.reset();
  }
  std::error_code ignored;
  std::filesystem::remove(config_.runtime_dir / "qmp.sock", ignored);
  enter(Phase::kExited);
  finish(code);
}

asio::awaitable<StepResult> Supervisor::start_up() {
  enter(Phase::kDiscovering);
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
             pod_.interface, pod_.address.to_string(), pod_.mtu,
             pod_.gateway ? pod_.gateway->to_string() : "none", pod_.hostname,
             fmt::join(servers, " "), fmt::join(pod_.resolv_conf.search, " "));
  mac_ = config_.vm_mac.value_or(mac_for(pod_.hostname));
  state_.pod_discovered(pod_.hostname, config_.vm_ip);
  if (auto listening = start_listeners(); !listening)
    co_return listening;
  if (stop_kind_)
    co_return StepResult{};

  std::error_code dir_error;
  std::filesystem::create_directories(config_.runtime_dir, dir_error);
  ::chmod(config_.runtime_dir.c_str(), 0700);
  if (dir_error)
    co_return Failure{
        ExitCode::kConfig,
        fmt::format("BERTH_RUNTIME_DIR {}: {}", config_.runtime_dir.string(), dir_error.message())};

  enter(Phase::kImage);
  drive::FetchParams fetch;
  fetch.source = config_.img_source;
  fetch.image_dir = config_.image_dir;
  fetch.target = config_.img_target;
  fetch.sha256 = config_.img_sha256;
  fetch.ca_file = config_.ca_bundle;
  auto image = co_await drive::fetch_image(std::move(fetch), log_->clone("image"));
  if (!image)
    co_return Failure{ExitCode::kImage, image.error().message};
  if (image->outcome == drive::CacheOutcome::kDownloaded)
    state_.image_fetched(image->size);
  if (stop_kind_)
    co_return StepResult{};

  enter(Phase::kDisk);
  drive::PetDiskParams pet;
  pet.disk_dir = config_.disk_dir;
  pet.hostname = pod_.hostname;
  pet.base = image->path;
  pet.base_format = image->format;
  pet.base_sha256 = image->sha256;
  pet.size = config_.vm_disk_size;
  auto disk =
      co_await drive::prepare_pet_disk(std::move(pet), program_runner(), log_->clone("disk"));
  if (!disk)
    co_return Failure{ExitCode::kDisk, disk.error().message};
  pet_disk_ = disk->path;
  if (stop_kind_)
    co_return StepResult{};

  enter(Phase::kDrive);
  drive_params_.layout = config_.drive_format == DriveFormat::kNoCloud
                             ? drive::DriveLayout::kNoCloud
                             : drive::DriveLayout::kConfigDrive;
  drive_params_.userdata = config_.userdata;
  drive_params_.metadata = config_.metadata;
  drive_params_.networkdata = config_.networkdata;
  drive_params_.hostname = pod_.hostname;
  drive_params_.iso = config_.runtime_dir / "config-drive.iso";
  auto drive_log = log_->clone("drive");
  auto built = drive::build_config_drive(drive_params_, *drive_log);
  if (!built)
    co_return Failure{ExitCode::kDrive, built.error().message};
  log_->info("config drive {} ({}, instance-id {}, hostname {}): {}", built->iso.string(),
             built->label, built->instance_id, built->hostname, fmt::join(built->files, " "));
  if (stop_kind_)
    co_return StepResult{};

  enter(Phase::kNetwork);
  std::vector<net::ReservedPort> reserved = {{config_.health_port, "health"}};
  if (config_.vnc)
    reserved.push_back({5900, "vnc"});
  auto network = net::PodNetwork::setup(
      net::network_spec(pod_, config_.vm_ip, config_.vm_gw, std::move(reserved),
                        {{config_.control_listen.port, "control"}}));
  if (!network)
    co_return Failure{ExitCode::kNetwork, network.error().message};
  network_ = std::move(*network);
  log_->info("network: {} {}/30 and {} bridged, NAT {} <-> {} (nft list table ip {})",
             network_->spec().bridge, config_.vm_gw.to_string(), network_->spec().tap,
             pod_.address.address().to_string(), config_.vm_ip.to_string(), network_->spec().table);
  if (stop_kind_)
    co_return StepResult{};

  enter(Phase::kServices);
  if (auto serving = start_guest_services(); !serving)
    co_return serving;
  if (stop_kind_)
    co_return StepResult{};

  enter(Phase::kBooting);
  if (auto booted = co_await boot(); !booted)
    co_return booted;
  start_drive_watch();
  co_return StepResult{};
}

qemu::MachineSpec Supervisor::machine_spec(qemu::Accelerator accel) const {
  qemu::MachineSpec spec;
  spec.accel = accel;
  spec.cpus = config_.vm_cpus;
  spec.memory_mib = config_.vm_memory / (1024 * 1024);
  spec.disk = pet_disk_;
  spec.disk_format = qemu::DiskFormat::kQcow2;
  spec.mac = mac_;
  spec.mtu = pod_.mtu;
  spec.vnc = config_.vnc ? qemu::Vnc::kOn : qemu::Vnc::kOff;
  spec.qmp_socket = config_.runtime_dir / "qmp.sock";
  spec.config_drive = drive_params_.iso;
  if (network_)
    spec.tap = network_->spec().tap;
  spec.extra_args = config_.qemu_args;
  return spec;
}

asio::awaitable<StepResult> Supervisor::boot() {
  // Runs the guest under KVM for the probation time; fails with why KVM did not work.
  auto try_kvm = [this]() -> asio::awaitable<Result<void>> {
    if (auto started = co_await start_vm(qemu::Accelerator::kKvm); !started)
      co_return started;
    if (co_await vm_->wait_exit(kKvmProbation))
      co_return Error{ErrorKind::kUnsupported, vm_->describe_end()};
    co_return Result<void>{};
  };

  switch (config_.vm_accel) {
    case Accel::kTcg:
      log_->info("acceleration: TCG (VM_ACCEL=tcg)");
      break;
    case Accel::kKvm: {
      const auto probe = qemu::probe_kvm();
      if (!probe.usable)
        co_return Failure{ExitCode::kQemu, fmt::format("VM_ACCEL=kvm, but KVM is not usable: {}; "
                                                       "give the pod /dev/kvm or set "
                                                       "VM_ACCEL=auto or tcg",
                                                       probe.reason)};
      if (auto ran = co_await try_kvm(); !ran)
        co_return Failure{ExitCode::kQemu,
                          fmt::format("VM_ACCEL=kvm, but the guest did not run under KVM: {}; set "
                                      "VM_ACCEL=auto or tcg",
                                      ran.error().message)};
      log_->info("acceleration: KVM (VM_ACCEL=kvm)");
      co_return StepResult{};
    }
    case Accel::kAuto: {
      const auto probe = qemu::probe_kvm();
      if (!probe.usable) {
        log_->info("acceleration: TCG, because KVM is not usable: {}", probe.reason);
        break;
      }
      auto ran = co_await try_kvm();
      if (ran) {
        log_->info("acceleration: KVM (the guest ran {}s under it)",
                   std::chrono::duration_cast<std::chrono::seconds>(kKvmProbation).count());
        co_return StepResult{};
      }
      log_->warn("acceleration: TCG, because the guest did not run under KVM: {}",
                 ran.error().message);
      if (vm_->running())
        co_await vm_->quit();
      if (stop_kind_)
        co_return StepResult{};
      break;
    }
  }
  if (auto started = co_await start_vm(qemu::Accelerator::kTcg); !started)
    co_return Failure{ExitCode::kQemu, started.error().message};
  co_return StepResult{};
}

asio::awaitable<Result<void>> Supervisor::start_vm(qemu::Accelerator accel) {
  if (vm_ && accel_ == qemu::Accelerator::kKvm && accel == qemu::Accelerator::kTcg)
    state_.kvm_fell_back();
  accel_ = accel;
  vm_started_ = std::chrono::steady_clock::now();
  state_.vm_gone();
  vm_ = std::make_unique<Vm>(io_, children_, log_);
  state_.qemu_starting();
  auto started = co_await vm_->start(machine_spec(accel));
  if (started) {
    state_.vm_started(accel, vm_->qmp());
    vm_->qmp()->subscribe([this](const qmp::Event& event) { state_.events().publish(event); });
  }
  co_return started;
}

asio::awaitable<int> Supervisor::run_until_end() {
  co_await (wait_for_stop() || vm_->wait_exit());
  // VM_ACCEL=auto: a guest that stops running under KVM (internal error, QEMU dying) is started
  // again under TCG, once, rather than failing the pod into a restart loop on the same KVM.
  while (!vm_->running() && !stop_kind_ && config_.vm_accel == Accel::kAuto
         && accel_ == qemu::Accelerator::kKvm
         && (vm_->end() == VmEnd::kInternalError || vm_->end() == VmEnd::kQemuExited)) {
    log_->warn(
        "acceleration: TCG, because the guest stopped running under KVM after {:.1f}s: {}",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - vm_started_).count(),
        vm_->describe_end());
    if (auto started = co_await start_vm(qemu::Accelerator::kTcg); !started) {
      log_->error("{}", started.error().message);
      co_return to_int(ExitCode::kQemu);
    }
    co_await (wait_for_stop() || vm_->wait_exit());
  }
  if (vm_->running() && stop_kind_) {
    enter(Phase::kStopping);
    if (*stop_kind_ == StopKind::kFast) {
      co_await vm_->quit();
      co_return kSignalExitBase + stop_signal_number_;
    }
    const bool powered_off = co_await vm_->power_down(config_.shutdown_timeout);
    if (powered_off) {
      log_->info("the guest powered off");
      co_return to_int(ExitCode::kOk);
    }
    co_return to_int(ExitCode::kShutdownTimeout);
  }
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
  return [this](std::vector<std::string> argv) -> asio::awaitable<drive::ProgramResult> {
    auto result = co_await run_program(io_, children_, std::move(argv));
    if (result.spawn_error)
      co_return drive::ProgramResult{-1, result.spawn_error.message()};
    co_return drive::ProgramResult{result.status.as_shell_code(), std::move(result.output)};
  };
}

StepResult Supervisor::start_guest_services() {
  const auto& bridge = network_->spec().bridge;
  dhcp::DhcpConfig dhcp_config;
  dhcp_config.interface = bridge;
  dhcp_config.server_address = config_.vm_gw;
  dhcp_config.client_address = config_.vm_ip;
  dhcp_config.prefix_length = 30;
  dhcp_config.client_mac = mac_;
  dhcp_config.router = config_.vm_gw;
  dhcp_config.dns_servers = {config_.vm_gw};
  dhcp_config.search_domains = pod_.resolv_conf.search;
  dhcp_config.hostname = pod_.hostname;
  dhcp_config.mtu = static_cast<std::uint16_t>(pod_.mtu);
  dhcp_ = std::make_unique<dhcp::DhcpServer>(io_, dhcp_config, log_->clone("dhcp"));
  dhcp_->on_lease([this](const dhcp::LeaseEvent& event) {
    const bool holds =
        event.kind == dhcp::LeaseEventKind::kBound || event.kind == dhcp::LeaseEventKind::kRenewed;
    if (holds && !state_.lease_given())
      log_->info("the guest took its lease {} after {:.1f}s", event.address.to_string(),
                 std::chrono::duration<double>(lifecycle_.since_start()).count());
    if (holds && network_) {
      // The first connection to the guest then goes out at once (see announce_neighbor).
      if (auto told = net::announce_neighbor(network_->spec().bridge, event.address, event.mac);
          !told)
        log_->warn("{}", told.error().message);
    }
    state_.lease_held(holds);
  });
  if (auto started = dhcp_->start(); !started)
    return Failure{ExitCode::kNetwork, started.error().message};
  dhcp_->register_metrics(registry_);

  std::vector<asio::ip::udp::endpoint> upstreams;
  for (const auto& server : pod_.resolv_conf.nameservers)
    if (server.is_v4() && upstreams.size() < 3)
      upstreams.emplace_back(server, 53);
  if (upstreams.empty()) {
    log_->warn("DNS: /etc/resolv.conf names no IPv4 nameserver; the guest gets no DNS forwarder");
  } else {
    dhcp::DnsConfig dns_config;
    dns_config.listen_address = config_.vm_gw;
    dns_config.interface = bridge;
    dns_config.allowed_clients = asio::ip::network_v4(config_.vm_gw, 30).canonical();
    dns_config.upstreams = std::move(upstreams);
    dns_ = std::make_unique<dhcp::DnsForwarder>(io_, dns_config, log_->clone("dns"));
    if (auto started = dns_->start(); !started)
      return Failure{ExitCode::kNetwork, started.error().message};
    dns_->register_metrics(registry_);
  }
  return {};
}

void Supervisor::start_drive_watch() {
  auto swap = [this](std::filesystem::path iso) -> asio::awaitable<Result<void>> {
    auto qmp = state_.qmp();
    if (!qmp || !qmp->connected())
      co_return Error{ErrorKind::kUnsupported, "the VM is not running"};
    boost::json::object arguments;
    arguments["id"] = std::string(qemu::kConfigDriveDevice);
    arguments["filename"] = iso.string();
    arguments["format"] = "raw";
    arguments["read-only-mode"] = "read-only";
    auto result = co_await qmp->execute("blockdev-change-medium", std::move(arguments), 10s);
    if (!result.ok())
      co_return Error{ErrorKind::kSystem, "QMP blockdev-change-medium: " + result.describe()};
    co_return Result<void>{};
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

StepResult Supervisor::start_listeners() {
  std::optional<std::string> token;
  if (config_.control_token_file) {
    std::ifstream in(*config_.control_token_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.pop_back();
    if (!in.good() && !in.eof())
      return Failure{ExitCode::kConfig, fmt::format("BERTH_CONTROL_TOKEN_FILE {}: cannot read it",
                                                    config_.control_token_file->string())};
    if (text.size() < 16)
      return Failure{ExitCode::kConfig,
                     fmt::format("BERTH_CONTROL_TOKEN_FILE {}: the token must be at least 16 "
                                 "characters (it has {}); e.g. `openssl rand -hex 32`",
                                 config_.control_token_file->string(), text.size())};
    token = std::move(text);
  }
  api_ =
      std::make_unique<Api>(io_, state_, registry_, config_, std::move(token), log_->clone("http"));
  const HttpLimits limits;
  health_server_ = std::make_unique<HttpServer>(
      io_, "health", limits,
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
  // The health port is reserved from the VM's NAT, so it is answered here on every pod address.
  const asio::ip::tcp::endpoint health{asio::ip::address_v4::any(), config_.health_port};
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
  if (health_server_)
    health_server_->close();
  if (control_server_)
    control_server_->close();
  io_.stop();
}

}  // namespace berth
