#include "supervisor.hpp"

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

// qcow2 images start with "QFI\xfb"; anything else is treated as raw.
qemu::DiskFormat detect_format(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, sizeof magic);
  return in && std::string_view(magic, 4) == std::string_view("QFI\xfb", 4)
             ? qemu::DiskFormat::kQcow2
             : qemu::DiskFormat::kRaw;
}

std::string_view format_name(qemu::DiskFormat format) {
  return format == qemu::DiskFormat::kQcow2 ? "qcow2" : "raw";
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
  if (auto failure = co_await start_up()) {
    log_->error("{}", failure->message);
    code = to_int(failure->code);
  } else if (stop_kind_) {
    code = 0;  // stopped during start-up, before QEMU ran
  } else {
    enter(Phase::kRunning);
    code = co_await run_until_end();
  }
  enter(Phase::kCleaningUp);
  if (vm_ && vm_->running()) {
    vm_->kill();
    co_await vm_->wait_exit(5s);
  }
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

asio::awaitable<std::optional<Failure>> Supervisor::start_up() {
  enter(Phase::kDiscovering);
  auto pod = net::discover_pod();
  if (!pod)
    co_return Failure{ExitCode::kNetwork, pod.error().message};
  if (auto subnet = net::check_vm_subnet(*pod, config_.vm_ip, config_.vm_gw); !subnet)
    co_return Failure{ExitCode::kNetwork, subnet.error().message};
  pod_ = std::move(*pod);
  hostname_ = pod_.hostname;
  resolv_ = pod_.resolv_conf;
  mtu_ = pod_.mtu;
  std::vector<std::string> servers;
  for (const auto& server : resolv_.nameservers)
    servers.push_back(server.to_string());
  log_->info("pod: {} {} mtu {}, gateway {}, hostname {}, nameservers [{}], search [{}]",
             pod_.interface, pod_.address.to_string(), pod_.mtu,
             pod_.gateway ? pod_.gateway->to_string() : "none", hostname_, fmt::join(servers, " "),
             fmt::join(resolv_.search, " "));
  mac_ = config_.vm_mac.value_or(mac_for(hostname_));
  state_.hostname = hostname_;
  state_.vm_ip = config_.vm_ip;
  if (auto failure = start_listeners())
    co_return failure;
  if (stop_kind_)
    co_return std::nullopt;

  enter(Phase::kImage);
  if (config_.img_source_kind == SourceKind::kUrl)
    co_return Failure{ExitCode::kImage,
                      fmt::format("IMG_SOURCE {}: downloading images is not built yet; give an "
                                  "absolute path to a local image",
                                  config_.img_source)};
  base_image_ = config_.img_source;
  if (::access(base_image_.c_str(), R_OK) != 0)
    co_return Failure{ExitCode::kImage, fmt::format("IMG_SOURCE {}: {}; mount or bake the image "
                                                    "there, or give an http(s) URL",
                                                    base_image_.string(), std::strerror(errno))};
  base_format_ = detect_format(base_image_);
  log_->info("base image {} ({})", base_image_.string(), format_name(base_format_));
  if (stop_kind_)
    co_return std::nullopt;

  enter(Phase::kDisk);
  if (auto failure = co_await prepare_disk())
    co_return failure;
  if (stop_kind_)
    co_return std::nullopt;

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
    co_return std::nullopt;

  enter(Phase::kBooting);
  co_return co_await boot();
}

asio::awaitable<std::optional<Failure>> Supervisor::prepare_disk() {
  std::error_code ec;
  std::filesystem::create_directories(config_.disk_dir, ec);
  if (ec)
    co_return Failure{ExitCode::kDisk, fmt::format("BERTH_DISK_DIR {}: {}",
                                                   config_.disk_dir.string(), ec.message())};
  pet_disk_ = config_.disk_dir / (hostname_ + ".qcow2");
  if (std::filesystem::exists(pet_disk_)) {
    log_->info("pet disk {} exists: reusing it", pet_disk_.string());
    co_return std::nullopt;
  }
  // Created under a temporary name and renamed, so a crash never leaves a half-made pet disk.
  const auto temporary = pet_disk_.string() + ".tmp-" + std::to_string(::getpid());
  std::vector<std::string> argv = {"qemu-img", "create", "-q", "-f", "qcow2", "-F"};
  argv.emplace_back(format_name(base_format_));
  argv.insert(argv.end(), {"-b", std::filesystem::absolute(base_image_).string(), temporary});
  auto result = co_await run_program(io_, children_, std::move(argv));
  if (!result.ok()) {
    std::filesystem::remove(temporary, ec);
    co_return Failure{ExitCode::kDisk,
                      fmt::format("cannot create the pet disk {}: qemu-img {}: {}",
                                  pet_disk_.string(), result.status.describe(), result.output)};
  }
  std::filesystem::rename(temporary, pet_disk_, ec);
  if (ec)
    co_return Failure{ExitCode::kDisk, fmt::format("cannot create the pet disk {}: {}",
                                                   pet_disk_.string(), ec.message())};
  log_->info("pet disk {} created over {}", pet_disk_.string(), base_image_.string());
  co_return std::nullopt;
}

qemu::MachineSpec Supervisor::machine_spec(qemu::Accelerator accel) const {
  qemu::MachineSpec spec;
  spec.accel = accel;
  spec.cpus = config_.vm_cpus;
  spec.memory_mib = config_.vm_memory / (1024 * 1024);
  spec.disk = pet_disk_;
  spec.disk_format = qemu::DiskFormat::kQcow2;
  spec.mac = mac_;
  spec.mtu = mtu_;
  spec.vnc = config_.vnc ? qemu::Vnc::kOn : qemu::Vnc::kOff;
  spec.qmp_socket = config_.runtime_dir / "qmp.sock";
  if (network_)
    spec.tap = network_->spec().tap;
  spec.extra_args = config_.qemu_args;
  return spec;
}

asio::awaitable<std::optional<Failure>> Supervisor::boot() {
  std::error_code ec;
  std::filesystem::create_directories(config_.runtime_dir, ec);
  ::chmod(config_.runtime_dir.c_str(), 0700);
  if (ec)
    co_return Failure{ExitCode::kQemu, fmt::format("BERTH_RUNTIME_DIR {}: {}",
                                                   config_.runtime_dir.string(), ec.message())};

  auto start = [this](qemu::Accelerator accel) { return start_vm(accel); };
  // Runs the guest under KVM for the probation time; returns why KVM failed, if it did.
  auto try_kvm = [&]() -> asio::awaitable<std::optional<std::string>> {
    if (auto error = co_await start(qemu::Accelerator::kKvm))
      co_return error;
    if (co_await vm_->wait_exit(kKvmProbation))
      co_return vm_->describe_end();
    co_return std::nullopt;
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
      if (auto error = co_await try_kvm())
        co_return Failure{ExitCode::kQemu,
                          fmt::format("VM_ACCEL=kvm, but the guest did not run under KVM: {}; set "
                                      "VM_ACCEL=auto or tcg",
                                      *error)};
      log_->info("acceleration: KVM (VM_ACCEL=kvm)");
      co_return std::nullopt;
    }
    case Accel::kAuto: {
      const auto probe = qemu::probe_kvm();
      if (!probe.usable) {
        log_->info("acceleration: TCG, because KVM is not usable: {}", probe.reason);
        break;
      }
      auto error = co_await try_kvm();
      if (!error) {
        log_->info("acceleration: KVM (the guest ran {}s under it)",
                   std::chrono::duration_cast<std::chrono::seconds>(kKvmProbation).count());
        co_return std::nullopt;
      }
      log_->warn("acceleration: TCG, because the guest did not run under KVM: {}", *error);
      if (vm_->running())
        co_await vm_->quit();
      if (stop_kind_)
        co_return std::nullopt;
      break;
    }
  }
  if (auto error = co_await start(qemu::Accelerator::kTcg))
    co_return Failure{ExitCode::kQemu, *error};
  co_return std::nullopt;
}

