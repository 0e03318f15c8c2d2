#include "supervisor/line_writer.hpp"

namespace berth {

LineWriter::LineWriter(std::FILE* out, std::size_t max_bytes)
    : out_(out), max_bytes_(max_bytes), thread_([this] { run(); }) {}

LineWriter::~LineWriter() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool LineWriter::write(std::string_view line) {
  std::string text;
  text.reserve(line.size() + 1);
  text.append(line);
  text.push_back('\n');
  return write_raw(std::move(text));
}

bool LineWriter::write_raw(std::string text) {
  {
    std::lock_guard lock(mutex_);
    if (queued_bytes_ + text.size() > max_bytes_) {
      ++dropped_;
      return false;
    }
    queued_bytes_ += text.size();
    queue_.push_back(std::move(text));
  }
  wake_.notify_one();
  return true;
}

std::uint64_t LineWriter::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

void LineWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty())
      return;  // stopping, and everything is written
    std::deque<std::string> batch;
    batch.swap(queue_);
    queued_bytes_ = 0;
    lock.unlock();
    for (const auto& text : batch)
      std::fwrite(text.data(), 1, text.size(), out_);
    std::fflush(out_);
    lock.lock();
  }
}

}  // namespace berth
