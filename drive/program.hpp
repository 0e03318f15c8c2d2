#pragma once
// How the drive module runs programs (qemu-img): through a function the supervisor provides,
// because the supervisor owns every child process (PID-1 duties). Always an argv, never a shell.

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <string>
#include <vector>

namespace berth::drive {

struct ProgramResult {
  int exit_code = 0;   // shell convention: the exit code, 128+n when killed by signal n, -1 when
                       // it could not be started (then `output` says why)
  std::string output;  // what it wrote to stdout and stderr, possibly truncated
};

// Runs argv (argv[0] looked up in PATH) to completion without blocking the io_context.
using RunProgram =
    std::function<boost::asio::awaitable<ProgramResult>(std::vector<std::string> argv)>;

}  // namespace berth::drive
