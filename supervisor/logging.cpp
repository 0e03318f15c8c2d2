#include "supervisor/logging.hpp"

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdio>

namespace berth {
namespace {

// One JSON object per line: {"time","level","logger","msg"}; the message is escaped by Boost.JSON.
class JsonStderrSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds);
    const std::time_t t =
        std::chrono::system_clock::to_time_t(std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(seconds)));
    boost::json::object line;
    line["time"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(t), millis.count());
    const auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string_view(level.data(), level.size());
    line["logger"] = std::string_view(msg.logger_name.data(), msg.logger_name.size());
    line["msg"] = std::string_view(msg.payload.data(), msg.payload.size());
    std::string out = boost::json::serialize(line);
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
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

void init_logging(LogFormat format, LogLevel level) {
  spdlog::sink_ptr sink;
  if (format == LogFormat::kJson) {
    sink = std::make_shared<JsonStderrSink>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v", spdlog::pattern_time_type::utc));
  }
  auto logger = std::make_shared<spdlog::logger>("berth", sink);
  logger->set_level(to_spdlog(level));
  logger->flush_on(spdlog::level::trace);  // stderr is a pipe under Kubernetes: never hold lines
  spdlog::set_default_logger(logger);
}

std::shared_ptr<spdlog::logger> component_logger(const std::string& name) {
  return spdlog::default_logger()->clone(name);
}

}  // namespace berth
