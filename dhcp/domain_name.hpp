#pragma once
// Domain names in DNS wire form (RFC 1035 §3.1, with §4.1.4 compression), as option 119 and DNS
// messages both carry them. Pure: bytes in, values out, no throw.

#include <cstddef>

#include "dhcp/byte_io.hpp"
#include "dhcp/parse_error.hpp"

namespace berth::dhcp {

// Reads the name at `offset` of `bytes`: follows compression pointers (each must point before the
// previous jump's target and not below `lowest_target`, at most 127 of them), appends the
// uncompressed wire form to `out` when given, and returns the offset just past the name where it
// was written. Errors: the name or a label runs past the end, a bad pointer, an extended label
// type, more than 255 bytes; they carry `option` (-1: not in a DHCP option).
ParseResult<std::size_t> read_wire_name(ByteView bytes, std::size_t offset, Bytes* out,
                                        std::size_t lowest_target = 0, int option = -1);

}  // namespace berth::dhcp
