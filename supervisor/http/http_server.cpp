#include "supervisor/http/http_server.hpp"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/async.hpp"

namespace berth {
namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
using tcp = asio::ip::tcp;

HttpReply json_reply(http::status status, std::string body, unsigned version) {
  HttpReply reply{HttpResponse(status, version), {}, {}};
  reply.response.set(http::field::content_type, "application/json");
  reply.response.set(http::field::cache_control, "no-store");
  reply.response.body() = std::move(body);
  reply.response.body() += '\n';
  reply.response.prepare_payload();
  return reply;
}

HttpReply json_error(http::status status, std::string_view message, unsigned version) {
  boost::json::object object;
  object["error"] = message;
  return json_reply(status, boost::json::serialize(object), version);
}

HttpLimits probe_limits() {
  HttpLimits limits;
  limits.head_timeout = kProbeHeadTimeout;
  limits.read_timeout = kProbeBodyTimeout;
  limits.max_connections = kProbeMaxConnections;
  limits.max_connections_per_peer = kProbeMaxConnectionsPerPeer;
  return limits;
}

HttpServer::HttpServer(asio::io_context& io, std::string name, HttpLimits limits,
                       HttpHandler handler, std::shared_ptr<spdlog::logger> log)
    : io_(io),
      name_(std::move(name)),
      limits_(limits),
      handler_(std::move(handler)),
      log_(std::move(log)),
      acceptor_(io) {}

HttpServer::~HttpServer() {
  close();
}

error_code HttpServer::listen(const tcp::endpoint& endpoint) {
  error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec && endpoint.address().is_v6() && endpoint.address().is_unspecified())
    acceptor_.set_option(asio::ip::v6_only(false), ec);  // [::] takes IPv4 as well
  if (!ec)
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    acceptor_.bind(endpoint, ec);
  if (!ec)
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    acceptor_.close(ignored);
    return ec;
  }
  log_->info("{} listening on {}:{}", name_, local_endpoint().address().to_string(),
             local_endpoint().port());
  asio::co_spawn(io_, accept_loop(), log_exceptions(log_, name_ + " accept loop"));
  return {};
}

tcp::endpoint HttpServer::local_endpoint() const {
  error_code ec;
  return acceptor_.local_endpoint(ec);
}

void HttpServer::close() {
  error_code ignored;
  acceptor_.close(ignored);
}

asio::awaitable<void> HttpServer::accept_loop() {
  while (acceptor_.is_open()) {
    error_code ec;
    tcp::socket socket =
        co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open())
        co_return;
      log_->warn("{}: accept: {}", name_, ec.message());
      continue;
    }
    const auto peer = socket.remote_endpoint(ec);
    if (ec || !admit(peer.address())) {
      socket.close(ec);
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket), peer),
                   log_exceptions(log_, name_ + " connection"));
  }
}

bool HttpServer::admit(const asio::ip::address& peer) {
  const bool over_total = connections_->total >= limits_.max_connections;
  if (!over_total) {
    const auto open = connections_->per_peer.find(peer);
    if (open == connections_->per_peer.end() || open->second < limits_.max_connections_per_peer) {
      // Counted here, not when serve() starts: accepts of a burst complete before any serve() runs.
      ++connections_->total;
      ++connections_->per_peer[peer];
      return true;
    }
  }
  auto& refused = over_total ? refused_total_ : refused_per_peer_;
  ++refused;
  // An attack would flood the log: say it at the 1st, 2nd, 4th, 8th... refusal of each kind.
  if ((refused & (refused - 1)) == 0)
    log_->warn("{}: closing a connection from {} at once: {} ({} refused so far for this reason)",
               name_, peer.to_string(),
               over_total ? fmt::format("{} connections are open", limits_.max_connections)
                          : fmt::format("it already holds {} connections",
                                        limits_.max_connections_per_peer),
               refused);
  return false;
}

void HttpServer::register_metrics(MetricsRegistry& registry) const {
  registry.family(MetricType::kCounter, "berth_" + name_ + "_connections_refused_total",
                  "Connections to the " + name_
                      + " listener closed at once because a connection cap was reached.",
                  [this] {
                    return std::vector<Sample>{
                        {{{"reason", "per_peer"}}, static_cast<double>(refused_per_peer_)},
                        {{{"reason", "total"}}, static_cast<double>(refused_total_)}};
                  });
}

asio::awaitable<error_code> HttpServer::read_request(
    beast::tcp_stream& stream, beast::flat_buffer& buffer,
    http::request_parser<http::string_body>& parser) {
  error_code ec;
  stream.expires_after(limits_.head_timeout);
  co_await http::async_read_header(stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && !parser.is_done()) {
    stream.expires_after(limits_.read_timeout);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return ec;
}

asio::awaitable<void> HttpServer::serve(tcp::socket socket, tcp::endpoint peer) {
  auto connections = connections_;  // outlives the server while connections drain
  struct Release {                  // what admit() counted
    std::shared_ptr<Connections> count;
    asio::ip::address peer;
    ~Release() {
      --count->total;
      if (--count->per_peer[peer] == 0)
        count->per_peer.erase(peer);
    }
  } release{connections, peer.address()};

  error_code ec;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(limits_.header_bytes + limits_.body_bytes);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.header_bytes));
    parser.body_limit(limits_.body_bytes);
    ec = co_await read_request(stream, buffer, parser);
    if (ec == http::error::end_of_stream || ec == beast::error::timeout
        || ec == asio::error::connection_reset || ec == asio::error::eof)
      break;
    HttpReply reply;
    if (ec) {
      // A request we will not read: say why, then close.
      const bool too_big = ec == http::error::header_limit || ec == http::error::body_limit;
      reply = json_error(too_big ? http::status::payload_too_large : http::status::bad_request,
                         "malformed request: " + ec.message());
      reply.response.keep_alive(false);
    } else {
      HttpRequest request = parser.release();
      // A refused upgrade (a WebSocket without the token, say) ends the connection: the client
      // wanted another protocol on it, not the next HTTP request.
      const bool keep_alive = request.keep_alive() && request.count(http::field::upgrade) == 0;
      const unsigned version = request.version();
      reply = co_await handler_(std::move(request), peer);
      reply.response.version(version);
      if (!reply.stream)
        reply.response.keep_alive(keep_alive);
    }
    if (reply.takeover) {
      // Bytes the client sent after the request (a WebSocket's first frames) would be lost.
      if (buffer.size() == 0) {
        stream.expires_never();  // the new owner sets its own deadlines
        co_await reply.takeover(std::move(stream));
        co_return;
      }
      reply = json_error(http::status::bad_request, "data after an upgrade request");
      reply.response.keep_alive(false);
    }
    stream.expires_after(limits_.write_timeout);
    if (reply.stream) {
      http::response_serializer<http::string_body> serializer(reply.response);
      co_await http::async_write_header(stream, serializer,
                                        asio::redirect_error(asio::use_awaitable, ec));
      if (!ec) {
        stream.expires_never();  // the streamer sets its own deadlines per write
        co_await reply.stream(stream);
      }
      break;
    }
    co_await http::async_write(stream, reply.response,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !reply.response.keep_alive())
      break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace berth
