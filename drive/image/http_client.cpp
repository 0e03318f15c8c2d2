#include "drive/image/http_client.hpp"

#include <fmt/format.h>
#include <fmt/std.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <charconv>
#include <variant>
#include <vector>

#include "common/async.hpp"
#include "drive/image/source.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kBodyBuffer = 256 * 1024;

struct Target {
  bool tls = false;
  std::string host;         // for DNS, SNI and certificate checks (no brackets)
  std::string port;         // numeric
  std::string host_header;  // as the Host header wants it
  std::string target;       // path and query
  bool host_is_ip = false;
};

Result<Target> parse_target(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("\"{}\" is not a URL: {}", url, parsed.error().message())};
  const auto& u = *parsed;
  Target t;
  if (u.scheme_id() == boost::urls::scheme::https)
    t.tls = true;
  else if (u.scheme_id() != boost::urls::scheme::http)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("\"{}\": only http and https URLs are supported", url)};
  if (!u.has_authority() || u.encoded_host().empty())
    return Error{ErrorKind::kInvalidInput, fmt::format("\"{}\" has no host", url)};
  if (u.has_userinfo())
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("\"{}\": credentials in URLs are not supported", url)};
  t.host = u.host_address();
  t.host_is_ip = u.host_type() != boost::urls::host_type::name;
  t.port = u.has_port() ? std::string(u.port()) : (t.tls ? "443" : "80");
  t.host_header = std::string(u.encoded_host_and_port());
  t.target = std::string(u.encoded_target());
  if (t.target.empty())
    t.target = "/";
  return t;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    return std::nullopt;
  return value;
}

Error transient(std::string message) {
  return {ErrorKind::kTransient, std::move(message)};
}

// A TLS handshake failure: an untrusted certificate is final, anything else may be transient.
Error tls_error(const beast::error_code& ec, SSL* ssl, const Target& t) {
  if (ec.category() == asio::error::get_ssl_category()
      && ERR_GET_REASON(static_cast<unsigned long>(ec.value()))
             == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    const long verify = SSL_get_verify_result(ssl);
    return {ErrorKind::kHttp,
            fmt::format("TLS: the certificate of {} is not trusted ({}); if the server uses a "
                        "private CA, give Berth that CA's certificate as a CA bundle",
                        t.host, X509_verify_cert_error_string(verify))};
  }
  return transient(
      fmt::format("TLS handshake with {}:{} failed: {}", t.host, t.port, ec.message()));
}

struct Redirect {
  std::string location;
};
struct Done {};
using Step = std::variant<Redirect, Done>;

struct Exchange {
  const HttpOptions& options;
  const Target& target;
  const std::string& url;
  const std::optional<RangeRequest>& range;
  const OnHead& on_head;
  const OnBody& on_body;

