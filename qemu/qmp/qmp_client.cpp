#include "qemu/qmp/qmp_client.hpp"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/async.hpp"

namespace berth::qmp {
namespace asio = boost::asio;
using boost::system::error_code;
namespace errc = boost::system::errc;

namespace {
constexpr std::size_t kMaxLine = 16 * 1024 * 1024;  // query results can be large, not unbounded
}

std::string CommandResult::describe() const {
  if (transport)
    return transport.message();
  if (error)
    return fmt::format("{}: {}", error->error_class, error->description);
  return "ok";
}

std::shared_ptr<Client> Client::create(asio::any_io_executor executor,
                                       std::shared_ptr<spdlog::logger> log) {
  return std::shared_ptr<Client>(new Client(std::move(executor), std::move(log)));
}

Client::Client(asio::any_io_executor executor, std::shared_ptr<spdlog::logger> log)
    : executor_(executor), log_(std::move(log)), socket_(executor) {}

asio::awaitable<error_code> Client::connect(std::filesystem::path path, Duration within) {
  auto self = shared_from_this();
  const auto deadline = std::chrono::steady_clock::now() + within;
  asio::steady_timer timer(executor_);
  error_code ec;
  for (;;) {
    socket_ = asio::local::stream_protocol::socket(executor_);
    co_await socket_.async_connect(path.string(), asio::redirect_error(asio::use_awaitable, ec));
    if (!ec)
      break;
    if (closing_)
      co_return asio::error::operation_aborted;
    if (std::chrono::steady_clock::now() >= deadline)
      co_return ec;
    timer.expires_after(std::chrono::milliseconds(25));
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (closing_)
      co_return asio::error::operation_aborted;
  }

  // The greeting, within what is left of the deadline (at least a second).
  std::size_t n = 0;
  auto read_greeting = [&]() -> asio::awaitable<void> {
    n = co_await asio::async_read_until(socket_, asio::dynamic_buffer(read_buffer_, kMaxLine), '\n',
                                        asio::redirect_error(asio::use_awaitable, ec));
  };
  const auto left =
      std::max<Duration>(deadline - std::chrono::steady_clock::now(), std::chrono::seconds(1));
  if (!co_await with_deadline(read_greeting(), left))
    co_return make_error_code(errc::timed_out);
  if (ec)
    co_return ec == asio::error::operation_aborted ? make_error_code(errc::timed_out) : ec;
  auto greeting = parse_message(std::string_view(read_buffer_).substr(0, n));
  read_buffer_.erase(0, n);
  const auto* hello = std::get_if<Greeting>(&greeting);
  if (hello == nullptr)
    co_return make_error_code(errc::protocol_error);
  if (const auto* v = hello->qmp.if_contains("version"); v && v->is_object()) {
    if (const auto* q = v->get_object().if_contains("qemu"); q && q->is_object()) {
      const auto& o = q->get_object();
      auto num = [&](const char* key) {
        const auto* x = o.if_contains(key);
        return x && x->is_int64() ? x->get_int64() : 0;
      };
      version_ = fmt::format("{}.{}.{}", num("major"), num("minor"), num("micro"));
    }
  }
  connected_ = true;
  asio::co_spawn(executor_, read_loop(), log_exceptions(log_, "QMP read loop"));
  auto result = co_await execute("qmp_capabilities", {}, std::chrono::seconds(5));
  if (!result.ok()) {
    log_->error("QMP capability negotiation failed: {}", result.describe());
    close();
    co_return result.transport ? result.transport : make_error_code(errc::protocol_error);
  }
  co_return error_code{};
}

asio::awaitable<CommandResult> Client::execute(std::string command, boost::json::object arguments,
                                               Duration timeout) {
  auto self = shared_from_this();
  if (!connected_)
    co_return CommandResult{make_error_code(errc::not_connected), {}, {}};
  const std::uint64_t id = next_id_++;
  auto pending = std::make_shared<Pending>(executor_);
  pending_[id] = pending;
  write_queue_.push_back(serialize_command(command, arguments, id));
  if (!writing_)
    asio::co_spawn(executor_, write_loop(), log_exceptions(log_, "QMP write loop"));

  // The reply (or fail_all) cancels `wake`, which never expires by itself; the deadline cancels
  // the wait.
  pending->wake.expires_at(asio::steady_timer::time_point::max());
  error_code ec;
  co_await with_deadline(pending->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec)),
                         timeout);
  pending_.erase(id);
  if (pending->result)
    co_return std::move(*pending->result);
  log_->warn("QMP {} got no reply within {:.1f}s", command,
             std::chrono::duration<double>(timeout).count());
  co_return CommandResult{make_error_code(errc::timed_out), {}, {}};
}

