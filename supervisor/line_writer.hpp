#pragma once
// Lines to a file descriptor (berth's stdout or stderr, a pipe under Kubernetes) written by a
// thread of its own, so that a stalled reader of the pipe never blocks the event loop. The queue
// is bounded: when it is full, a line is dropped and counted instead of waiting.

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace berth {

class LineWriter {
 public:
  // Writes to `out` (stdout, stderr); at most `max_bytes` wait in the queue.
  explicit LineWriter(std::FILE* out, std::size_t max_bytes = 1024 * 1024);
  // Writes what is queued, then stops the thread.
  ~LineWriter();
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  // Queues `line` plus a newline; false (and counted) when the queue is full. Never blocks on the
  // pipe; thread-safe.
  bool write(std::string_view line);
  // Queues `text` as it is (it ends with its own newline); as write().
  bool write_raw(std::string text);

  std::uint64_t dropped() const;

 private:
  void run();

  std::FILE* out_;
  const std::size_t max_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest is ready
};

}  // namespace berth
