#pragma once
// Helpers shared by the dhcp tests: fixture files, and DNS messages built by hand.

#include <boost/asio/ip/address_v4.hpp>
#include <boost/system/result.hpp>
#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dhcp/byte_io.hpp"

// Catch prints results as "a value" or "an error" (Boost's own printer needs a printable value).
namespace Catch {
template <typename T, typename E>
struct StringMaker<boost::system::result<T, E>> {
  static std::string convert(const boost::system::result<T, E>& r) {
    return r.has_value() ? "a value" : "an error";
  }
};
}  // namespace Catch

namespace berth::dhcp::test {

// The bytes of test/dhcp/fixtures/<name>; throws when the file is missing.
inline Bytes fixture(const std::string& name) {
  std::ifstream in(std::string(BERTH_DHCP_FIXTURES) + "/" + name, std::ios::binary);
  if (!in)
    throw std::runtime_error("missing fixture " + name);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline Bytes wire_name(std::string_view name) {
  Bytes out;
  while (!name.empty()) {
    const auto dot = name.find('.');
    const auto label = name.substr(0, dot);
    if (!label.empty()) {
      out.push_back(static_cast<std::uint8_t>(label.size()));
      out.insert(out.end(), label.begin(), label.end());
    }
    name = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  }
  out.push_back(0);
  return out;
}

// An OPT record (root name, type 41) advertising `udp_size`, version 0, no flags, no options.
inline void put_opt(Bytes& out, std::uint16_t udp_size) {
  put_u8(out, 0);
  put_u16(out, 41);
  put_u16(out, udp_size);
  put_u32(out, 0);
  put_u16(out, 0);
}

// A standard query (RD set) for `name`/`type`, with an OPT record when `edns_size` is given.
inline Bytes make_query(std::uint16_t id, std::string_view name, std::uint16_t type = 1,
                        std::optional<std::uint16_t> edns_size = std::nullopt) {
  Bytes out;
  put_u16(out, id);
  put_u16(out, 0x0100);
  put_u16(out, 1);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, edns_size ? 1 : 0);
  put_bytes(out, wire_name(name));
  put_u16(out, type);
  put_u16(out, 1);
  if (edns_size)
    put_opt(out, *edns_size);
  return out;
}

// A response to `query` (which must be a single-question query without OPT or with OPT last):
// `records` A records for the question name (compressed pointer to offset 12), each with a
// distinct address, and an OPT record of size `edns_size` when given.
inline Bytes make_response(const Bytes& query, unsigned records,
                           std::optional<std::uint16_t> edns_size = std::nullopt,
                           std::uint8_t rcode = 0) {
  // The question ends where the query's OPT (if any) starts: find it from the fixed layout.
  std::size_t end = 12;
  while (query[end] != 0)
    end += query[end] + 1u;
  end += 5;
  Bytes out(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(end));
  store_u16(out, 2, static_cast<std::uint16_t>(0x8180 | rcode));
  store_u16(out, 6, static_cast<std::uint16_t>(records));
  store_u16(out, 8, 0);
  store_u16(out, 10, edns_size ? 1 : 0);
  for (unsigned i = 0; i < records; ++i) {
    put_u16(out, 0xC00C);
    put_u16(out, 1);
    put_u16(out, 1);
    put_u32(out, 300);
    put_u16(out, 4);
    put_u32(out, 0x0A000000u + i);
  }
  if (edns_size)
    put_opt(out, *edns_size);
  return out;
}

}  // namespace berth::dhcp::test
