#include "supervisor/console/stdio_console.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "supervisor/logging.hpp"

namespace berth {
namespace asio = boost::asio;

namespace {

// The terminal settings berth found on stdin, while it is in raw mode.
std::mutex terminal_mutex;
std::optional<termios> saved_terminal;

// Raw input (no line editing, no echo, no signals from Ctrl-C / Ctrl-Z / Ctrl-\, no flow control,
// CR not turned into NL) with output post-processing kept, so that berth's own log lines, which
// end in a bare NL, still start at the left margin.
bool make_raw(int fd) {
  termios current{};
  if (::tcgetattr(fd, &current) != 0)
    return false;
  termios raw = current;
  ::cfmakeraw(&raw);
  raw.c_oflag |= OPOST | ONLCR;
  {
    std::lock_guard lock(terminal_mutex);
    if (!saved_terminal)
      saved_terminal = current;
  }
  static const bool registered = std::atexit(restore_stdin_terminal) == 0;
  (void)registered;
  return ::tcsetattr(fd, TCSANOW, &raw) == 0;
}

// The length of the UTF-8 sequence at `text`'s start, 0 when it is not one.
std::size_t utf8_sequence(std::string_view text) {
  const auto byte = [&text](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80)
    return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range (overlongs, surrogates out)
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;
    high = lead == 0xED ? 0x9F : 0xBF;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;
    high = lead == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high)
    return 0;
  for (std::size_t i = 2; i < length; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xBF)
      return 0;
  return length;
}

}  // namespace

void restore_stdin_terminal() {
  std::lock_guard lock(terminal_mutex);
  if (saved_terminal)
    ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved_terminal);
}

ConsoleOutput console_output_for(bool stdout_is_tty, LogFormat format) {
  if (stdout_is_tty)
    return ConsoleOutput::kRaw;
  return format == LogFormat::kJson ? ConsoleOutput::kJson : ConsoleOutput::kLines;
}

StdinKind classify_stdin(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return StdinKind::kNone;
  if (S_ISCHR(st.st_mode))
    return ::isatty(fd) ? StdinKind::kTerminal : StdinKind::kNone;
  if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
    return StdinKind::kPipe;
  return StdinKind::kNone;
}

std::vector<std::string> LineSplitter::feed(std::string_view bytes) {
  std::vector<std::string> lines;
  for (;;) {
    const auto nl = bytes.find('\n');
    const std::size_t room = max_line_ - std::min(max_line_, pending_.size());
    if (nl == std::string_view::npos && bytes.size() <= room) {
      pending_.append(bytes);
      return lines;
    }
    if (nl != std::string_view::npos && nl <= room) {
      pending_.append(bytes.substr(0, nl));
      bytes.remove_prefix(nl + 1);
    } else {
      pending_.append(bytes.substr(0, room));  // too long: cut here
      bytes.remove_prefix(room);
    }
    if (!pending_.empty() && pending_.back() == '\r')
      pending_.pop_back();
    lines.push_back(std::exchange(pending_, {}));
  }
}

std::optional<std::string> LineSplitter::flush() {
  if (pending_.empty())
    return std::nullopt;
  if (pending_.back() == '\r')
    pending_.pop_back();
  return std::exchange(pending_, {});
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t n = utf8_sequence(text);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, n));
      text.remove_prefix(n);
    }
  }
  return out;
}

StdioConsole::StdioConsole(asio::io_context& io, SerialConsole& console, LineWriter& out,
                           ConsoleOutput mode, std::shared_ptr<spdlog::logger> log)
    : io_(io), console_(console), out_(out), mode_(mode), log_(std::move(log)) {
  console_.set_sink([this](std::string_view bytes) { write(bytes); }, [this] { end_line(); });
}

StdioConsole::~StdioConsole() {
  console_.set_sink({});
  if (reader_.joinable()) {
    ::close(stop_[1]);  // poll() in the reader sees the hang-up
    reader_.join();
    ::close(stop_[0]);
  }
  restore_stdin_terminal();
}

void StdioConsole::write(std::string_view bytes) {
  if (mode_ == ConsoleOutput::kRaw) {
    out_.write_raw(std::string(bytes));
    return;
  }
  for (const auto& line : lines_.feed(bytes))
    write_line(line);
}

void StdioConsole::write_line(const std::string& line) {
  if (mode_ == ConsoleOutput::kLines)
    out_.write(line);
  else
    out_.write_raw(
        json_log_record(std::chrono::system_clock::now(), "info", "console", valid_utf8(line)));
}

void StdioConsole::end_line() {
  if (mode_ == ConsoleOutput::kRaw)
    return;
  if (auto last = lines_.flush())
    write_line(*last);
}

void StdioConsole::forward_stdin() {
  const StdinKind kind = classify_stdin(STDIN_FILENO);
  if (kind == StdinKind::kNone) {
    log_->debug(
        "console: stdin is not a terminal, pipe or socket; nothing is typed into the guest");
    return;
  }
  if (kind == StdinKind::kTerminal) {
    // `berth &` in a shell: reading or setting the terminal would stop berth (SIGTTIN, SIGTTOU).
    const pid_t foreground = ::tcgetpgrp(STDIN_FILENO);
    if (foreground >= 0 && foreground != ::getpgrp()) {
      log_->info("console: stdin is a terminal berth runs in the background of; not reading it");
      return;
    }
  }
  if (::pipe2(stop_, O_CLOEXEC) != 0) {
    log_->warn("console: cannot forward stdin to the guest: pipe: {}", std::strerror(errno));
    return;
  }
  if (kind == StdinKind::kTerminal && !make_raw(STDIN_FILENO))
    log_->warn("console: cannot put the terminal on stdin in raw mode: {}", std::strerror(errno));
  log_->info("console: stdin ({}) is typed into the guest's serial console",
             kind == StdinKind::kTerminal ? "a terminal, raw mode" : "a pipe");
  reader_ = std::thread([this, stop = stop_[0]] { read_stdin(stop); });
}

// The reader thread: blocking reads of stdin (never made non-blocking: a terminal on stdin is
// also stdout, which the LineWriter writes blocking), each chunk posted to the loop.
void StdioConsole::read_stdin(int stop_fd) {
  std::weak_ptr<bool> alive = alive_;
  std::array<char, 4096> buffer;
  for (;;) {
    std::array<pollfd, 2> fds{{{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents != 0)
      return;  // berth is exiting
    const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break;
    asio::post(io_, [this, alive, bytes = std::string(buffer.data(), static_cast<std::size_t>(n))] {
      if (!alive.expired())
        console_.input(bytes);
    });
  }
  asio::post(io_, [this, alive] {
    if (!alive.expired())
      log_->info("console: stdin ended; the VM keeps running");
  });
}

}  // namespace berth
