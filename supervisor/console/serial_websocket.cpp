#include "supervisor/console/serial_websocket.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>

namespace berth {
namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

// What the viewer types, into the guest; returns when the viewer goes.
asio::awaitable<void> read_input(SerialConsole& console, WebSocket& ws) {
  beast::flat_buffer buffer;
  for (;;) {
    error_code ec;
    co_await ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      co_return;
    const auto data = buffer.cdata();
    console.input(std::string_view(static_cast<const char*>(data.data()), data.size()));
    buffer.consume(buffer.size());
  }
}

// The guest's output, to the viewer; returns when the viewer is closed or cannot be written.
asio::awaitable<void> write_output(WebSocket& ws, std::shared_ptr<ConsoleViewer> viewer) {
  for (;;) {
    co_await viewer->wait();
    const auto cancelled = (co_await asio::this_coro::cancellation_state).cancelled();
    if (viewer->closed() || cancelled != asio::cancellation_type::none)
      break;
    const std::string bytes = viewer->take();
    error_code ec;
    co_await ws.async_write(asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
  }
  // The reader may wait on a peer that sends nothing: end it.
  error_code ignored;
  beast::get_lowest_layer(ws).socket().close(ignored);
}

}  // namespace

WebSocketSession serial_websocket_session(SerialConsole& console) {
  return [&console](WebSocket& ws) -> asio::awaitable<void> {
    auto viewer = console.attach();
    auto reading = read_input(console, ws);
    auto writing = write_output(ws, viewer);
    co_await (std::move(reading) || std::move(writing));
    console.detach(viewer);
  };
}

}  // namespace berth