  template <class Stream>
  asio::awaitable<Result<Step>> run(Stream& stream) {
    if (auto sent = co_await send_request(stream); !sent)
      co_return sent.error();
    // Beast reads at most what the buffer has room for (512 bytes when it is left to grow by
    // itself): room for 64 KiB reads keeps the syscalls per GiB in the thousands, not millions.
    beast::flat_buffer buffer;
    buffer.reserve(kBodyBuffer);
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(options.body_limit);
    if (auto read = co_await read_head(stream, buffer, parser); !read)
      co_return read.error();
    const auto& response = parser.get();
    const unsigned status = response.result_int();
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
      auto location = response.find(http::field::location);
      if (location == response.end() || location->value().empty())
        co_return Error{ErrorKind::kHttp,
                        fmt::format("HTTP {} from {} without a Location header", status, url)};
      co_return Redirect{std::string(location->value())};
    }
    auto action = on_head(head_of(response));
    if (!action)
      co_return action.error();
    if (*action == HeadAction::kReadBody)
      if (auto body = co_await read_body(stream, buffer, parser); !body)
        co_return body.error();
    co_return Done{};
  }

  template <class Stream>
  asio::awaitable<Result<void>> send_request(Stream& stream) {
    http::request<http::empty_body> request{http::verb::get, target.target, 11};
    request.set(http::field::host, target.host_header);
    request.set(http::field::user_agent, options.user_agent);
    request.set(http::field::accept, "*/*");
    request.set(http::field::accept_encoding, "identity");
    request.set(http::field::connection, "close");
    if (range) {
      if (range->last)
        request.set(http::field::range, fmt::format("bytes={}-{}", range->from, *range->last));
      else
        request.set(http::field::range, fmt::format("bytes={}-", range->from));
      if (!range->if_range.empty())
        request.set(http::field::if_range, range->if_range);
    }
    beast::get_lowest_layer(stream).expires_after(options.stall_timeout);
    auto [ec, written] =
        co_await http::async_write(stream, request, asio::as_tuple(asio::use_awaitable));
    (void)written;
    if (ec)
      co_return describe_io("sending the request to", ec);
    co_return Result<void>{};
  }

  template <class Stream, class Parser>
  asio::awaitable<Result<void>> read_head(Stream& stream, beast::flat_buffer& buffer,
                                          Parser& parser) {
    beast::get_lowest_layer(stream).expires_after(options.stall_timeout);
    auto [ec, bytes] = co_await http::async_read_header(stream, buffer, parser,
                                                        asio::as_tuple(asio::use_awaitable));
    (void)bytes;
    if (ec == http::error::body_limit)
      co_return Error{
          ErrorKind::kIntegrity,
          fmt::format("the body from {} ({} bytes) is larger than the limit of {} bytes", url,
                      parser.content_length().value_or(0), options.body_limit)};
    if (ec)
      co_return describe_io("reading the response from", ec);
    co_return Result<void>{};
  }

  template <class Response>
  HttpHead head_of(const Response& response) const {
    HttpHead head;
    head.url = url;
    head.status = response.result_int();
    head.reason = std::string(response.reason());
    if (auto cl = response.find(http::field::content_length); cl != response.end())
      head.content_length = parse_u64(cl->value());
    if (auto cr = response.find(http::field::content_range); cr != response.end())
      head.content_range = parse_content_range(cr->value());
    if (auto etag = response.find(http::field::etag); etag != response.end())
      head.etag = std::string(etag->value());
    if (auto lm = response.find(http::field::last_modified); lm != response.end())
      head.last_modified = std::string(lm->value());
    if (auto ra = response.find(http::field::retry_after); ra != response.end())
      if (auto seconds = parse_u64(ra->value()))
        head.retry_after = std::chrono::seconds(*seconds);
    return head;
  }

  // Reads the body to its end, handing each piece to on_body, every read under the stall timeout.
  template <class Stream, class Parser>
  asio::awaitable<Result<void>> read_body(Stream& stream, beast::flat_buffer& buffer,
                                          Parser& parser) {
    std::vector<char> chunk(kBodyBuffer);
    std::uint64_t received = 0;
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      beast::get_lowest_layer(stream).expires_after(options.stall_timeout);
      auto [ec, n] =
          co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      (void)n;
      if (ec == http::error::need_buffer)
        ec = {};
      const std::size_t got = chunk.size() - parser.get().body().size;
      if (got > 0) {
        received += got;
        if (auto r = on_body({chunk.data(), got}); !r)
          co_return r.error();
      }
      if (ec)
        co_return body_error(ec, received, parser.content_length_remaining());
    }
    co_return Result<void>{};
  }

  Error body_error(const beast::error_code& ec, std::uint64_t received,
                   boost::optional<std::uint64_t> remaining) const {
    if (ec == http::error::body_limit)
      return Error{ErrorKind::kIntegrity,
                   fmt::format("the body from {} is larger than the limit of {} bytes", url,
                               options.body_limit)};
    if (ec == beast::error::timeout)
      return transient(fmt::format("no data from {}:{} for {}s after {} bytes of the body",
                                   target.host, target.port, options.stall_timeout.count() / 1000.0,
                                   received));
    if (ec == http::error::partial_message || ec == http::error::end_of_stream)
      return transient(fmt::format(
          "{}:{} closed the connection after {} bytes of the body{}", target.host, target.port,
          received, remaining ? fmt::format(" ({} more were announced)", *remaining) : ""));
    return transient(fmt::format("the connection to {}:{} failed after {} bytes of the body: {}",
                                 target.host, target.port, received, ec.message()));
  }

  Error describe_io(std::string_view doing, const beast::error_code& ec) const {
    if (ec == beast::error::timeout)
      return transient(fmt::format("timed out {} {}:{} (no data for {}s)", doing, target.host,
                                   target.port, options.stall_timeout.count() / 1000.0));
    return transient(
        fmt::format("failed {} {}:{}: {}", doing, target.host, target.port, ec.message()));
  }
};

