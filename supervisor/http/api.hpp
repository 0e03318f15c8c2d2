#pragma once
// The HTTP API: health (/healthz, /readyz, /metrics on the pod IP) and control (status, power
// actions, allow-listed QMP, events as SSE, screenshots, the HTML console, the browser viewers'
// files under /web/ and their WebSocket routes; loopback by default,
// a token required everywhere; Host, Origin and Sec-Fetch-Site checked against DNS rebinding and
// other sites' pages). Handlers for HttpServer; no sockets of their own except the
// readiness TCP check.

#include <spdlog/logger.h>

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.hpp"
#include "supervisor/config.hpp"
#include "supervisor/http/http_server.hpp"
#include "supervisor/http/websocket.hpp"
#include "supervisor/runtime_state.hpp"

namespace berth {

class Api {
 public:
  // `token`: the token the control API requires, as a bearer header or the berth_token cookie
  // (nullopt: none required; berth always has one, generated at start when no file gives it).
  // Registers the block I/O families (berth_block_*) with `registry`, read from the snapshot that
  // metrics() takes; the Api must outlive every render of `registry`.
  Api(boost::asio::io_context& io, RuntimeState& state, MetricsRegistry& registry,
      const Config& config, std::optional<std::string> token, std::shared_ptr<spdlog::logger> log);

  // Routes of the health listener.
  boost::asio::awaitable<HttpReply> health(HttpRequest request,
                                           boost::asio::ip::tcp::endpoint peer);
  // A WebSocket route of the control listener at `path`, behind the same screening (Host,
  // Origin, token) as every other control route; see websocket_reply() for `subprotocol`.
  void add_websocket(std::string path, WebSocketSession session, std::string subprotocol = {});

  // Routes of the control listener.
  boost::asio::awaitable<HttpReply> control(HttpRequest request,
                                            boost::asio::ip::tcp::endpoint peer);

  // The Prometheus text of /metrics: takes a QMP query-blockstats snapshot, then renders the
  // registry.
  boost::asio::awaitable<std::string> metrics();

 private:
  boost::asio::awaitable<HttpReply> healthz(unsigned version);
  boost::asio::awaitable<HttpReply> readyz(unsigned version);
  boost::asio::awaitable<HttpReply> status(unsigned version);
  boost::asio::awaitable<HttpReply> run_qmp(std::string command, boost::json::object arguments,
                                            unsigned version);
  boost::asio::awaitable<HttpReply> screenshot(unsigned version);
  // POST /api/v1/disks/attach|detach {"disk": name or path}: a data disk of VM_DISKS, hot-plugged
  // (blockdev-add + device_add) or unplugged (device_del, the guest's release, blockdev-del).
  // Anything VM_DISKS does not list is refused with 403.
  enum class Plug { kAttach, kDetach };
  boost::asio::awaitable<HttpReply> hotplug(Plug plug, std::string disk, unsigned version);
  HttpReply events();
  // POST /api/v1/fsfreeze|fsthaw: the guest's filesystems through its agent (409 without one,
  // 502 when the agent fails).
  enum class Freeze { kFreeze, kThaw };
  boost::asio::awaitable<HttpReply> fsfreeze(Freeze action, unsigned version);
  // GET or HEAD of a file under /web/ (web_files.hpp).
  boost::asio::awaitable<HttpReply> web_file(HttpRequest request);
  bool authorized(const HttpRequest& request) const;
  // The reply that refuses a control request before routing (Host, token in the URL,
  // Sec-Fetch-Site, Origin, no token; the login form for GET / without one), or nullopt.
  std::optional<HttpReply> screen_control(const HttpRequest& request) const;
  // POST routes of the control listener: login/logout, power actions, QMP.
  boost::asio::awaitable<HttpReply> control_post(HttpRequest request);
  // Whether a Host header names this listener in a way DNS cannot rebind.
  bool host_allowed(std::string_view host) const;
  void register_metrics();
  // One sample per device of the snapshot's `field` ("rd_bytes", ...).
  std::vector<Sample> block_samples(std::string_view field) const;

  boost::asio::io_context& io_;
  RuntimeState& state_;  // read through its getters; events() to subscribe
  MetricsRegistry& registry_;
  const Config& config_;
  std::optional<std::string> token_;
  std::shared_ptr<spdlog::logger> log_;
  struct WebSocketRoute {
    WebSocketSession session;
    std::string subprotocol;
  };
  std::map<std::string, WebSocketRoute, std::less<>> websockets_;
  boost::json::value blockstats_;  // the last query-blockstats answer (null: none)
};

}  // namespace berth
