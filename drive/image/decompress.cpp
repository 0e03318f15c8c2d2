#include "drive/image/decompress.hpp"

#include <fmt/format.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <vector>

namespace berth::drive {

namespace {

constexpr std::size_t kOutput = 256 * 1024;

Error corrupt(std::string_view format, std::string_view detail) {
  return {ErrorKind::kIntegrity, fmt::format("the {} stream is corrupt: {}", format, detail)};
}

Error truncated(std::string_view format) {
  return {ErrorKind::kIntegrity,
          fmt::format("the {} stream ends early (truncated download or file?)", format)};
}

class Gzip final : public Decompressor {
 public:
  Gzip() : out_(kOutput) {
    if (inflateInit2(&z_, 15 + 16) != Z_OK)
      throw std::bad_alloc();
  }
  ~Gzip() override { inflateEnd(&z_); }

  Result<void> feed(std::span<const char> input, const Sink& sink) override {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
    z_.avail_in = static_cast<uInt>(input.size());
    for (;;) {
      if (ended_) {
        if (z_.avail_in == 0)
          return {};
        // Another gzip member follows (gzip files may be concatenated).
        inflateReset(&z_);
        ended_ = false;
      }
      z_.next_out = reinterpret_cast<Bytef*>(out_.data());
      z_.avail_out = static_cast<uInt>(out_.size());
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return corrupt("gzip", z_.msg ? z_.msg : fmt::format("zlib error {}", rc));
      if (auto r = emit(sink); !r)
        return r;
      if (rc == Z_STREAM_END)
        ended_ = true;
      else if (z_.avail_in == 0 && z_.avail_out != 0)
        return {};  // all input consumed and nothing more buffered inside zlib
    }
  }

  Result<void> finish(const Sink&) override {
    if (!ended_)
      return truncated("gzip");
    return {};
  }

 private:
  Result<void> emit(const Sink& sink) {
    const std::size_t n = out_.size() - z_.avail_out;
    return n > 0 ? sink({out_.data(), n}) : Result<void>{};
  }

  z_stream z_{};
  std::vector<char> out_;
  bool ended_ = false;
};

class Xz final : public Decompressor {
 public:
  Xz() : out_(kOutput) {
    if (lzma_stream_decoder(&s_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      throw std::bad_alloc();
  }
  ~Xz() override { lzma_end(&s_); }

  Result<void> feed(std::span<const char> input, const Sink& sink) override {
    s_.next_in = reinterpret_cast<const uint8_t*>(input.data());
    s_.avail_in = input.size();
    while (s_.avail_in > 0) {
      auto r = step(LZMA_RUN, sink);
      if (!r)
        return r.error();
      if (*r)
        return {};
    }
    return {};
  }

  Result<void> finish(const Sink& sink) override {
    s_.next_in = nullptr;
    s_.avail_in = 0;
    for (;;) {
      auto r = step(LZMA_FINISH, sink);
      if (!r)
        return r.error();
      if (*r)
        return {};
    }
  }

 private:
  // One lzma_code call; true when the stream has ended.
  Result<bool> step(lzma_action action, const Sink& sink) {
    s_.next_out = reinterpret_cast<uint8_t*>(out_.data());
    s_.avail_out = out_.size();
    const lzma_ret rc = lzma_code(&s_, action);
    const std::size_t n = out_.size() - s_.avail_out;
    if (n > 0)
      if (auto r = sink({out_.data(), n}); !r)
        return r.error();
    switch (rc) {
      case LZMA_OK:
        return false;
      case LZMA_STREAM_END:
        return true;
      case LZMA_BUF_ERROR:
        if (action == LZMA_FINISH)
          return truncated("xz");
        return false;
      case LZMA_FORMAT_ERROR:
        return corrupt("xz", "not in the .xz format");
      case LZMA_DATA_ERROR:
        return corrupt("xz", "data error");
      case LZMA_OPTIONS_ERROR:
        return corrupt("xz", "unsupported options");
      case LZMA_MEM_ERROR:
        return Error{ErrorKind::kSystem, "xz decompression: out of memory"};
      default:
        return corrupt("xz", fmt::format("liblzma error {}", static_cast<int>(rc)));
    }
  }

  lzma_stream s_ = LZMA_STREAM_INIT;
  std::vector<char> out_;
};

class Zstd final : public Decompressor {
 public:
  Zstd() : d_(ZSTD_createDStream()), out_(ZSTD_DStreamOutSize()) {
    if (d_ == nullptr)
      throw std::bad_alloc();
    ZSTD_initDStream(d_);
  }
  ~Zstd() override { ZSTD_freeDStream(d_); }

  Result<void> feed(std::span<const char> input, const Sink& sink) override {
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const std::size_t rc = ZSTD_decompressStream(d_, &out, &in);
      if (ZSTD_isError(rc))
        return corrupt("zstd", ZSTD_getErrorName(rc));
      pending_ = rc;
      if (out.pos > 0)
        if (auto r = sink({out_.data(), out.pos}); !r)
          return r;
      // Done when the input is consumed and the output buffer was not filled (nothing buffered).
      if (in.pos == in.size && out.pos < out.size)
        return {};
    }
  }

  Result<void> finish(const Sink&) override {
    if (pending_ != 0)
      return truncated("zstd");
    return {};
  }

 private:
  ZSTD_DStream* d_;
  std::vector<char> out_;
  std::size_t pending_ = 1;  // 0 once a frame has been completely decoded and flushed
};

}  // namespace

std::string_view compression_name(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kXz:
      return "xz";
    case Compression::kZstd:
      return "zstd";
  }
  return "?";
}

Compression detect_compression(std::span<const char> head) {
  auto starts = [&](std::string_view magic) {
    return head.size() >= magic.size() && std::memcmp(head.data(), magic.data(), magic.size()) == 0;
  };
  using namespace std::string_view_literals;
  if (starts("\x1f\x8b"sv))
    return Compression::kGzip;
  if (starts("\xfd"
             "7zXZ\x00"sv))
    return Compression::kXz;
  if (starts("\x28\xb5\x2f\xfd"sv))
    return Compression::kZstd;
  return Compression::kNone;
}

std::unique_ptr<Decompressor> Decompressor::create(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return std::make_unique<Gzip>();
    case Compression::kXz:
      return std::make_unique<Xz>();
    case Compression::kZstd:
      return std::make_unique<Zstd>();
    case Compression::kNone:
      break;
  }
  return nullptr;
}

}  // namespace berth::drive
