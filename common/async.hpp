#pragma once
// The house idioms for coroutines on the event loop, in one place:
//   - every co_spawn gets a completion that logs an exception (`log_exceptions`), never `detached`;
//   - a deadline is Asio's awaitable operator `||` racing the work against a timer
//     (`with_deadline`): whichever finishes first cancels the other;
//   - work that can block the loop thread for more than ~1 ms (hashing, fsync of a large file)
//     runs on a worker thread and is awaited (`run_blocking`).

#include <spdlog/logger.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace berth {

// A co_spawn completion handler that logs how the coroutine ended if it threw (at error, with
// `what`), and otherwise does nothing. Use it instead of asio::detached:
//   asio::co_spawn(ex, serve(socket), log_exceptions(log_, "DNS TCP session"));
class log_exceptions {
 public:
  log_exceptions(std::shared_ptr<spdlog::logger> log, std::string what)
      : log_(std::move(log)), what_(std::move(what)) {}

  void operator()(std::exception_ptr error) const { report(error); }
  template <class T>
  void operator()(std::exception_ptr error, T&&) const {
    report(error);
  }

 private:
  void report(std::exception_ptr error) const {
    if (!error)
      return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_->error("{} ended by an exception: {}", what_, e.what());
    } catch (...) {
      log_->error("{} ended by an unknown exception", what_);
    }
  }
  std::shared_ptr<spdlog::logger> log_;
  std::string what_;
};

namespace detail {
// The work's value in a struct of its own: Asio's `||` flattens a std::variant result into the
// variant it returns, which would make "which side won" ambiguous.
template <class T>
struct Finished {
  T value;
};
template <class T>
boost::asio::awaitable<Finished<T>> finish(boost::asio::awaitable<T> work) {
  T value = co_await std::move(work);  // not inside the braces: GCC 12 miscompiles that
  co_return Finished<T>{std::move(value)};
}
}  // namespace detail

// Runs `work` until it completes or `limit` passes, whichever comes first; the loser is cancelled
// (its pending operation completes with operation_aborted). Returns the work's value, or nullopt
// when the deadline won.
template <class T>
boost::asio::awaitable<std::optional<T>> with_deadline(boost::asio::awaitable<T> work,
                                                       std::chrono::steady_clock::duration limit) {
  using namespace boost::asio::experimental::awaitable_operators;
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, limit);
  auto winner =
      co_await (detail::finish(std::move(work)) || timer.async_wait(boost::asio::use_awaitable));
  if (winner.index() == 0)
    co_return std::move(std::get<0>(winner).value);
  co_return std::nullopt;
}

// The same for work without a value: true when it completed in time.
inline boost::asio::awaitable<bool> with_deadline(boost::asio::awaitable<void> work,
                                                  std::chrono::steady_clock::duration limit) {
  using namespace boost::asio::experimental::awaitable_operators;
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, limit);
  auto winner = co_await (std::move(work) || timer.async_wait(boost::asio::use_awaitable));
  co_return winner.index() == 0;
}

// The executor of Berth's worker threads (two, started on first use): for blocking work only,
// never for anything that touches loop state.
boost::asio::any_io_executor blocking_executor();

// Runs `fn()` on a worker thread and resumes the caller on its own executor with the result. `fn`
// must own (or copy) everything it touches; an exception it throws is rethrown to the caller.
namespace detail {
// `fn` is a parameter of a named coroutine, so it lives in the coroutine frame: GCC 12 destroys
// the captures of a temporary coroutine lambda twice.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F>> invoke(F fn) {
  co_return fn();
}
}  // namespace detail

template <class F>
auto run_blocking(F fn) -> boost::asio::awaitable<std::invoke_result_t<F>> {
  auto spawned = boost::asio::co_spawn(blocking_executor(), detail::invoke(std::move(fn)),
                                       boost::asio::use_awaitable);
  co_return co_await std::move(spawned);
}

}  // namespace berth
