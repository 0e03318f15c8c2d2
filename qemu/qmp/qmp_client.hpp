#pragma once
// An asynchronous QMP client on a unix socket: greeting and capability negotiation, commands with
// ids and per-command deadlines, events delivered to subscribers, and a close notification (a lost
// socket means QEMU is gone or broken).

#include <spdlog/logger.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "qemu/qmp/qmp_protocol.hpp"

namespace berth::qmp {

// The outcome of one command: a transport error (timed_out, not_connected, eof...), a QMP error,
// or the returned value.
struct CommandResult {
  boost::system::error_code transport;
  std::optional<Error> error;
  boost::json::value value;

  bool ok() const { return !transport && !error; }
  // "timed out" / "GenericError: ..." / "ok".
  std::string describe() const;
};

class Client : public std::enable_shared_from_this<Client> {
 public:
  using EventHandler = std::function<void(const Event&)>;
  using CloseHandler = std::function<void(boost::system::error_code)>;
  using Duration = std::chrono::steady_clock::duration;

  static std::shared_ptr<Client> create(boost::asio::any_io_executor executor,
                                        std::shared_ptr<spdlog::logger> log);

  // Connects to `socket`, retrying while it does not exist or refuses (QEMU creates it shortly
  // after it starts) for at most `within`; reads the greeting and negotiates capabilities.
  boost::asio::awaitable<boost::system::error_code> connect(std::filesystem::path socket,
                                                            Duration within);

  // Sends one command and waits for its reply for at most `timeout`.
  boost::asio::awaitable<CommandResult> execute(std::string command,
                                                boost::json::object arguments = {},
                                                Duration timeout = std::chrono::seconds(5));

  // Every event received from now on goes to `handler`; returns a token for unsubscribe.
  std::uint64_t subscribe(EventHandler handler);
  void unsubscribe(std::uint64_t token);
  // Called once when the connection ends after a successful connect (not after close()).
  void on_close(CloseHandler handler) { on_close_ = std::move(handler); }
  // Closes the socket; pending commands complete with operation_aborted.
  void close();
  bool connected() const { return connected_; }
  // QEMU's version from the greeting, e.g. "7.2.19".
  const std::string& qemu_version() const { return version_; }

 private:
  struct Pending {
    explicit Pending(boost::asio::any_io_executor executor) : wake(std::move(executor)) {}
    boost::asio::steady_timer wake;
    std::optional<CommandResult> result;
  };

  Client(boost::asio::any_io_executor executor, std::shared_ptr<spdlog::logger> log);
  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> write_loop();
  void dispatch(Message message);
  void fail_all(boost::system::error_code ec);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string read_buffer_;
  std::deque<std::string> write_queue_;
  bool writing_ = false;
  bool connected_ = false;
  bool closing_ = false;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  std::uint64_t next_token_ = 1;
  std::map<std::uint64_t, EventHandler> subscribers_;
  CloseHandler on_close_;
  std::string version_;
};

// The listening unix socket QEMU's QMP monitor inherits (`-chardev socket,fd=N,server=on`), made
// by berth so QEMU needs no write access to `path`'s folder: a stale socket at `path` is removed,
// the new one is bound, made 0600 and listens; the descriptor is close-on-exec, and the caller
// closes it once QEMU has it. Errors: kInvalidInput (path longer than a socket address holds),
// kSystem.
berth::Result<int> listen_socket(const std::filesystem::path& path);

}  // namespace berth::qmp
