#pragma once
// An asynchronous client of the QEMU guest agent on the unix socket of the VM's
// org.qemu.guest_agent.0 port. Commands run one at a time (the agent has no ids), each under a
// deadline that covers waiting for its turn, a reconnect and the handshake. A command is sent only
// after a guest-sync-delimited handshake succeeded since the last doubt (a timeout, a reconnect),
// so a command is never left queued for an agent that is not running. The socket is reconnected
// after QEMU restarts; a guest reboot or agent restart only makes commands time out until the
// agent answers a handshake again.

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
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "qemu/agent/agent_protocol.hpp"
#include "qemu/qmp/qmp_client.hpp"

namespace berth::agent {

// The outcome of one command, in QMP's shape: a transport error (timed_out, not_connected, eof,
// protocol_error for an unreadable reply), the agent's error (class and description; id 0), or
// the returned value.
using CommandResult = qmp::CommandResult;

class Client : public std::enable_shared_from_this<Client> {
 public:
  using Duration = std::chrono::steady_clock::duration;

  // A client of the agent socket at `socket` (QEMU listens there); connects on first use.
  static std::shared_ptr<Client> create(boost::asio::any_io_executor executor,
                                        std::filesystem::path socket,
                                        std::shared_ptr<spdlog::logger> log);

  // Runs one command and waits for its reply, all within `timeout`.
  boost::asio::awaitable<CommandResult> execute(std::string command,
                                                boost::json::object arguments = {},
                                                Duration timeout = std::chrono::seconds(5));
  // Sends one command that has no reply when it succeeds (guest-shutdown): after a handshake,
  // within `timeout`; an agent error that arrives within `grace` after it is the result.
  boost::asio::awaitable<CommandResult> send(std::string command, boost::json::object arguments,
                                             Duration timeout, Duration grace);

  // Whether the last command or handshake got an answer from the agent.
  bool answering() const { return answering_; }
  // Closes the socket; a later command connects again.
  void close();

 private:
  struct Waiter {
    explicit Waiter(boost::asio::any_io_executor executor) : wake(std::move(executor)) {}
    boost::asio::steady_timer wake;
    bool granted = false;
  };
  class Turn;
  enum class Expect { kReply, kNoReply };

  Client(boost::asio::any_io_executor executor, std::filesystem::path socket,
         std::shared_ptr<spdlog::logger> log);
  boost::asio::awaitable<CommandResult> run(std::string line, Expect expect, Duration grace);
  boost::asio::awaitable<boost::system::error_code> ensure_synced();
  boost::asio::awaitable<boost::system::error_code> read_more();
  boost::asio::awaitable<CommandResult> read_reply();
  void release_turn();
  void lost(boost::system::error_code ec);

  boost::asio::any_io_executor executor_;
  std::filesystem::path path_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string buffer_;
  bool synced_ = false;
  bool answering_ = false;
  bool busy_ = false;
  std::deque<std::shared_ptr<Waiter>> waiters_;
  std::mt19937_64 ids_{std::random_device{}()};
};

}  // namespace berth::agent
