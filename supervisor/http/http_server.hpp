#pragma once
// A small HTTP/1.1 server on Boost.Beast for the health and control listeners: one coroutine per
// connection, header and body limits, read deadlines (one for the request head), connection caps in
// all and per peer address (refusals counted), keep-alive, and handlers that either answer with one
// response or stream (Server-Sent Events).

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/metrics.hpp"

namespace berth {

namespace http = boost::beast::http;
using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

struct HttpLimits {
  std::size_t header_bytes = 8 * 1024;
  std::size_t body_bytes = 64 * 1024;
  // From the moment a request is awaited (idle keep-alive included) until its head is in.
  std::chrono::seconds head_timeout{10};
  std::chrono::seconds read_timeout{10};  // for the body, once the head is in
  std::chrono::seconds write_timeout{10};
  std::size_t max_connections = 32;
  // Connections open from one peer address; more are closed at once.
  std::size_t max_connections_per_peer = 32;
};

// The health (probe) listener answers the kubelet on every pod address, so no client may hold it:
// a request head must arrive within 2 s of the connection (or of the previous answer), one peer
// address holds at most 4 connections and all peers together 64; a connection over a cap is
// closed at once and counted in berth_health_connections_refused_total.
inline constexpr std::chrono::seconds kProbeHeadTimeout{2};
inline constexpr std::chrono::seconds kProbeBodyTimeout{2};
inline constexpr std::size_t kProbeMaxConnectionsPerPeer = 4;
inline constexpr std::size_t kProbeMaxConnections = 64;
HttpLimits probe_limits();

// What a handler answers: a response, and optionally a streamer that owns the connection after
// the response header has been sent (the response must then carry no Content-Length), or a
// takeover that is handed the connection instead of any response (a WebSocket upgrade, which
// writes its own handshake answer); the connection ends when either returns.
struct HttpReply {
  HttpResponse response;
  std::function<boost::asio::awaitable<void>(boost::beast::tcp_stream&)> stream;
  std::function<boost::asio::awaitable<void>(boost::beast::tcp_stream)> takeover;
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

  // Registers berth_<name>_connections_refused_total{reason="per_peer"|"total"}, read from this
  // server; the registry must not be rendered after the server is destroyed.
  void register_metrics(MetricsRegistry& registry) const;

 private:
  // Open connections, in all and per peer address; shared with connections that outlive close().
  struct Connections {
    std::size_t total = 0;
    std::map<boost::asio::ip::address, std::size_t> per_peer;
  };

  boost::asio::awaitable<void> accept_loop();
  // Whether the caps leave room for one more connection from `peer`: if so it is counted as open
  // (serve() releases it), if not the refusal is counted.
  bool admit(const boost::asio::ip::address& peer);
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket,
                                     boost::asio::ip::tcp::endpoint peer);
  // Reads one request into `parser`: its head within head_timeout, then its body.
  boost::asio::awaitable<boost::system::error_code> read_request(
      boost::beast::tcp_stream& stream, boost::beast::flat_buffer& buffer,
      http::request_parser<http::string_body>& parser);

  boost::asio::io_context& io_;
  std::string name_;
  HttpLimits limits_;
  HttpHandler handler_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<Connections> connections_ = std::make_shared<Connections>();
  std::uint64_t refused_per_peer_ = 0;
  std::uint64_t refused_total_ = 0;
};

}  // namespace berth