asio::awaitable<std::optional<std::string>> Supervisor::start_vm(qemu::Accelerator accel) {
  if (vm_ && accel_ == qemu::Accelerator::kKvm && accel == qemu::Accelerator::kTcg)
    ++state_.accel_fallbacks;
  accel_ = accel;
  vm_started_ = std::chrono::steady_clock::now();
  state_.qmp.reset();
  vm_ = std::make_unique<Vm>(io_, children_, log_);
  ++state_.qemu_starts;
  auto error = co_await vm_->start(machine_spec(accel));
  if (!error) {
    state_.accel = accel == qemu::Accelerator::kKvm ? "kvm" : "tcg";
    state_.qmp = vm_->qmp();
    vm_->qmp()->subscribe([this](const qmp::Event& event) { state_.events.publish(event); });
  }
  co_return error;
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
    if (auto error = co_await start_vm(qemu::Accelerator::kTcg)) {
      log_->error("{}", *error);
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

void Supervisor::enter(Phase phase) {
  lifecycle_.enter(phase);
  state_.phase = lifecycle_.phase();
}

std::optional<Failure> Supervisor::start_listeners() {
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
  api_ = std::make_unique<Api>(io_, state_, config_, std::move(token), log_->clone("http"));
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
  return std::nullopt;
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
