#pragma once
// Berth's own stdin and stdout as the serial console's terminal (`kubectl attach -it`, `kubectl
// logs`). stdout: a terminal gets the console's bytes as they are; otherwise lines, as raw text or
// (BERTH_LOG_FORMAT=json) as JSON records of the logger `console`. stdin: when it is a terminal,
// a pipe or a socket (the pod has `stdin: true`), what arrives is typed into the guest; a terminal
// is put in raw mode (Ctrl-C reaches the guest) and restored when berth exits. End of stdin leaves
// the VM running.

#include <spdlog/logger.h>
#include <termios.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "supervisor/config.hpp"
#include "supervisor/console/serial_console.hpp"
#include "supervisor/line_writer.hpp"

namespace berth {

// How the console's output is written to stdout.
enum class ConsoleOutput {
  kRaw,    // stdout is a terminal: the bytes as the guest wrote them
  kLines,  // text logs: one line per line, its trailing CR removed (as before #17)
  kJson,   // JSON logs: one record of logger `console` per line
};
ConsoleOutput console_output_for(bool stdout_is_tty, LogFormat format);

// Whether berth's stdin is forwarded to the guest: a terminal, a pipe or a socket is; /dev/null
// (no `stdin: true`), another device or a regular file is not.
enum class StdinKind { kNone, kTerminal, kPipe };
StdinKind classify_stdin(int fd);

// Splits a byte stream into lines: without the newline and a trailing CR; a line longer than
// `max_line` is cut there.
class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line = 64 * 1024) : max_line_(max_line) {}
  std::vector<std::string> feed(std::string_view bytes);
  // The partial last line, if any (emptied).
  std::optional<std::string> flush();

 private:
  std::size_t max_line_;
  std::string pending_;
};

// `text` with every byte sequence that is not UTF-8 replaced by U+FFFD, so that a JSON record of
// serial bytes stays valid JSON.
std::string valid_utf8(std::string_view text);

class StdioConsole {
 public:
  // Output goes to `out` (berth's stdout) as `mode` says; input to `console`.
  StdioConsole(boost::asio::io_context& io, SerialConsole& console, LineWriter& out,
               ConsoleOutput mode, std::shared_ptr<spdlog::logger> log);
  // Stops reading stdin and restores the terminal.
  ~StdioConsole();
  StdioConsole(const StdioConsole&) = delete;
  StdioConsole& operator=(const StdioConsole&) = delete;

  // Starts forwarding stdin (when classify_stdin says so), the terminal in raw mode.
  void forward_stdin();

 private:
  void write(std::string_view bytes);
  void write_line(const std::string& line);  // one line, as text or a JSON record
  void end_line();
  void read_stdin(int stop_fd);

  boost::asio::io_context& io_;
  SerialConsole& console_;
  LineWriter& out_;
  ConsoleOutput mode_;
  std::shared_ptr<spdlog::logger> log_;
  LineSplitter lines_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  int stop_[2] = {-1, -1};  // a pipe: a byte (or its close) ends the reader thread
  std::thread reader_;
};

// Restores the terminal on stdin to how berth found it (raw mode undone); safe to call more than
// once and from an atexit handler.
void restore_stdin_terminal();

}  // namespace berth