asio::awaitable<Result<tcp::resolver::results_type>> resolve(const Target& t,
                                                             std::chrono::milliseconds timeout) {
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto outcome = co_await with_deadline(
      resolver.async_resolve(t.host, t.port, asio::as_tuple(asio::use_awaitable)), timeout);
  if (!outcome)
    co_return transient(
        fmt::format("resolving {} timed out after {}s", t.host, timeout.count() / 1000.0));
  auto [ec, results] = std::move(*outcome);
  if (ec)
    co_return transient(fmt::format("cannot resolve {}: {}", t.host, ec.message()));
  co_return results;
}

// A URL seen before in this chain of redirects, or one redirect too many. Errors: kHttp.
Result<void> check_redirects(const std::vector<std::string>& visited, const std::string& url,
                             unsigned max_redirects) {
  for (const auto& seen : visited) {
    if (seen == url) {
      std::string chain;
      for (const auto& hop : visited)
        chain += hop + " -> ";
      return Error{ErrorKind::kHttp, fmt::format("redirect loop: {}{}", chain, url)};
    }
  }
  if (visited.size() > max_redirects)
    return Error{ErrorKind::kHttp,
                 fmt::format("more than {} redirects, the last to {}", max_redirects, url)};
  return {};
}

// Resolves and connects `stream` under options.connect_timeout (each of the two).
asio::awaitable<Result<void>> connect(beast::tcp_stream& stream, const Target& target,
                                      const HttpOptions& options) {
  auto endpoints = co_await resolve(target, options.connect_timeout);
  if (!endpoints)
    co_return endpoints.error();
  stream.expires_after(options.connect_timeout);
  auto [ec, endpoint] =
      co_await stream.async_connect(*endpoints, asio::as_tuple(asio::use_awaitable));
  (void)endpoint;
  if (ec)
    co_return transient(
        fmt::format("cannot connect to {}:{}: {}", target.host, target.port,
                    ec == beast::error::timeout ? std::string("timed out") : ec.message()));
  co_return Result<void>{};
}

// The system CAs and options.ca_file. Errors: kInvalidInput (the CA file cannot be loaded).
Result<void> make_tls_context(std::optional<ssl::context>& context, const HttpOptions& options) {
  if (context)
    return {};
  context.emplace(ssl::context::tls_client);
  boost::system::error_code ec;
  context->set_default_verify_paths(ec);
  if (options.ca_file) {
    context->load_verify_file(options.ca_file->string(), ec);
    if (ec) {
      context.reset();
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("cannot load the CA bundle {}: {}", *options.ca_file, ec.message())};
    }
  }
  context->set_verify_mode(ssl::verify_peer);
  return {};
}

