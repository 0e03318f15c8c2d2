#include "supervisor/http/vnc_proxy.hpp"

#include <fmt/format.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <vector>

namespace berth {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;
using namespace std::chrono_literals;

struct VncProxy::Viewer {
  explicit Viewer(asio::io_context& io)
      : vnc(io), wake(io, asio::steady_timer::time_point::max()) {}
  asio::local::stream_protocol::socket vnc;
  asio::steady_timer wake;      // cancelled when a pump ends or berth stops
  bool stop_requested = false;  // berth stops: close with 1001
  bool pumps_done = false;      // one pump ended, so the other one is ending
  bool close_sent = false;      // one close frame per WebSocket
  std::uint64_t bytes_to_vm = 0;
  std::uint64_t bytes_to_viewer = 0;
};

namespace {

const CounterField<VncProxy::Counters> kCounters[] = {
    {"berth_viewer_connections_total", "Browser viewers joined to the VM's display.",
     &VncProxy::Counters::accepted},
    {"berth_viewer_refused_total",
     "Browser viewers refused: over the cap of viewers at once, or berth stopping.",
     &VncProxy::Counters::refused},
    {"berth_viewer_failed_total",
     "Browser viewers closed because QEMU's viewer display could not be reached.",
     &VncProxy::Counters::failed},
    {"berth_viewer_sent_bytes_total", "Bytes from browser viewers to the VM's display.",
     &VncProxy::Counters::bytes_to_vm},
    {"berth_viewer_received_bytes_total", "Bytes from the VM's display to browser viewers.",
     &VncProxy::Counters::bytes_to_viewers},
};

std::string peer_of(WebSocket& ws) {
  error_code ec;
  const auto peer = beast::get_lowest_layer(ws).socket().remote_endpoint(ec);
  if (ec)
    return "an unknown peer";
  return fmt::format("{}:{}", peer.address().to_string(), peer.port());
}

// Sends one close frame with `code` and `why`; the pending read then ends.
asio::awaitable<void> close_with(WebSocket& ws, websocket::close_code code, std::string why) {
  websocket::close_reason reason(code);
  reason.reason = std::move(why);
  error_code ec;
  co_await ws.async_close(reason, asio::redirect_error(asio::use_awaitable, ec));
}

// Closes `ws` with 1001 (going away) and `why`, unless a close frame was sent already
// (`close_sent`, set here).
asio::awaitable<void> close_once(WebSocket& ws, bool& close_sent, std::string why) {
  if (close_sent || !ws.is_open())
    co_return;
  close_sent = true;
  co_await close_with(ws, websocket::close_code::going_away, std::move(why));
}

}  // namespace

VncProxy::VncProxy(asio::io_context& io, std::filesystem::path socket, MetricsRegistry& registry,
                   std::shared_ptr<spdlog::logger> log, std::size_t max_viewers)
    : io_(io),
      socket_(std::move(socket)),
      log_(std::move(log)),
      max_viewers_(max_viewers),
      registry_(registry) {
  registry_.gauge("berth_viewers", "Browser viewers connected to the VM's display now.",
                  [this] { return static_cast<double>(viewers_.size()); });
  register_counter_fields(registry_, kCounters, [this]() -> const Counters& { return counters_; });
}

VncProxy::~VncProxy() {
  registry_.remove("berth_viewers");
  for (const auto& counter : kCounters)
    registry_.remove(counter.name);
}

WebSocketSession VncProxy::session() {
  return [this](WebSocket& ws) { return serve(ws); };
}

asio::awaitable<void> VncProxy::serve(WebSocket& ws) {
  const std::string peer = peer_of(ws);
  if (closing_ || viewers_.size() >= max_viewers_) {
    ++counters_.refused;
    const bool full = !closing_;
    log_->warn(
        "viewer {} refused: {}", peer,
        full ? fmt::format("{} viewers are connected already (the most at once)", viewers_.size())
             : std::string("berth is stopping"));
    const auto code =
        full ? websocket::close_code::try_again_later : websocket::close_code::going_away;
    std::string why = full ? "too many viewers" : "berth is stopping";
    co_await close_with(ws, code, std::move(why));
    co_return;
  }
  auto viewer = std::make_shared<Viewer>(io_);
  viewers_.push_back(viewer);
  const auto self = std::prev(viewers_.end());
  const auto started = std::chrono::steady_clock::now();
  error_code ec;
  const asio::local::stream_protocol::endpoint endpoint(socket_.string());
  co_await viewer->vnc.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    ++counters_.failed;
    viewers_.erase(self);
    log_->warn("viewer {}: QEMU's viewer display {} cannot be reached ({}); the VM is not running",
               peer, socket_.string(), ec.message());
    std::string why = "the VM is not running";  // named: no temporary inside co_await (GCC 12)
    co_await close_with(ws, websocket::close_code::try_again_later, std::move(why));
    co_return;
  }
  ++counters_.accepted;
  log_->info("viewer {} connected ({} of at most {})", peer, viewers_.size(), max_viewers_);
  using namespace asio::experimental::awaitable_operators;
  auto browser_side = from_browser(ws, viewer);  // named (GCC 12)
  auto vm_side = to_browser(ws, viewer);
  auto stopper = until_stopped(ws, viewer);
  co_await (std::move(browser_side) && std::move(vm_side) && std::move(stopper));
  viewers_.erase(self);
  log_->info("viewer {} disconnected after {:.1f}s ({} bytes to the VM, {} to the viewer)", peer,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
             viewer->bytes_to_vm, viewer->bytes_to_viewer);
}

