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
  // It outran the runner's deadline (the disk phase's budget) and was ended; then `output` says
  // what it wrote until then.
  bool timed_out = false;
};

// Runs argv (argv[0] looked up in PATH) to completion without blocking the io_context, within the
// runner's deadline. A cancelled run (a stop) ends the program before it throws operation_aborted.
using RunProgram =
    std::function<boost::asio::awaitable<ProgramResult>(std::vector<std::string> argv)>;

}  // namespace berth::drive
