#pragma once
// Streaming SHA-256 (OpenSSL), and the hex forms used in IMG_CHECKSUM and in the sidecar files.

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace berth::drive {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  // Adds bytes to the digest.
  void update(std::span<const char> data);
  // The digest of everything added so far as 64 lower-case hex digits; the object stays usable.
  std::string hex() const;
  // Starts over.
  void reset();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// SHA-256 of `data` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view data);

// True when `text` is exactly 64 lower-case hex digits.
bool is_sha256_hex(std::string_view text);

}  // namespace berth::drive
