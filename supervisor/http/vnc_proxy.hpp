#pragma once
// The browser viewer's VNC stream: the WebSocket route /api/v1/vnc (behind the control API's
// screening) joined to QEMU's viewer display on a unix socket, bytes pumped both ways (WebSocket
// binary messages <-> the stream socket). noVNC speaks RFB itself; berth only carries it.
// At most `max_viewers` at once (one more is closed with 1013, try again later); when berth stops,
// every viewer is closed with 1001 (going away).

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>

#include "common/metrics.hpp"
#include "supervisor/http/websocket.hpp"

namespace berth {

inline constexpr std::size_t kMaxViewers = 8;

class VncProxy {
 public:
  // `socket`: where QEMU listens (viewer_socket_path). Registers berth_viewers and the
  // berth_viewer_* counters with `registry`; the proxy must outlive every render of it.
  VncProxy(boost::asio::io_context& io, std::filesystem::path socket, MetricsRegistry& registry,
           std::shared_ptr<spdlog::logger> log, std::size_t max_viewers = kMaxViewers);
  ~VncProxy();
  VncProxy(const VncProxy&) = delete;
  VncProxy& operator=(const VncProxy&) = delete;

  // The session for Api::add_websocket. It refers to this proxy, which must outlive it.
  WebSocketSession session();

  // Closes every viewer with 1001 and refuses new ones (1001 too); returns once they have all
  // ended, or after `within`.
  boost::asio::awaitable<void> close_all(std::chrono::milliseconds within);

  std::size_t viewers() const { return viewers_.size(); }

  struct Counters {
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;  // over the cap, or berth stopping
    std::uint64_t failed = 0;   // QEMU's socket could not be reached
    std::uint64_t bytes_to_vm = 0;
    std::uint64_t bytes_to_viewers = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Viewer;
  boost::asio::awaitable<void> serve(WebSocket& ws);
  boost::asio::awaitable<void> from_browser(WebSocket& ws, std::shared_ptr<Viewer> viewer);
  boost::asio::awaitable<void> to_browser(WebSocket& ws, std::shared_ptr<Viewer> viewer);
  boost::asio::awaitable<void> until_stopped(WebSocket& ws, std::shared_ptr<Viewer> viewer);

  boost::asio::io_context& io_;
  std::filesystem::path socket_;
  std::shared_ptr<spdlog::logger> log_;
  std::size_t max_viewers_;
  bool closing_ = false;
  std::list<std::shared_ptr<Viewer>> viewers_;
  Counters counters_;
  MetricsRegistry& registry_;
};

}  // namespace berth
