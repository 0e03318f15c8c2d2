#pragma once
// Unpredictable numbers for DNS transaction IDs (RFC 5452): the kernel's CSPRNG (getrandom),
// fetched in blocks.

#include <array>
#include <cstddef>
#include <cstdint>

namespace berth::dhcp {

class RandomSource {
 public:
  // A uniformly random 16-bit number. Aborts only if the kernel has no getrandom (Linux < 3.17).
  std::uint16_t u16();

 private:
  std::array<std::uint8_t, 256> block_{};
  std::size_t used_ = block_.size();
};

}  // namespace berth::dhcp