asio::awaitable<void> VncProxy::from_browser(WebSocket& ws, std::shared_ptr<Viewer> viewer) {
  beast::flat_buffer buffer;
  for (;;) {
    error_code ec;
    buffer.clear();
    co_await ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    const auto size = buffer.size();
    co_await asio::async_write(viewer->vnc, buffer.data(),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    viewer->bytes_to_vm += size;
    counters_.bytes_to_vm += size;
  }
  // The browser left, or the close handshake ended: QEMU's side ends too.
  viewer->pumps_done = true;
  error_code ignored;
  viewer->vnc.close(ignored);
  viewer->wake.cancel();
}

asio::awaitable<void> VncProxy::to_browser(WebSocket& ws, std::shared_ptr<Viewer> viewer) {
  std::vector<char> data(64 * 1024);
  for (;;) {
    error_code ec;
    const auto size = co_await viewer->vnc.async_read_some(
        asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    co_await ws.async_write(asio::buffer(data.data(), size),
                            asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    viewer->bytes_to_viewer += size;
    counters_.bytes_to_viewers += size;
  }
  viewer->pumps_done = true;
  viewer->wake.cancel();
  // QEMU closed its side (it exited): the browser is told, and reconnects when it likes.
  std::string why = "the VM's display ended";  // named: no temporary inside co_await (GCC 12)
  co_await close_once(ws, viewer->close_sent, std::move(why));
}

asio::awaitable<void> VncProxy::until_stopped(WebSocket& ws, std::shared_ptr<Viewer> viewer) {
  if (!viewer->stop_requested && !viewer->pumps_done) {
    error_code ec;
    co_await viewer->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (viewer->stop_requested) {
    std::string why = "berth is stopping";  // named (GCC 12)
    co_await close_once(ws, viewer->close_sent, std::move(why));
  }
}

asio::awaitable<void> VncProxy::close_all(std::chrono::milliseconds within) {
  closing_ = true;
  if (!viewers_.empty())
    log_->info("closing {} viewer(s): berth is stopping", viewers_.size());
  for (const auto& viewer : viewers_) {
    viewer->stop_requested = true;
    viewer->wake.cancel();
  }
  const auto deadline = std::chrono::steady_clock::now() + within;
  asio::steady_timer tick(io_);
  while (!viewers_.empty() && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(20ms);
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace berth
