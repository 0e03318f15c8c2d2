#pragma once
// Logging set-up: spdlog to stderr, human-readable or one JSON object per line, written off the
// event loop. Other modules log
// through loggers cloned from the default logger this installs (see component_logger).

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "supervisor/config.hpp"

namespace berth {

// Installs the default logger (named "berth") writing to stderr in `format` at `level`.
void init_logging(LogFormat format, LogLevel level);

// Log lines dropped because stderr's reader did not keep up (the lines are written by a thread
// of their own with a bounded queue; see line_writer.hpp).
std::uint64_t log_lines_dropped();

// One record of BERTH_LOG_FORMAT=json, newline included: {"time","level","logger","msg"}, the time
// in UTC with milliseconds. `msg` should be UTF-8 (Boost.JSON escapes, it does not validate).
std::string json_log_record(std::chrono::system_clock::time_point time, std::string_view level,
                            std::string_view logger, std::string_view msg);

// A logger for one component ("qemu", "net", ...) that shares the default logger's sinks and level.
std::shared_ptr<spdlog::logger> component_logger(const std::string& name);

}  // namespace berth
