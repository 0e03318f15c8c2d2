#pragma once
// The read-only NBD export of a base image on a unix socket (IMG_LAZY): QEMU's pet disk names it
// as its backing node while the image is still filling. Each connection runs the pure codec
// (nbd.hpp) and answers reads through `read`, one request at a time.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace berth::drive {

// The bytes [offset, offset + length) of the export, or an error (answered EIO).
using NbdRead = std::function<boost::asio::awaitable<Result<std::vector<std::uint8_t>>>(
    std::uint64_t offset, std::uint32_t length)>;

struct NbdExport {
  std::filesystem::path socket;  // created here (a stale file is replaced), mode 0600
  std::string name;              // the export name clients ask for
  std::uint64_t size = 0;        // announced rounded up to 512 bytes, the padding read as zeros
  NbdRead read;
};

// Counters of one server, for the log and /metrics.
struct NbdCounters {
  std::uint64_t connections = 0;
  std::uint64_t reads = 0;
  std::uint64_t read_errors = 0;  // answered EIO
  std::uint64_t refused = 0;      // writes, unknown commands, bad ranges (the codec's)
};

// Binds the socket now (errors: kSystem), then serves connections until the returned server's
// io_context stops or close() is called.
class NbdServer : public std::enable_shared_from_this<NbdServer> {
 public:
  static Result<std::shared_ptr<NbdServer>> listen(boost::asio::any_io_executor executor,
                                                   NbdExport exported,
                                                   std::shared_ptr<spdlog::logger> log);
  // Accepts connections until close(); spawn it with log_exceptions.
  boost::asio::awaitable<void> run();
  // Stops accepting and removes the socket file; open connections end at their next read.
  void close();
  const NbdCounters& counters() const { return counters_; }

 private:
  using Socket = boost::asio::local::stream_protocol::socket;
  NbdServer(boost::asio::local::stream_protocol::acceptor acceptor, NbdExport exported,
            std::shared_ptr<spdlog::logger> log)
      : acceptor_(std::move(acceptor)), export_(std::move(exported)), log_(std::move(log)) {}
  boost::asio::awaitable<void> serve(std::shared_ptr<NbdServer> self, Socket socket,
                                     std::uint64_t id);
  // export_.read, and zeros for the padding past export_.size (see nbd_server.cpp).
  boost::asio::awaitable<Result<std::vector<std::uint8_t>>> read_padded(std::uint64_t offset,
                                                                        std::uint32_t length);

  boost::asio::local::stream_protocol::acceptor acceptor_;
  NbdExport export_;
  std::shared_ptr<spdlog::logger> log_;
  NbdCounters counters_;
};

}  // namespace berth::drive
