#include "supervisor/console/serial_console.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace berth {
namespace asio = boost::asio;
using boost::system::error_code;

ConsoleViewer::ConsoleViewer(const asio::any_io_executor& executor)
    : ready_(executor, asio::steady_timer::time_point::max()) {}

std::string ConsoleViewer::take() {
  return std::exchange(pending_, {});
}

asio::awaitable<void> ConsoleViewer::wait() {
  while (pending_.empty() && !closed_) {
    error_code ec;
    co_await ready_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    const auto cancelled = (co_await asio::this_coro::cancellation_state).cancelled();
    if (cancelled != asio::cancellation_type::none)
      co_return;  // the session is ending (the other half of its `||` returned)
  }
}

void ConsoleViewer::push(std::string_view bytes, const SerialConsoleLimits& limits,
                         SerialConsoleCounters& counters) {
  if (closed_)
    return;
  if (pending_.size() + bytes.size() > limits.viewer_lag) {
    // Too far behind: what waits is dropped for a marker, so that this viewer never holds the
    // others (or berth's memory) back; it goes on with the newest output.
    std::uint64_t skipped = pending_.size();
    if (bytes.size() > limits.viewer_lag) {
      skipped += bytes.size() - limits.viewer_lag;
      bytes.remove_prefix(bytes.size() - limits.viewer_lag);
    }
    counters.viewer_skipped_bytes += skipped;
    pending_ = skip_marker(skipped);
  }
  pending_.append(bytes);
  ready_.cancel();
}

void ConsoleViewer::close() {
  closed_ = true;
  ready_.cancel();
}

std::string skip_marker(std::uint64_t skipped_bytes) {
  return fmt::format("\r\n[berth: {} bytes of console output skipped: this viewer fell behind]\r\n",
                     skipped_bytes);
}

SerialConsole::SerialConsole(asio::any_io_executor executor, SerialConsoleLimits limits)
    : executor_(std::move(executor)),
      limits_(limits),
      input_ready_(executor_, asio::steady_timer::time_point::max()) {}

SerialConsole::~SerialConsole() {
  for (const auto& viewer : viewers_)
    viewer->close();
  close_guest();
}

void SerialConsole::output(std::string_view bytes) {
  if (bytes.empty())
    return;
  scrollback_.append(bytes);
  if (scrollback_.size() > limits_.scrollback)
    scrollback_.erase(0, scrollback_.size() - limits_.scrollback);
  if (sink_)
    sink_(bytes);
  for (const auto& viewer : viewers_)
    viewer->push(bytes, limits_, counters_);
}

void SerialConsole::output_ended() {
  if (sink_end_)
    sink_end_();
}

std::shared_ptr<ConsoleViewer> SerialConsole::attach() {
  auto viewer = std::make_shared<ConsoleViewer>(executor_);
  viewer->pending_ = scrollback_;
  viewers_.push_back(viewer);
  return viewer;
}

void SerialConsole::detach(const std::shared_ptr<ConsoleViewer>& viewer) {
  viewer->close();
  viewers_.remove(viewer);
}

std::size_t SerialConsole::input(std::string_view bytes) {
  const std::size_t room = limits_.input - std::min(limits_.input, input_.size());
  const std::size_t taken = std::min(room, bytes.size());
  counters_.input_dropped_bytes += bytes.size() - taken;
  if (taken > 0) {
    input_.append(bytes.substr(0, taken));
    input_ready_.cancel();
  }
  return taken;
}

std::string SerialConsole::take_input() {
  return std::exchange(input_, {});
}

std::uint64_t SerialConsole::attach_guest(int fd) {
  close_guest();
  guest_in_ = std::make_shared<asio::posix::stream_descriptor>(executor_, fd);
  asio::co_spawn(executor_, write_input(guest_in_, alive_), asio::detached);
  return ++guest_;
}

void SerialConsole::guest_gone(std::uint64_t guest) {
  if (guest == guest_)
    close_guest();
}

void SerialConsole::close_guest() {
  if (!guest_in_)
    return;
  error_code ignored;
  guest_in_->close(ignored);
  guest_in_.reset();
  input_ready_.cancel();  // wakes the writer, which sees its descriptor gone
}

// Spawned detached: after every suspension it checks `alive` before touching a member.
asio::awaitable<void> SerialConsole::write_input(std::shared_ptr<asio::posix::stream_descriptor> to,
                                                 std::weak_ptr<bool> alive) {
  while (!alive.expired() && guest_in_ == to) {
    if (input_.empty()) {
      error_code ec;
      co_await input_ready_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    const std::string bytes = take_input();
    error_code ec;
    co_await asio::async_write(*to, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;  // QEMU closed its stdin or exited; guest_gone() follows
  }
}

}  // namespace berth
