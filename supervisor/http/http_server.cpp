#include "supervisor/http/http_server.hpp"

#include <boost/asio/co_spawn.hpp>
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
  HttpReply reply{HttpResponse(status, version), {}};
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
    if (*connections_ >= limits_.max_connections) {
      log_->warn("{}: connection limit {} reached; refusing a connection", name_,
                 limits_.max_connections);
      socket.close(ec);
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket)), log_exceptions(log_, name_ + " connection"));
  }
}

asio::awaitable<void> HttpServer::serve(tcp::socket socket) {
  auto connections = connections_;  // outlives the server while connections drain
  ++*connections;
  struct Release {
    std::shared_ptr<std::size_t> count;
    ~Release() { --*count; }
  } release{connections};

  error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer(limits_.header_bytes + limits_.body_bytes);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.header_bytes));
    parser.body_limit(limits_.body_bytes);
    stream.expires_after(limits_.read_timeout);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
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
      const bool keep_alive = request.keep_alive();
      const unsigned version = request.version();
      reply = co_await handler_(std::move(request), peer);
      reply.response.version(version);
      if (!reply.stream)
        reply.response.keep_alive(keep_alive);
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
