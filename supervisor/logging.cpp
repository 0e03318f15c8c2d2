#include "supervisor/logging.hpp"

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdio>

#include "supervisor/line_writer.hpp"

namespace berth {
namespace {

// The writer behind the installed sink (see log_lines_dropped).
std::atomic<LineWriter*> current_writer{nullptr};

// Log lines go to stderr through a LineWriter: formatted on the loop, written by its thread.
class StderrLineSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  StderrLineSink() : writer_(std::make_shared<LineWriter>(stderr)) {
    current_writer = writer_.get();
  }
  ~StderrLineSink() override {
    LineWriter* mine = writer_.get();
    current_writer.compare_exchange_strong(mine, nullptr);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    writer_->write_raw(std::string(formatted.data(), formatted.size()));
  }
  void flush_() override {}
  LineWriter& writer() { return *writer_; }

 private:
  std::shared_ptr<LineWriter> writer_;
};

// One JSON object per line: {"time","level","logger","msg"}; the message is escaped by Boost.JSON.
class JsonStderrSink final : public StderrLineSink {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string out =
        json_log_record(std::chrono::time_point_cast<std::chrono::system_clock::duration>(msg.time),
                        std::string_view(level.data(), level.size()),
                        std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                        std::string_view(msg.payload.data(), msg.payload.size()));
    writer().write_raw(std::move(out));
  }
};

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

std::string json_log_record(std::chrono::system_clock::time_point time, std::string_view level,
                            std::string_view logger, std::string_view msg) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(seconds)));
  boost::json::object line;
  line["time"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(t), millis.count());
  line["level"] = level;
  line["logger"] = logger;
  line["msg"] = msg;
  std::string out = boost::json::serialize(line);
  out += '\n';
  return out;
}

void init_logging(LogFormat format, LogLevel level) {
  spdlog::sink_ptr sink;
  if (format == LogFormat::kJson) {
    sink = std::make_shared<JsonStderrSink>();
  } else {
    sink = std::make_shared<StderrLineSink>();
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("berth", sink);
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::trace);  // stderr is a pipe under Kubernetes: never hold lines
  spdlog::set_default_logger(logger);
}

std::uint64_t log_lines_dropped() {
  const LineWriter* writer = current_writer;
  return writer ? writer->dropped() : 0;
}

std::shared_ptr<spdlog::logger> component_logger(const std::string& name) {
  return spdlog::default_logger()->clone(name);
}

}  // namespace berth
