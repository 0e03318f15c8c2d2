#include "supervisor/http/websocket.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <memory>
#include <string_view>

namespace berth {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;

namespace {

// Whether the comma-separated `list` (a Sec-WebSocket-Protocol header) holds `token`.
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (beast::iequals(item, token))
      return true;
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool is_websocket_upgrade(const HttpRequest& request) {
  return websocket::is_upgrade(request);
}

HttpReply websocket_reply(HttpRequest request, WebSocketSession session, std::string subprotocol,
                          WebSocketLimits limits) {
  HttpReply reply;
  auto shared = std::make_shared<HttpRequest>(std::move(request));
  reply.takeover = [shared, session = std::move(session), subprotocol = std::move(subprotocol),
                    limits](beast::tcp_stream stream) -> asio::awaitable<void> {
    // Interactive traffic (key events one way, small screen updates the other): without
    // TCP_NODELAY, Nagle's algorithm holds a small write behind an unacknowledged one, and the
    // peer's delayed ACK makes that up to 40 ms (on loopback, the kubectl port-forward path).
    error_code ec;
    stream.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    WebSocket ws(std::move(stream));
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = limits.handshake_timeout;
    timeouts.idle_timeout = limits.idle_timeout;
    timeouts.keep_alive_pings = true;
    ws.set_option(timeouts);
    ws.read_message_max(limits.message_bytes);
    const bool offered =
        !subprotocol.empty()
        && list_has((*shared)[beast::http::field::sec_websocket_protocol], subprotocol);
    ws.set_option(websocket::stream_base::decorator(
        [offered, subprotocol](websocket::response_type& response) {
          response.set(beast::http::field::server, "berth");
          if (offered)
            response.set(beast::http::field::sec_websocket_protocol, subprotocol);
        }));
    co_await ws.async_accept(*shared, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      co_return;
    ws.binary(true);
    co_await session(ws);
    if (ws.is_open()) {
      const websocket::close_reason normal(websocket::close_code::normal);  // named (GCC 12)
      co_await ws.async_close(normal, asio::redirect_error(asio::use_awaitable, ec));
    }
  };
  return reply;
}

}  // namespace berth
