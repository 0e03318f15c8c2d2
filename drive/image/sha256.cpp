#include "drive/image/sha256.hpp"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

namespace berth::drive {

struct Sha256::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~State() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  if (state_->ctx == nullptr)
    throw std::bad_alloc();
  reset();
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::reset() {
  if (EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("EVP_DigestInit_ex(sha256) failed");
}

void Sha256::update(std::span<const char> data) {
  if (!data.empty())
    EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

std::string Sha256::hex() const {
  // Finalise a copy so that the running digest can continue.
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (copy == nullptr || EVP_MD_CTX_copy_ex(copy, state_->ctx) != 1
      || EVP_DigestFinal_ex(copy, digest.data(), &length) != 1) {
    EVP_MD_CTX_free(copy);
    throw std::runtime_error("SHA-256 finalisation failed");
  }
  EVP_MD_CTX_free(copy);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
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
