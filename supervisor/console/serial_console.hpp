#pragma once
// The guest's serial console (ttyS0) as a hub: QEMU's output fans out to berth's stdout and to
// every viewer (the browser's serial tab), each new viewer first gets the recent scrollback; input
// from berth's stdin and from every viewer is queued, bounded, for QEMU's stdin. One thread (the
// loop's); bounded everywhere, so a stalled viewer or a flood of keystrokes never blocks the loop.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>

namespace berth {

struct SerialConsoleLimits {
  std::size_t scrollback = 64 * 1024;   // replayed to a new viewer
  std::size_t viewer_lag = 256 * 1024;  // a viewer further behind skips ahead
  std::size_t input = 64 * 1024;        // keystrokes waiting for QEMU; excess is dropped
};

struct SerialConsoleCounters {
  std::uint64_t input_dropped_bytes = 0;   // input beyond SerialConsoleLimits::input
  std::uint64_t viewer_skipped_bytes = 0;  // output slow viewers never got
};

class SerialConsole;

// One viewer's queue of output. Taken by the viewer's session; closed when the hub goes.
class ConsoleViewer {
 public:
  explicit ConsoleViewer(const boost::asio::any_io_executor& executor);
  // The output waiting for this viewer (emptied).
  std::string take();
  // Until output waits, the viewer is closed or the awaiting coroutine is cancelled.
  boost::asio::awaitable<void> wait();
  bool closed() const { return closed_; }

 private:
  friend class SerialConsole;
  void push(std::string_view bytes, const SerialConsoleLimits& limits,
            SerialConsoleCounters& counters);
  void close();

  std::string pending_;
  boost::asio::steady_timer ready_;  // a condition: cancelled when pending_ grows or on close
  bool closed_ = false;
};

// The marker a viewer sees in place of output it was too slow to take.
std::string skip_marker(std::uint64_t skipped_bytes);

class SerialConsole {
 public:
  using Sink = std::function<void(std::string_view)>;

  explicit SerialConsole(boost::asio::any_io_executor executor, SerialConsoleLimits limits = {});
  ~SerialConsole();
  SerialConsole(const SerialConsole&) = delete;
  SerialConsole& operator=(const SerialConsole&) = delete;

  // What the guest wrote: into the scrollback, to the sink (berth's stdout), to every viewer.
  void output(std::string_view bytes);
  // The sink for output (one; berth's stdout) and what ends it (QEMU's output ended: a partial
  // last line is written out).
  void set_sink(Sink sink, std::function<void()> end = {}) {
    sink_ = std::move(sink);
    sink_end_ = std::move(end);
  }
  // QEMU's output ended (it exited): ends the sink's partial line.
  void output_ended();

  // A new viewer, with the scrollback already waiting for it; detach it when done.
  std::shared_ptr<ConsoleViewer> attach();
  void detach(const std::shared_ptr<ConsoleViewer>& viewer);
  std::size_t viewers() const { return viewers_.size(); }

  // Bytes for the guest's serial input; what does not fit the queue is dropped and counted.
  // Returns the number of bytes queued.
  std::size_t input(std::string_view bytes);
  // The queued input (emptied; for tests and the writer).
  std::string take_input();

  // QEMU's stdin: a pipe's write end (the hub owns it and writes the queued input to it, without
  // blocking); replaces the previous one. Returns its number for guest_gone(), which closes it
  // (QEMU exited) unless another has replaced it.
  std::uint64_t attach_guest(int fd);
  void guest_gone(std::uint64_t guest);

  std::string scrollback() const { return scrollback_; }
  const SerialConsoleCounters& counters() const { return counters_; }

 private:
  void close_guest();
  boost::asio::awaitable<void> write_input(
      std::shared_ptr<boost::asio::posix::stream_descriptor> to, std::weak_ptr<bool> alive);

  boost::asio::any_io_executor executor_;
  SerialConsoleLimits limits_;
  SerialConsoleCounters counters_;
  Sink sink_;
  std::function<void()> sink_end_;
  std::string scrollback_;
  std::list<std::shared_ptr<ConsoleViewer>> viewers_;
  std::string input_;
  boost::asio::steady_timer input_ready_;  // a condition: cancelled when input_ grows
  std::shared_ptr<boost::asio::posix::stream_descriptor> guest_in_;
  std::uint64_t guest_ = 0;  // the number of the last attach_guest
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace berth
