#include "dhcp/random_source.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace berth::dhcp {

std::uint16_t RandomSource::u16() {
  if (used_ + 2 > block_.size()) {
    std::size_t filled = 0;
    while (filled < block_.size()) {
      const ssize_t n = ::getrandom(block_.data() + filled, block_.size() - filled, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        std::abort();  // no kernel randomness: predictable DNS IDs are not an option
      filled += static_cast<std::size_t>(n);
    }
    used_ = 0;
  }
  const auto value = static_cast<std::uint16_t>(block_[used_] << 8 | block_[used_ + 1]);
  used_ += 2;
  return value;
}

}  // namespace berth::dhcp
