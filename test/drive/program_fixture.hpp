#pragma once
// Test support: a temporary folder, a captured log and the RunProgram that runs real programs
// (qemu-img) through the supervisor's ChildReaper, as the supervisor runs them.

#include "drive/program.hpp"
#include "supervisor/children.hpp"
#include "test/drive/support.hpp"

namespace berth::drive::test {

struct ProgramFixture {
  TempDir dir;
  CapturedLog log;
  boost::asio::io_context io;
  ChildReaper reaper{io};
  std::chrono::steady_clock::duration deadline = 60s;  // of each program run
  RunProgram run = [this](std::vector<std::string> argv) -> boost::asio::awaitable<ProgramResult> {
    auto r = co_await run_program(io, reaper, std::move(argv), deadline);
    if (r.spawn_error)
      co_return ProgramResult{-1, r.spawn_error.message()};
    co_return ProgramResult{r.status.as_shell_code(), r.output, r.timed_out};
  };
};

}  // namespace berth::drive::test