asio::awaitable<void> Client::write_loop() {
  auto self = shared_from_this();
  writing_ = true;
  while (!write_queue_.empty() && connected_) {
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(write_queue_.front()),
                               asio::redirect_error(asio::use_awaitable, ec));
    write_queue_.pop_front();
    if (ec)
      break;  // the read loop sees the broken socket and fails everything
  }
  writing_ = false;
}

asio::awaitable<void> Client::read_loop() {
  auto self = shared_from_this();
  error_code ec;
  while (connected_) {
    const std::size_t n =
        co_await asio::async_read_until(socket_, asio::dynamic_buffer(read_buffer_, kMaxLine), '\n',
                                        asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    auto message = parse_message(std::string_view(read_buffer_).substr(0, n));
    read_buffer_.erase(0, n);
    dispatch(std::move(message));
  }
  if (!connected_)
    co_return;  // close() was called
  connected_ = false;
  fail_all(ec);
  if (!closing_ && on_close_)
    on_close_(ec);
}

void Client::dispatch(Message message) {
  if (auto* event = std::get_if<Event>(&message)) {
    auto subscribers = subscribers_;  // a handler may (un)subscribe
    for (auto& [token, handler] : subscribers)
      handler(*event);
    return;
  }
  auto complete = [this](std::uint64_t id, CommandResult result) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      log_->debug("QMP reply for unknown or expired command id {}", id);
      return;
    }
    it->second->result = std::move(result);
    it->second->wake.cancel();
  };
  if (auto* ret = std::get_if<Return>(&message)) {
    complete(ret->id, CommandResult{{}, {}, std::move(ret->value)});
  } else if (auto* error = std::get_if<Error>(&message)) {
    if (error->id == 0)
      log_->warn("QMP error without id: {}: {}", error->error_class, error->description);
    else
      complete(error->id, CommandResult{{}, *error, {}});
  } else if (auto* bad = std::get_if<ParseError>(&message)) {
    log_->warn("QMP sent an unreadable message: {}", bad->reason);
  }
}

void Client::fail_all(error_code ec) {
  if (!ec)
    ec = make_error_code(errc::not_connected);
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p->result = CommandResult{ec, {}, {}};
    p->wake.cancel();
  }
}

std::uint64_t Client::subscribe(EventHandler handler) {
  subscribers_[next_token_] = std::move(handler);
  return next_token_++;
}

void Client::unsubscribe(std::uint64_t token) {
  subscribers_.erase(token);
}

void Client::close() {
  closing_ = true;
  const bool was_connected = connected_;
  connected_ = false;
  error_code ignored;
  socket_.close(ignored);
  if (was_connected)
    fail_all(asio::error::operation_aborted);
}

berth::Result<int> listen_socket(const std::filesystem::path& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  if (text.size() >= sizeof address.sun_path)
    return berth::invalid_input(
        fmt::format("QMP socket {}: the path has {} bytes, a unix socket at most {}; choose a "
                    "shorter BERTH_RUNTIME_DIR",
                    text, text.size(), sizeof address.sun_path - 1));
  std::copy(text.begin(), text.end(), address.sun_path);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return berth::system_error("QMP socket: socket()", errno);
  ::unlink(text.c_str());  // a stale socket from a crashed run
  // 0600 at once (a connect needs write permission on the socket): the folder is traversable for
  // QEMU's group, and no QEMU of that group runs while this socket is made.
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0
      || ::chmod(text.c_str(), 0600) != 0 || ::listen(fd, 4) != 0) {
    const int error = errno;
    ::close(fd);
    return berth::system_error(fmt::format("QMP socket {}", text), error);
  }
  return fd;
}

}  // namespace berth::qmp
