#include "qemu/agent/agent_client.hpp"

#include <array>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/async.hpp"

namespace berth::agent {
namespace asio = boost::asio;
using boost::system::error_code;
namespace errc = boost::system::errc;

// The right to use the socket, in the frame of the command that holds it: its destructor hands
// it on (or leaves the queue) however the command ends, a deadline's cancellation included.
class Client::Turn {
 public:
  explicit Turn(Client& client) : client_(client) {}
  Turn(const Turn&) = delete;
  Turn& operator=(const Turn&) = delete;
  ~Turn() {
    if (held_ || (waiter_ && waiter_->granted)) {
      client_.release_turn();
    } else if (waiter_) {
      auto& queue = client_.waiters_;
      std::erase(queue, waiter_);
    }
  }
  asio::awaitable<void> acquire() {
    if (!client_.busy_) {
      client_.busy_ = true;
      held_ = true;
      co_return;
    }
    waiter_ = std::make_shared<Waiter>(client_.executor_);
    waiter_->wake.expires_at(asio::steady_timer::time_point::max());
    client_.waiters_.push_back(waiter_);
    error_code ec;
    co_await waiter_->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (waiter_->granted) {
      held_ = true;
      waiter_.reset();
    }
  }
  bool held() const { return held_; }

 private:
  Client& client_;
  std::shared_ptr<Waiter> waiter_;
  bool held_ = false;
};

std::shared_ptr<Client> Client::create(asio::any_io_executor executor, std::filesystem::path socket,
                                       std::shared_ptr<spdlog::logger> log) {
  return std::shared_ptr<Client>(
      new Client(std::move(executor), std::move(socket), std::move(log)));
}

Client::Client(asio::any_io_executor executor, std::filesystem::path socket,
               std::shared_ptr<spdlog::logger> log)
    : executor_(executor), path_(std::move(socket)), log_(std::move(log)), socket_(executor) {}

asio::awaitable<CommandResult> Client::execute(std::string command, boost::json::object arguments,
                                               Duration timeout) {
  auto self = shared_from_this();
  auto work = run(serialize_command(command, arguments), Expect::kReply, {});
  auto result = co_await with_deadline(std::move(work), timeout);
  if (result)
    co_return std::move(*result);
  synced_ = false;  // a late reply may still come: the next command syncs first
  answering_ = false;
  log_->debug("guest agent: {} got no reply within {:.1f}s", command,
              std::chrono::duration<double>(timeout).count());
  co_return CommandResult{make_error_code(errc::timed_out), {}, {}};
}

asio::awaitable<CommandResult> Client::send(std::string command, boost::json::object arguments,
                                            Duration timeout, Duration grace) {
  auto self = shared_from_this();
  auto work = run(serialize_command(command, arguments), Expect::kNoReply, grace);
  auto result = co_await with_deadline(std::move(work), timeout + grace);
  if (result)
    co_return std::move(*result);
  synced_ = false;
  answering_ = false;
  co_return CommandResult{make_error_code(errc::timed_out), {}, {}};
}

asio::awaitable<CommandResult> Client::run(std::string line, Expect expect, Duration grace) {
  auto self = shared_from_this();
  Turn turn(*this);
  co_await turn.acquire();
  if (!turn.held())
    co_return CommandResult{make_error_code(errc::timed_out), {}, {}};
  if (auto ec = co_await ensure_synced())
    co_return CommandResult{ec, {}, {}};
  synced_ = false;  // until its reply has been read
  error_code ec;
  co_await asio::async_write(socket_, asio::buffer(line),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    lost(ec);
    co_return CommandResult{ec, {}, {}};
  }
  if (expect == Expect::kReply)
    co_return co_await read_reply();
  // Success has no reply; an error comes at once.
  auto reply = read_reply();
  auto error = co_await with_deadline(std::move(reply), grace);
  if (error)
    co_return std::move(*error);
  co_return CommandResult{};
}

asio::awaitable<error_code> Client::ensure_synced() {
  error_code ec;
  if (!socket_.is_open()) {
    co_await socket_.async_connect(path_.string(), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      socket_.close(ec);
      answering_ = false;
      co_return make_error_code(errc::not_connected);
    }
    buffer_.clear();
    synced_ = false;
  }
  if (synced_)
    co_return error_code{};
  const std::uint64_t id = ids_() >> 11;  // exact as a JSON number anywhere
  const auto handshake = serialize_sync(id);
  co_await asio::async_write(socket_, asio::buffer(handshake),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    lost(ec);
    co_return ec;
  }
  for (;;) {
    const auto scan = scan_sync(buffer_, id);
    buffer_.erase(0, scan.consumed);
    if (scan.state == SyncScan::State::kSynced) {
      synced_ = true;
      if (!answering_)
        log_->info("the guest agent answers");
      answering_ = true;
      co_return error_code{};
    }
    if (buffer_.size() > kMaxReplyBytes)
      buffer_.clear();  // an overlong line after a delimiter: not the reply
    if (auto read = co_await read_more())
      co_return read;
  }
}

asio::awaitable<CommandResult> Client::read_reply() {
  for (;;) {
    const auto end = buffer_.find('\n');
    if (end != std::string::npos) {
      const std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      if (line.find_first_not_of(" \t\r\xff") == std::string::npos)
        continue;  // blank, or a delimiter left over
      auto reply = parse_reply(line);
      if (auto* ret = std::get_if<Return>(&reply)) {
        synced_ = true;
        co_return CommandResult{{}, {}, std::move(ret->value)};
      }
      if (auto* error = std::get_if<Error>(&reply)) {
        synced_ = true;
        co_return CommandResult{
            {}, qmp::Error{0, std::move(error->error_class), std::move(error->description)}, {}};
      }
      log_->warn("the guest agent sent an unreadable reply: {}",
                 std::get<ParseError>(reply).reason);
      co_return CommandResult{make_error_code(errc::protocol_error), {}, {}};
    }
    if (buffer_.size() > kMaxReplyBytes) {
      log_->warn("the guest agent sent a reply longer than {} bytes; dropped", kMaxReplyBytes);
      buffer_.clear();
      co_return CommandResult{make_error_code(errc::protocol_error), {}, {}};
    }
    if (auto ec = co_await read_more())
      co_return CommandResult{ec, {}, {}};
  }
}

asio::awaitable<error_code> Client::read_more() {
  std::array<char, 16384> chunk;
  error_code ec;
  const std::size_t n = co_await socket_.async_read_some(
      asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (ec != asio::error::operation_aborted)
      lost(ec);
    co_return ec;
  }
  buffer_.append(chunk.data(), n);
  co_return error_code{};
}

void Client::release_turn() {
  if (waiters_.empty()) {
    busy_ = false;
    return;
  }
  auto next = waiters_.front();
  waiters_.pop_front();
  next->granted = true;
  next->wake.cancel();
}

void Client::lost(error_code ec) {
  if (answering_)
    log_->warn("the guest agent's socket closed: {}", ec.message());
  close();
}

void Client::close() {
  error_code ignored;
  socket_.close(ignored);
  buffer_.clear();
  synced_ = false;
  answering_ = false;
}

}  // namespace berth::agent
