#pragma once
// A small HTTP/1.1 server on Boost.Beast for the health and control listeners: one coroutine per
// connection, header and body limits, a read deadline, a connection cap, keep-alive, and
// handlers that either answer with one response or stream (Server-Sent Events).

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace berth {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

struct HttpLimits {
  std::size_t header_bytes = 8 * 1024;
  std::size_t body_bytes = 64 * 1024;
  std::chrono::seconds read_timeout{10};  // for a whole request, and for idle keep-alive
  std::chrono::seconds write_timeout{10};
  std::size_t max_connections = 32;
};

// What a handler answers: a response, and optionally a streamer that owns the connection after
// the response header has been sent (the response must then carry no Content-Length).
struct HttpReply {
  HttpResponse response;
  std::function<boost::asio::awaitable<void>(boost::beast::tcp_stream&)> stream;
};

using HttpHandler =
    std::function<boost::asio::awaitable<HttpReply>(HttpRequest, boost::asio::ip::tcp::endpoint)>;

// A JSON response: {"error": message} for errors.
HttpReply json_reply(http::status status, std::string body, unsigned version = 11);
HttpReply json_error(http::status status, std::string_view message, unsigned version = 11);

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, std::string name, HttpLimits limits, HttpHandler handler,
             std::shared_ptr<spdlog::logger> log);
  ~HttpServer();

  // Binds and listens on `endpoint` and starts accepting; returns the error if it cannot bind.
  boost::system::error_code listen(const boost::asio::ip::tcp::endpoint& endpoint);
  // The bound endpoint (port 0 resolved).
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void close();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  std::string name_;
  HttpLimits limits_;
  HttpHandler handler_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<std::size_t> connections_ = std::make_shared<std::size_t>(0);
};

}  // namespace berth
