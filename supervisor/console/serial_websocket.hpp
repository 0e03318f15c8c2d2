#pragma once
// The serial console over a WebSocket (GET /api/v1/serial on the control listener, behind its
// token): the viewer first gets the scrollback, then the guest's output as it comes (binary
// messages); every message it sends (text or binary) is typed into the guest.

#include "supervisor/console/serial_console.hpp"
#include "supervisor/http/websocket.hpp"

namespace berth {

inline constexpr std::string_view kSerialWebSocketPath = "/api/v1/serial";

// The session for Api::add_websocket; `console` outlives every session.
WebSocketSession serial_websocket_session(SerialConsole& console);

}  // namespace berth
