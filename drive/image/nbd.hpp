#pragma once
// The server side of the NBD protocol (fixed newstyle handshake, simple replies) for one read-only
// export, as a pure codec: bytes from the client in, bytes for the client and read requests out.
// No sockets, no logging: the lazy image server (IMG_LAZY) owns the unix socket and answers the
// reads from the partially filled cache file.
//
// What it speaks: the handshake flags FIXED_NEWSTYLE and NO_ZEROES; the options EXPORT_NAME, GO,
// INFO, LIST and ABORT (every other option is answered ERR_UNSUP, so a client asking for
// structured replies or extended headers falls back to simple replies); the commands READ and DISC.
// WRITE is refused with EPERM (its payload skipped), every other command with EINVAL. Malformed
// input (a wrong magic, an option over 4 KiB, unknown client flags) closes the session with a
// reason; it never throws and never reads past its input.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace berth::drive::nbd {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// Wire constants (the NBD protocol document, "proto.md").
inline constexpr std::uint64_t kNbdMagic = 0x4e42444d41474943;     // "NBDMAGIC"
inline constexpr std::uint64_t kOptionMagic = 0x49484156454f5054;  // "IHAVEOPT"
inline constexpr std::uint64_t kReplyMagic = 0x0003e889045565a9;   // option replies
inline constexpr std::uint32_t kRequestMagic = 0x25609513;
inline constexpr std::uint32_t kSimpleReplyMagic = 0x67446698;

inline constexpr std::uint16_t kFlagFixedNewstyle = 1;
inline constexpr std::uint16_t kFlagNoZeroes = 2;

enum class Option : std::uint32_t {
  kExportName = 1,
  kAbort = 2,
  kList = 3,
  kInfo = 6,
  kGo = 7,
  kStructuredReply = 8,
};

enum class OptionReply : std::uint32_t {
  kAck = 1,
  kServer = 2,
  kInfo = 3,
  kErrUnsup = 0x80000001,
  kErrInvalid = 0x80000003,
  kErrUnknown = 0x80000006,
};

enum class Info : std::uint16_t { kExport = 0, kBlockSize = 3 };

inline constexpr std::uint16_t kTransmitHasFlags = 1;
inline constexpr std::uint16_t kTransmitReadOnly = 2;
inline constexpr std::uint16_t kTransmitCanMultiConn = 1 << 8;

enum class Command : std::uint16_t { kRead = 0, kWrite = 1, kDisc = 2 };

// Errors in replies (errno values fixed by the protocol).
inline constexpr std::uint32_t kEperm = 1;
inline constexpr std::uint32_t kEio = 5;
inline constexpr std::uint32_t kEinval = 22;

inline constexpr std::uint32_t kMaxOptionLength = 4096;
inline constexpr std::uint32_t kMaxReadLength = 32u << 20;  // the block-size maximum announced

struct Export {
  std::string name;  // what a client names with GO/INFO/EXPORT_NAME; "" selects it too
  std::uint64_t size = 0;
};

// One NBD_CMD_READ to answer with reply_read() or reply_error(); always within the export.
struct ReadRequest {
  std::uint64_t cookie = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
  bool operator==(const ReadRequest&) const = default;
};

enum class Phase { kClientFlags, kOptions, kTransmission, kClosed };

class ServerSession {
 public:
  // Queues the server's greeting: the first thing to send.
  explicit ServerSession(Export exported);

  // Consumes bytes from the client (any split). Replies the codec gives itself (options, refused
  // commands) are queued for take_output(); valid reads for take_reads(). Ignored once closed.
  void feed(ByteView data);

  // The bytes to send now, in order; the queue is emptied.
  Bytes take_output();
  // The reads asked for since the last call, in order; the queue is emptied.
  std::vector<ReadRequest> take_reads();

  // Queues the reply to `request`: its header and `data` (exactly request.length bytes; otherwise
  // an EIO reply is queued instead).
  void reply_read(const ReadRequest& request, ByteView data);
  // Queues an error reply (kEio, ...) to the command with `cookie`.
  void reply_error(std::uint64_t cookie, std::uint32_t error);

  Phase phase() const { return phase_; }
  bool closed() const { return phase_ == Phase::kClosed; }
  // Why the session closed: empty for a client's DISC or ABORT, else what was wrong.
  const std::string& close_reason() const { return close_reason_; }
  // Commands answered with an error by the codec itself (writes, unknown commands, bad ranges).
  std::uint64_t refused_commands() const { return refused_; }

 private:
  // Each step consumes one message from in_ when it is complete; false when more input is needed.
  bool step();
  bool step_client_flags();
  bool step_option();
  bool step_command();
  void handle_option(std::uint32_t option, ByteView data);
  void handle_go(std::uint32_t option, ByteView data);
  void handle_export_name(ByteView data);
  void handle_command(std::uint16_t flags, std::uint16_t type, std::uint64_t cookie,
                      std::uint64_t offset, std::uint32_t length);
  void option_reply(std::uint32_t option, OptionReply type, ByteView data = {});
  void put_export_info(std::uint32_t option);
  void close(std::string reason);
  std::uint16_t transmission_flags() const;

  Export export_;
  Phase phase_ = Phase::kClientFlags;
  bool no_zeroes_ = false;
  Bytes in_;
  std::size_t in_offset_ = 0;
  std::uint64_t skip_payload_ = 0;  // bytes of a refused WRITE still to discard
  Bytes out_;
  std::vector<ReadRequest> reads_;
  std::string close_reason_;
  std::uint64_t refused_ = 0;
};

}  // namespace berth::drive::nbd