// The TLS handshake (under the connect timeout), then the exchange over TLS.
asio::awaitable<Result<Step>> exchange_tls(beast::tcp_stream tcp_stream, ssl::context& context,
                                           Exchange& exchange) {
  const Target& target = exchange.target;
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), context);
  if (!target.host_is_ip)
    SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(target.host.c_str()));
  stream.set_verify_callback(ssl::host_name_verification(target.host));
  beast::get_lowest_layer(stream).expires_after(exchange.options.connect_timeout);
  auto [ec] = co_await stream.async_handshake(ssl::stream_base::client,
                                              asio::as_tuple(asio::use_awaitable));
  if (ec)
    co_return tls_error(ec, stream.native_handle(), target);
  co_return co_await exchange.run(stream);
}

// Where a redirect from `url` to `location` leads (a relative Location is resolved against
// `url`). Errors: kHttp (an invalid Location).
Result<std::string> redirect_target(const std::string& url, const std::string& location) {
  auto reference = boost::urls::parse_uri_reference(location);
  boost::urls::url next;
  auto base = boost::urls::parse_uri(url);
  if (!reference || !base || !boost::urls::resolve(*base, *reference, next))
    return Error{ErrorKind::kHttp,
                 fmt::format("{} redirected to an invalid Location \"{}\"", url, location)};
  next.remove_fragment();
  return std::string(next.buffer());
}

}  // namespace

std::optional<ContentRange> parse_content_range(std::string_view value) {
  constexpr std::string_view kUnit = "bytes ";
  if (value.substr(0, kUnit.size()) != kUnit)
    return std::nullopt;
  value.remove_prefix(kUnit.size());
  const auto slash = value.find('/');
  if (slash == std::string_view::npos)
    return std::nullopt;
  const std::string_view range = value.substr(0, slash);
  const std::string_view total = value.substr(slash + 1);
  ContentRange result;
  if (total != "*") {
    result.total = parse_u64(total);
    if (!result.total)
      return std::nullopt;
  }
  if (range == "*")
    return result.total ? std::optional(result) : std::nullopt;
  const auto dash = range.find('-');
  if (dash == std::string_view::npos)
    return std::nullopt;
  result.first = parse_u64(range.substr(0, dash));
  result.last = parse_u64(range.substr(dash + 1));
  if (!result.first || !result.last || *result.last < *result.first)
    return std::nullopt;
  if (result.total && *result.last >= *result.total)
    return std::nullopt;
  return result;
}

bool is_transient_status(unsigned status) {
  switch (status) {
    case 408:
    case 425:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return true;
    default:
      return false;
  }
}

asio::awaitable<Result<void>> http_get(HttpOptions options, std::string url,
                                       std::optional<RangeRequest> range, OnHead on_head,
                                       OnBody on_body) {
  std::optional<ssl::context> tls_context;
  std::vector<std::string> visited;
  for (;;) {
    auto target = parse_target(url);
    if (!target)
      co_return target.error();
    if (auto ok = check_redirects(visited, url, options.max_redirects); !ok)
      co_return ok.error();
    visited.push_back(url);
    beast::tcp_stream stream(co_await asio::this_coro::executor);
    if (auto connected = co_await connect(stream, *target, options); !connected)
      co_return connected.error();
    Exchange exchange{options, *target, url, range, on_head, on_body};
    Result<Step> step = Done{};
    if (target->tls) {
      if (auto made = make_tls_context(tls_context, options); !made)
        co_return made.error();
      step = co_await exchange_tls(std::move(stream), *tls_context, exchange);
    } else {
      step = co_await exchange.run(stream);
    }
    if (!step)
      co_return step.error();
    if (std::holds_alternative<Done>(*step))
      co_return Result<void>{};
    auto next = redirect_target(url, std::get<Redirect>(*step).location);
    if (!next)
      co_return next.error();
    if (target->tls && !is_https(*next))
      co_return Error{ErrorKind::kHttp,
                      fmt::format("{} redirected to {}: a redirect from https to plain http is "
                                  "refused (the image would arrive without TLS); if plain http is "
                                  "meant, give the http URL itself",
                                  url, *next)};
    url = std::move(*next);
  }
}

}  // namespace berth::drive
