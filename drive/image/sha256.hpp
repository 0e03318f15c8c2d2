#pragma once
// Streaming SHA-256 (OpenSSL), and the hex forms used in IMG_CHECKSUM and in the sidecar files.
// Nothing here throws: an OpenSSL failure (out of memory, a provider that refuses SHA-256) is
// recorded and reported by hex().

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth::drive {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  // Adds bytes to the digest.
  void update(std::span<const char> data);
  // Adds `count` zero bytes (a hole of a sparse file) without the caller providing them.
  void update_zeros(std::uint64_t count);
  // The digest of everything added so far as 64 lower-case hex digits; the object stays usable.
  // Errors (kSystem): OpenSSL failed at any point since construction or the last reset().
  Result<std::string> hex() const;
  // Starts over (and forgets an earlier failure if OpenSSL now succeeds).
  void reset();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// SHA-256 of `data` as 64 lower-case hex digits. Errors: as Sha256::hex().
Result<std::string> sha256_hex(std::string_view data);

// True when `text` is exactly 64 lower-case hex digits.
bool is_sha256_hex(std::string_view text);

}  // namespace berth::drive
