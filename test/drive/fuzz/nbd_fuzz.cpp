// libFuzzer target: the NBD server codec on arbitrary client bytes, fed in pieces whose sizes the
// first input byte picks. Every read it hands out lies inside the export and within the announced
// maximum; answering it never fails; a closed session stays closed.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "drive/image/nbd.hpp"
#include "fuzz_check.hpp"

using namespace berth::drive::nbd;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const ByteView input(data + 1, size - 1);
  constexpr std::uint64_t kSize = (std::uint64_t{1} << 32) + 4096;
  ServerSession session({"base", kSize});
  for (std::size_t at = 0; at < input.size(); at += piece) {
    const bool was_closed = session.closed();
    session.feed(input.subspan(at, std::min(piece, input.size() - at)));
    FUZZ_CHECK(!was_closed || session.closed());
    for (const auto& read : session.take_reads()) {
      FUZZ_CHECK(read.length > 0 && read.length <= kMaxReadLength);
      FUZZ_CHECK(read.offset + read.length <= kSize);
      session.reply_read(read, Bytes(read.length));
    }
    (void)session.take_output();
  }
  return 0;
}
