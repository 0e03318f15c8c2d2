#include "supervisor.hpp"

#include <fmt/ranges.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <fstream>
#include <sstream>

#include "net/resolv_conf.hpp"
#include "supervisor/logging.hpp"

namespace berth {
namespace {

namespace asio = boost::asio;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0)
    return "berth";
  return name;
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
  if (stop_kind_)
    co_return;
  boost::system::error_code ec;
  co_await stop_signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> Supervisor::main_flow() {
  log_->info("berth {} starting as pid {}", BERTH_VERSION, ::getpid());

  lifecycle_.enter(Phase::kDiscovering);
  const std::string host = hostname();
  const auto resolv = net::parse_resolv_conf(read_file("/etc/resolv.conf"));
  std::vector<std::string> servers;
  for (const auto& server : resolv.nameservers)
    servers.push_back(server.to_string());
  log_->info("pod: hostname {}, nameservers [{}], search [{}], ndots {}", host,
             fmt::join(servers, " "), fmt::join(resolv.search, " "), resolv.ndots);

  // The remaining start-up phases (image, disk, drive, network, services, QEMU) land with their
  // modules. Until then the supervisor says so and idles as a well-behaved PID 1.
  log_->warn(
      "not built yet: image fetch, pet disk, config drive, network, DHCP/DNS and QEMU; "
      "idling until SIGTERM");
  lifecycle_.enter(Phase::kRunning);
  co_await wait_for_stop();

  lifecycle_.enter(Phase::kStopping);
  lifecycle_.enter(Phase::kCleaningUp);
  lifecycle_.enter(Phase::kExited);
  finish(*stop_kind_ == StopKind::kFast ? kSignalExitBase + stop_signal_number_
                                        : to_int(ExitCode::kOk));
}

void Supervisor::finish(int exit_code) {
  if (exit_code_)
    return;
  exit_code_ = exit_code;
  log_->info("exiting with code {} after {:.3f}s", exit_code,
             std::chrono::duration<double>(lifecycle_.since_start()).count());
  signals_.cancel();
  io_.stop();
}

}  // namespace berth
