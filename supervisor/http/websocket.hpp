#pragma once
// WebSocket routes of the control listener (the browser viewer's VNC stream, the serial console):
// a GET with an Upgrade header, already screened by the control API (Host, Origin, token), is
// answered with the handshake and handed to a session that owns the WebSocket until it returns.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "supervisor/http/http_server.hpp"

namespace berth {

using WebSocket = boost::beast::websocket::stream<boost::beast::tcp_stream>;
using WebSocketSession = std::function<boost::asio::awaitable<void>(WebSocket&)>;

struct WebSocketLimits {
  std::size_t message_bytes = 1024 * 1024;  // a bigger incoming message closes the socket
  // A peer that answers no ping for this long is gone (Beast pings at half of it).
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds handshake_timeout{10};
};

// Whether `request` asks for a WebSocket (GET, Connection: upgrade, Upgrade: websocket).
bool is_websocket_upgrade(const HttpRequest& request);

// The reply that completes the upgrade of `request` and runs `session` on the WebSocket. When the
// client offers the subprotocol `subprotocol` (noVNC offers "binary"), the handshake selects it.
// The session's messages are binary unless it says otherwise; when it returns, the WebSocket is
// closed normally if it is still open.
HttpReply websocket_reply(HttpRequest request, WebSocketSession session, std::string subprotocol,
                          WebSocketLimits limits = {});

}  // namespace berth
