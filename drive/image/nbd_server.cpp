#include "drive/image/nbd_server.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <system_error>

#include "common/async.hpp"
#include "drive/image/nbd.hpp"

namespace berth::drive {

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace {

constexpr std::uint64_t kSector = 512;

// QEMU's client rounds an export's size up to 512 bytes and trims its last read to the size, but
// then waits for the untrimmed length of a simple reply (QEMU 7.2): it hangs on the tail of an
// unaligned image. So the export is announced padded to 512 bytes, the padding read as zeros.
std::uint64_t padded(std::uint64_t size) {
  return (size + kSector - 1) / kSector * kSector;
}

}  // namespace

asio::awaitable<Result<std::vector<std::uint8_t>>> NbdServer::read_padded(std::uint64_t offset,
                                                                          std::uint32_t length) {
  const auto size = export_.size;
  if (offset >= size)
    co_return std::vector<std::uint8_t>(length, 0);
  const auto inside = static_cast<std::uint32_t>(std::min<std::uint64_t>(length, size - offset));
  auto data = co_await export_.read(offset, inside);
  if (data)
    data->resize(length, 0);
  co_return data;
}

Result<std::shared_ptr<NbdServer>> NbdServer::listen(asio::any_io_executor executor,
                                                     NbdExport exported,
                                                     std::shared_ptr<spdlog::logger> log) {
  std::error_code removed;
  std::filesystem::remove(exported.socket, removed);
  stream_protocol::acceptor acceptor(executor);
  boost::system::error_code ec;
  const stream_protocol::endpoint endpoint(exported.socket.string());
  if (acceptor.open(endpoint.protocol(), ec); !ec)
    acceptor.bind(endpoint, ec);
  if (!ec)
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return system_error(fmt::format("listening on the NBD socket {}", exported.socket.string()),
                        ec);
  if (::chmod(exported.socket.c_str(), 0600) != 0)
    return system_error(fmt::format("chmod of {}", exported.socket.string()), errno);
  return std::shared_ptr<NbdServer>(new NbdServer(std::move(acceptor), std::move(exported), log));
}

void NbdServer::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  std::error_code removed;
  std::filesystem::remove(export_.socket, removed);
}

asio::awaitable<void> NbdServer::run() {
  auto self = shared_from_this();
  log_->debug("NBD {}: accepting", export_.socket.string());
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !acceptor_.is_open())
      break;
    if (ec) {
      log_->warn("NBD {}: accept: {}", export_.socket.string(), ec.message());
      continue;
    }
    const auto id = ++counters_.connections;
    log_->debug("NBD {}: connection {}", export_.socket.string(), id);
    auto executor = acceptor_.get_executor();
    asio::co_spawn(executor, serve(self, std::move(socket), id),
                   log_exceptions(log_, fmt::format("NBD connection {}", id)));
  }
}

asio::awaitable<void> NbdServer::serve(std::shared_ptr<NbdServer> self, Socket socket,
                                       std::uint64_t id) {
  (void)self;  // keeps the server alive while the connection lasts
  nbd::ServerSession session({export_.name, padded(export_.size)});
  std::vector<std::uint8_t> buffer(64 << 10);
  for (;;) {
    const auto out = session.take_output();
    if (!out.empty()) {
      auto [wec, written] = co_await asio::async_write(socket, asio::buffer(out),
                                                       asio::as_tuple(asio::use_awaitable));
      (void)written;
      if (wec)
        break;
    }
    if (session.closed())
      break;
    auto [ec, n] =
        co_await socket.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    if (ec)
      break;
    const auto before = session.refused_commands();
    session.feed(nbd::ByteView(buffer.data(), n));
    counters_.refused += session.refused_commands() - before;
    for (const auto& request : session.take_reads()) {
      ++counters_.reads;
      auto data = co_await read_padded(request.offset, request.length);
      if (data) {
        session.reply_read(request, *data);
        continue;
      }
      ++counters_.read_errors;
      log_->warn("NBD read of {} bytes at {}: {}", request.length, request.offset,
                 data.error().message);
      session.reply_error(request.cookie, nbd::kEio);
    }
  }
  if (!session.close_reason().empty())
    log_->warn("NBD connection {} closed: {}", id, session.close_reason());
}

}  // namespace berth::drive
