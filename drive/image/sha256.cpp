#include "drive/image/sha256.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace berth::drive {

namespace {

// What update_zeros() feeds per OpenSSL call: large enough that the per-call overhead is noise.
constexpr std::size_t kZeroBlock = 1 << 20;

const std::array<char, kZeroBlock>& zero_block() {
  static const std::array<char, kZeroBlock> zeros{};
  return zeros;
}

}  // namespace

struct Sha256::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const char* failed = nullptr;  // the OpenSSL call that failed, if one did
  ~State() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  reset();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::reset() {
  state_->failed = nullptr;
  if (state_->ctx == nullptr)
    state_->failed = "EVP_MD_CTX_new";
  else if (EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1)
    state_->failed = "EVP_DigestInit_ex(sha256)";
}

void Sha256::update(std::span<const char> data) {
  if (data.empty() || state_->failed != nullptr)
    return;
  if (EVP_DigestUpdate(state_->ctx, data.data(), data.size()) != 1)
    state_->failed = "EVP_DigestUpdate";
}

void Sha256::update_zeros(std::uint64_t count) {
  const auto& zeros = zero_block();
  while (count > 0 && state_->failed == nullptr) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count, zeros.size()));
    update({zeros.data(), n});
    count -= n;
  }
}

Result<std::string> Sha256::hex() const {
  if (state_->failed != nullptr)
    return Error{ErrorKind::kSystem,
                 fmt::format("SHA-256 failed in OpenSSL's {}; is the process out of memory?",
                             state_->failed)};
  // Finalise a copy so that the running digest can continue.
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  const bool ok = copy != nullptr && EVP_MD_CTX_copy_ex(copy, state_->ctx) == 1
                  && EVP_DigestFinal_ex(copy, digest.data(), &length) == 1;
  EVP_MD_CTX_free(copy);
  if (!ok)
    return Error{ErrorKind::kSystem,
                 "SHA-256 finalisation failed in OpenSSL; is the process out of memory?"};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

Result<std::string> sha256_hex(std::string_view data) {
  Sha256 hash;
  hash.update(data);
  return hash.hex();
}

bool is_sha256_hex(std::string_view text) {
  if (text.size() != 64)
    return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}

}  // namespace berth::drive
