#include "net/nftables.hpp"

#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/if.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include "net/netlink.hpp"

namespace berth::net {
namespace {

using namespace nft;

template <auto Free>
struct Freer {
  template <class T>
  void operator()(T* object) const {
    Free(object);
  }
};
using TablePtr = std::unique_ptr<nftnl_table, Freer<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Freer<nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Freer<nftnl_rule_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Freer<nftnl_set_free>>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, Freer<nftnl_udata_buf_free>>;
struct MnlSocketClose {
  void operator()(mnl_socket* socket) const { mnl_socket_close(socket); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlSocketClose>;

// nft's datatype numbers (src/datatype.h) and byte orders, stored with each anonymous set so
// `nft list` prints its elements as addresses, protocols and ports.
constexpr std::uint32_t kTypeIpv4Address = 7;
constexpr std::uint32_t kTypeIpv6Address = 8;
constexpr std::uint32_t kTypeInetProtocol = 12;
constexpr std::uint32_t kTypeInetService = 13;
constexpr std::uint32_t kTypeIcmpType = 14;
constexpr std::uint32_t kTypeIcmpv6Type = 29;
constexpr std::uint32_t kByteorderHost = 1;
constexpr std::uint32_t kByteorderBig = 2;
constexpr std::uint8_t kTcpOptionMaxseg = 2;

std::uint16_t family_number(Family family) {
  return family == Family::kIp6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

// A set key or compared value: its bytes in network order, then zeros (all keys of one set have the
// same length, so the zeros do not change their order).
using Key = std::array<std::uint8_t, 16>;

Key key_of(std::uint32_t value, std::uint32_t length) {
  Key key{};
  for (std::uint32_t i = 0; i < length; ++i)
    key[i] = static_cast<std::uint8_t>(value >> (8 * (length - 1 - i)));
  return key;
}

Key key_of(const boost::asio::ip::address& address) {
  if (address.is_v4())
    return key_of(address.to_v4().to_uint(), 4);
  Key key{};
  const auto bytes = address.to_v6().to_bytes();
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return key;
}

// Appends netlink messages, each built in a scratch buffer large enough for any message here
// (libmnl's attribute writers do not check bounds), then copied to the batch.
class BatchWriter {
 public:
  explicit BatchWriter(std::uint32_t first_seq) : seq_(first_seq), scratch_(kScratchSize) {
    batch_.first_seq = first_seq;
  }

  char* scratch() { return scratch_.data(); }
  std::uint32_t next_seq() const { return seq_; }

  void append(const nlmsghdr* message, std::string description) {
    const auto* bytes = reinterpret_cast<const char*>(message);
    batch_.bytes.insert(batch_.bytes.end(), bytes, bytes + message->nlmsg_len);
    batch_.descriptions.push_back(std::move(description));
    ++seq_;
  }

  nlmsghdr* header(std::uint16_t type, std::uint16_t flags, Family family) {
    return nftnl_nlmsg_build_hdr(scratch(), type, family_number(family), flags | NLM_F_ACK, seq_);
  }

  NftBatch finish() { return std::move(batch_); }

 private:
  static constexpr std::size_t kScratchSize = 64 * 1024;
  std::uint32_t seq_;
  std::vector<char> scratch_;
  NftBatch batch_;
};

std::uint32_t hook_number(Hook hook) {
  switch (hook) {
    case Hook::kPrerouting:
      return NF_INET_PRE_ROUTING;
    case Hook::kInput:
      return NF_INET_LOCAL_IN;
    case Hook::kForward:
      return NF_INET_FORWARD;
    case Hook::kOutput:
      return NF_INET_LOCAL_OUT;
    case Hook::kPostrouting:
      return NF_INET_POST_ROUTING;
  }
  return NF_INET_FORWARD;
}

std::uint32_t verdict_code(Verdict verdict) {
  return verdict == Verdict::kAccept ? NF_ACCEPT : NF_DROP;
}

// Encodes one rule's expressions into an nftnl_rule, emitting the anonymous sets it looks up
// into the batch before it (the kernel binds them by transaction-local set id).
class RuleEncoder {
 public:
  RuleEncoder(BatchWriter& writer, const Table& table, std::uint32_t& next_set_id,
              std::string rule_label)
      : writer_(writer),
        table_(table.name),
        family_(table.family),
        next_set_id_(next_set_id),
        rule_label_(std::move(rule_label)) {}

  // nft puts the `meta l4proto tcp` a TCP reset needs at the very start of a rule that matches
  // nothing else of TCP.
  void begin(nftnl_rule* rule, const Rule& data) {
    rule_ = rule;
    bool reset = false;
    bool other_tcp = false;
    for (const Expression& expression : data.expressions) {
      if (const auto* reject = std::get_if<Reject>(&expression))
        reset = reset || reject->with == RejectWith::kTcpReset;
      other_tcp = other_tcp || std::holds_alternative<TcpPortIn>(expression)
                  || std::holds_alternative<TcpSyn>(expression)
                  || std::holds_alternative<ClampMss>(expression);
    }
    if (reset && !other_tcp)
      tcp_dependency();
  }

  void encode(nftnl_rule* rule, const Expression& expression) {
    rule_ = rule;
    std::visit([this](const auto& e) { add(e); }, expression);
  }

 private:
  nftnl_expr* expr(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    nftnl_rule_add_expr(rule_, e);  // the rule owns it from here
    return e;
  }

  void meta(std::uint32_t key) {
    nftnl_expr* e = expr("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  }
  void payload(std::uint32_t base, std::uint32_t offset, std::uint32_t length) {
    nftnl_expr* e = expr("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, length);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  }
  void cmp(std::uint32_t op, const void* data, std::uint32_t length) {
    nftnl_expr* e = expr("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, length);
  }
  void bitwise(const void* mask, const void* zero, std::uint32_t length) {
    nftnl_expr* e = expr("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, length);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, length);
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, length);
  }
  // (reg & mask) != 0 over a host-order u32: ct state and ct status bits.
  void any_bit(std::uint32_t mask) {
    const std::uint32_t zero = 0;
    bitwise(&mask, &zero, sizeof mask);
    cmp(NFT_CMP_NEQ, &zero, sizeof zero);
  }
  void immediate_verdict(std::uint32_t verdict) {
    nftnl_expr* e = expr("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
  }
  void nat(std::uint32_t type, const boost::asio::ip::address& to) {
    const Key bytes = key_of(to);
    nftnl_expr* immediate = expr("immediate");
    nftnl_expr_set_u32(immediate, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
    nftnl_expr_set(immediate, NFTNL_EXPR_IMM_DATA, bytes.data(), to.is_v6() ? 16 : 4);
    nftnl_expr* e = expr("nat");
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, type);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, to.is_v6() ? NFPROTO_IPV6 : NFPROTO_IPV4);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
  }
  // `meta l4proto tcp` (udp, icmp), which nft adds (and hides when listing) before the first
  // access to that protocol's header.
  void l4_dependency(std::uint8_t protocol) {
    if (l4_checked_ == protocol)
      return;
    meta(NFT_META_L4PROTO);
    cmp(NFT_CMP_EQ, &protocol, sizeof protocol);
    l4_checked_ = protocol;
  }
  void tcp_dependency() { l4_dependency(IPPROTO_TCP); }

  // Register 1 equals one of `keys` (all `key_length` bytes in network order): a cmp for one
  // key, else a lookup in an anonymous constant set sent just before the rule. Keys go out in
  // ascending order, as nft sends them.
  void one_of(std::vector<Key> keys, std::uint32_t key_type, std::uint32_t key_length,
              std::uint32_t byteorder) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    if (keys.size() == 1) {
      cmp(NFT_CMP_EQ, keys.front().data(), key_length);
      return;
    }
    const std::uint32_t set_id = next_set_id_++;
    SetPtr set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table_.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, "__set%d");
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, family_number(family_));
    nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, key_type);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, key_length);
    nftnl_set_set_u32(set.get(), NFTNL_SET_ID, set_id);
    nftnl_set_set_u32(set.get(), NFTNL_SET_DESC_SIZE, static_cast<std::uint32_t>(keys.size()));
    UdataPtr udata(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, byteorder);
    nftnl_set_set_data(set.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                       nftnl_udata_buf_len(udata.get()));
    for (const Key& key : keys) {
      nftnl_set_elem* element = nftnl_set_elem_alloc();
      nftnl_set_elem_set(element, NFTNL_SET_ELEM_KEY, key.data(), key_length);
      nftnl_set_elem_add(set.get(), element);  // the set owns it from here
    }
    nlmsghdr* message = writer_.header(NFT_MSG_NEWSET, NLM_F_CREATE, family_);
    nftnl_set_nlmsg_build_payload(message, set.get());
    writer_.append(message, "anonymous set of " + rule_label_);
    message = writer_.header(NFT_MSG_NEWSETELEM, NLM_F_CREATE, family_);
    nftnl_set_elems_nlmsg_build_payload(message, set.get());
    writer_.append(message, "elements of the set of " + rule_label_);

    nftnl_expr* e = expr("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, "__set%d");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
  }

  template <class T>
  static std::vector<Key> keys_of(const std::vector<T>& values, std::uint32_t length) {
    std::vector<Key> keys;
    for (T value : values)
      keys.push_back(key_of(value, length));
    return keys;
  }

  void interface_name(std::uint32_t key, const std::string& name) {
    std::array<char, IFNAMSIZ> padded{};
    std::memcpy(padded.data(), name.data(), std::min(name.size(), padded.size() - 1));
    meta(key);
    cmp(NFT_CMP_EQ, padded.data(), padded.size());
  }

  void add(const IifName& m) { interface_name(NFT_META_IIFNAME, m.name); }
  void add(const OifName& m) { interface_name(NFT_META_OIFNAME, m.name); }
  // The source address (`size` bytes at `offset`) has `bytes`' first `length` bits.
  void source_prefix(std::uint32_t offset, std::uint32_t size, const Key& bytes, unsigned length) {
    if (length % 8 == 0) {
      payload(NFT_PAYLOAD_NETWORK_HEADER, offset, length / 8);
      cmp(NFT_CMP_EQ, bytes.data(), length / 8);
      return;
    }
    Key mask{};
    for (unsigned bit = 0; bit < length; ++bit)
      mask[bit / 8] |= static_cast<std::uint8_t>(0x80u >> (bit % 8));
    const Key zero{};
    payload(NFT_PAYLOAD_NETWORK_HEADER, offset, size);
    bitwise(mask.data(), zero.data(), size);
    cmp(NFT_CMP_EQ, bytes.data(), size);
  }
  void add(const SourceIn& m) {
    constexpr std::uint32_t kSourceOffset = 12;  // in the IPv4 header
    constexpr std::uint32_t kSource6Offset = 8;  // in the IPv6 header
    if (const auto* v4 = std::get_if<boost::asio::ip::network_v4>(&m.prefix)) {
      const auto network = v4->canonical();
      source_prefix(kSourceOffset, 4, key_of(network.address()), network.prefix_length());
    } else {
      const auto network = std::get<boost::asio::ip::network_v6>(m.prefix).canonical();
      source_prefix(kSource6Offset, 16, key_of(network.address()), network.prefix_length());
    }
  }
  void add(const DestinationIn& m) {
    std::vector<Key> keys;
    for (const auto& address : m.addresses)
      keys.push_back(key_of(address));
    const bool v6 = !m.addresses.empty() && m.addresses.front().is_v6();
    constexpr std::uint32_t kDestinationOffset = 16;   // in the IPv4 header
    constexpr std::uint32_t kDestination6Offset = 24;  // in the IPv6 header
    const std::uint32_t length = v6 ? 16 : 4;
    payload(NFT_PAYLOAD_NETWORK_HEADER, v6 ? kDestination6Offset : kDestinationOffset, length);
    one_of(std::move(keys), v6 ? kTypeIpv6Address : kTypeIpv4Address, length, kByteorderBig);
  }
  void add(const ProtocolIn& m) {
    meta(NFT_META_L4PROTO);
    one_of(keys_of(m.protocols, 1), kTypeInetProtocol, 1, kByteorderHost);
  }
  void add(const TcpPortIn& m) {
    tcp_dependency();
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
    one_of(keys_of(m.ports, 2), kTypeInetService, 2, kByteorderBig);
  }
  void add(const UdpPortIn& m) {
    l4_dependency(IPPROTO_UDP);
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
    one_of(keys_of(m.ports, 2), kTypeInetService, 2, kByteorderBig);
  }
  void add(const IcmpTypeIn& m) {
    l4_dependency(IPPROTO_ICMP);
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
    one_of(keys_of(m.types, 1), kTypeIcmpType, 1, kByteorderBig);
  }
  void add(const Icmpv6TypeIn& m) {
    l4_dependency(IPPROTO_ICMPV6);
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
    one_of(keys_of(m.types, 1), kTypeIcmpv6Type, 1, kByteorderBig);
  }
  void add(const TcpSyn&) {
    constexpr std::uint8_t kSyn = 0x02;
    const std::uint8_t zero = 0;
    tcp_dependency();
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1);
    bitwise(&kSyn, &zero, 1);
    cmp(NFT_CMP_NEQ, &zero, 1);
  }
  void add(const CtStateIn& m) {
    std::uint32_t mask = 0;
    for (CtState state : m.states)
      mask |= state == CtState::kEstablished ? NF_CT_STATE_BIT(IP_CT_ESTABLISHED)
                                             : NF_CT_STATE_BIT(IP_CT_RELATED);
    nftnl_expr* e = expr("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    any_bit(mask);
  }
  void add(const CtStatusDnat&) {
    nftnl_expr* e = expr("ct");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    any_bit(IPS_DST_NAT);
  }
  void add(const Counter&) { expr("counter"); }
  void add(const Dnat& s) { nat(NFT_NAT_DNAT, s.to); }
  void add(const Snat& s) { nat(NFT_NAT_SNAT, s.to); }
  void add(const ClampMss&) {
    tcp_dependency();
    nftnl_expr* rt = expr("rt");
    nftnl_expr_set_u32(rt, NFTNL_EXPR_RT_KEY, NFT_RT_TCPMSS);
    nftnl_expr_set_u32(rt, NFTNL_EXPR_RT_DREG, NFT_REG_1);
    nftnl_expr* order = expr("byteorder");
    nftnl_expr_set_u32(order, NFTNL_EXPR_BYTEORDER_SREG, NFT_REG_1);
    nftnl_expr_set_u32(order, NFTNL_EXPR_BYTEORDER_DREG, NFT_REG_1);
    nftnl_expr_set_u32(order, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
    nftnl_expr_set_u32(order, NFTNL_EXPR_BYTEORDER_LEN, 2);
    nftnl_expr_set_u32(order, NFTNL_EXPR_BYTEORDER_SIZE, 2);
    nftnl_expr* write = expr("exthdr");
    nftnl_expr_set_u32(write, NFTNL_EXPR_EXTHDR_SREG, NFT_REG_1);
    nftnl_expr_set_u8(write, NFTNL_EXPR_EXTHDR_TYPE, kTcpOptionMaxseg);
    nftnl_expr_set_u32(write, NFTNL_EXPR_EXTHDR_OFFSET, 2);
    nftnl_expr_set_u32(write, NFTNL_EXPR_EXTHDR_LEN, 2);
    nftnl_expr_set_u32(write, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
  }
  void add(const Reject& s) {
    nftnl_expr* e = nullptr;
    if (s.with == RejectWith::kTcpReset) {
      tcp_dependency();
      e = expr("reject");
      nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
      nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
    } else {
      e = expr("reject");
      nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH);
      nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE,
                        family_ == Family::kIp6 ? ICMP6_DST_UNREACH_NOPORT : ICMP_PORT_UNREACH);
    }
  }
  void add(const Final& s) { immediate_verdict(verdict_code(s.verdict)); }

  BatchWriter& writer_;
  const std::string& table_;
  Family family_;
  std::uint32_t& next_set_id_;
  std::string rule_label_;  // "rule 2 of chain forward"
  nftnl_rule* rule_ = nullptr;
  std::uint8_t l4_checked_ = 0;  // the protocol a dependency has matched; 0: none
};

void append_table_message(BatchWriter& writer, std::uint16_t type, std::uint16_t flags,
                          Family family, std::string_view name, std::string description) {
  TablePtr table(nftnl_table_alloc());
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, std::string(name).c_str());
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, family_number(family));
  nlmsghdr* message = writer.header(type, flags, family);
  nftnl_table_nlmsg_build_payload(message, table.get());
  writer.append(message, std::move(description));
}

void begin(BatchWriter& writer) {
  nlmsghdr* message = nftnl_batch_begin(writer.scratch(), writer.next_seq());
  writer.append(message, "batch");
}

void end(BatchWriter& writer) {
  nlmsghdr* message = nftnl_batch_end(writer.scratch(), writer.next_seq());
  writer.append(message, "batch end");
}

// Sends `batch` and waits until the kernel has acknowledged every message that asked for it, or
// refused one (the whole transaction is then void). A refusal with errno `tolerated` counts as
// success (ENOENT for deleting a table that is not there).
Result<void> send_batch(const NftBatch& batch, std::string_view what, int tolerated = 0) {
  MnlSocket socket(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!socket) {
    const int error = errno;
    if (error == EPROTONOSUPPORT)
      return Error{ErrorKind::kUnsupported,
                   fmt::format("{}: the kernel has no nfnetlink (nf_tables); Berth needs "
                               "nftables in the pod's kernel",
                               what)};
    return detail::errno_error(error, fmt::format("{}: opening a netfilter netlink socket", what));
  }
  if (mnl_socket_bind(socket.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return detail::errno_error(errno, fmt::format("{}: binding the netlink socket", what));
  if (mnl_socket_sendto(socket.get(), batch.bytes.data(), batch.bytes.size()) < 0)
    return detail::errno_error(errno, fmt::format("{}: sending the batch", what));

  // Every message between batch begin and batch end asked for an acknowledgement.
  const std::size_t expected = batch.descriptions.size() - 2;
  std::size_t acknowledged = 0;
  std::vector<char> buffer(64 * 1024);
  pollfd poll_fd{mnl_socket_get_fd(socket.get()), POLLIN, 0};
  constexpr int kTimeoutMs = 5000;
  while (acknowledged < expected) {
    const int ready = ::poll(&poll_fd, 1, kTimeoutMs);
    if (ready == 0)
      return Error{ErrorKind::kSystem,
                   fmt::format("{}: the kernel acknowledged {} of {} messages within {} ms", what,
                               acknowledged, expected, kTimeoutMs)};
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      return detail::errno_error(errno, fmt::format("{}: waiting for the kernel", what));
    }
    ssize_t length = mnl_socket_recvfrom(socket.get(), buffer.data(), buffer.size());
    if (length < 0)
      return detail::errno_error(errno, fmt::format("{}: reading the kernel's answer", what));
    int remaining = static_cast<int>(length);
    for (auto* message = reinterpret_cast<const nlmsghdr*>(buffer.data());
         mnl_nlmsg_ok(message, remaining); message = mnl_nlmsg_next(message, &remaining)) {
      if (message->nlmsg_type != NLMSG_ERROR)
        continue;
      const auto* answer = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(message));
      if (answer->error == 0) {
        ++acknowledged;
        continue;
      }
      const int error = -answer->error;
      if (error == tolerated)
        return {};
      const std::uint32_t index = message->nlmsg_seq - batch.first_seq;
      const std::string culprit = index > 0 && index < batch.descriptions.size()
                                      ? fmt::format("{} ({})", what, batch.descriptions[index])
                                      : std::string(what);
      if (error == EOPNOTSUPP || (error == ENOENT && index > 0))
        return Error{ErrorKind::kUnsupported,
                     fmt::format("{}: {}; the kernel lacks an nftables feature this rule needs "
                                 "(nft_nat, nft_ct, nft_rt, nft_exthdr, IPv6 NAT?)",
                                 culprit, std::strerror(error))};
      return detail::errno_error(error, culprit);
    }
  }
  return {};
}

// The table's messages: add + delete + add (one transaction that works whether or not a
// previous run left the table), then its chains, anonymous sets and rules.
void append_table(BatchWriter& writer, const Table& table, std::uint32_t& next_set_id) {
  const std::string family = family_name(table.family);
  append_table_message(writer, NFT_MSG_NEWTABLE, NLM_F_CREATE, table.family, table.name,
                       fmt::format("table {} {} (ensure)", family, table.name));
  append_table_message(writer, NFT_MSG_DELTABLE, 0, table.family, table.name,
                       fmt::format("table {} {} (delete the old one)", family, table.name));
  append_table_message(writer, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, table.family,
                       table.name, fmt::format("table {} {}", family, table.name));

  for (const Chain& chain : table.chains) {
    ChainPtr encoded(nftnl_chain_alloc());
    nftnl_chain_set_str(encoded.get(), NFTNL_CHAIN_TABLE, table.name.c_str());
    nftnl_chain_set_str(encoded.get(), NFTNL_CHAIN_NAME, chain.name.c_str());
    nftnl_chain_set_u32(encoded.get(), NFTNL_CHAIN_FAMILY, family_number(table.family));
    nftnl_chain_set_u32(encoded.get(), NFTNL_CHAIN_HOOKNUM, hook_number(chain.hook));
    nftnl_chain_set_s32(encoded.get(), NFTNL_CHAIN_PRIO, chain.priority);
    nftnl_chain_set_str(encoded.get(), NFTNL_CHAIN_TYPE,
                        chain.type == ChainType::kNat ? "nat" : "filter");
    nftnl_chain_set_u32(encoded.get(), NFTNL_CHAIN_POLICY, verdict_code(chain.policy));
    nlmsghdr* message = writer.header(NFT_MSG_NEWCHAIN, NLM_F_CREATE, table.family);
    nftnl_chain_nlmsg_build_payload(message, encoded.get());
    writer.append(
        message,
        fmt::format("{}chain {}", table.family == Family::kIp ? "" : family + " ", chain.name));
  }

  for (const Chain& chain : table.chains) {
    for (std::size_t i = 0; i < chain.rules.size(); ++i) {
      const Rule& rule = chain.rules[i];
      const std::string label =
          fmt::format("rule {} of {}chain {}", i + 1,
                      table.family == Family::kIp ? "" : family + " ", chain.name);
      RulePtr encoded(nftnl_rule_alloc());
      nftnl_rule_set_str(encoded.get(), NFTNL_RULE_TABLE, table.name.c_str());
      nftnl_rule_set_str(encoded.get(), NFTNL_RULE_CHAIN, chain.name.c_str());
      nftnl_rule_set_u32(encoded.get(), NFTNL_RULE_FAMILY, family_number(table.family));
      RuleEncoder encoder(writer, table, next_set_id, label);
      encoder.begin(encoded.get(), rule);
      for (const Expression& expression : rule.expressions)
        encoder.encode(encoded.get(), expression);
      if (!rule.comment.empty()) {
        UdataPtr udata(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
        nftnl_udata_put_strz(udata.get(), NFTNL_UDATA_RULE_COMMENT, rule.comment.c_str());
        nftnl_rule_set_data(encoded.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(udata.get()),
                            nftnl_udata_buf_len(udata.get()));
      }
      nlmsghdr* message = writer.header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, table.family);
      nftnl_rule_nlmsg_build_payload(message, encoded.get());
      writer.append(message, fmt::format("{}: {}", label, render(rule)));
    }
  }
}

}  // namespace

NftBatch encode_replace_batch(const std::vector<Table>& tables, std::uint32_t first_seq) {
  BatchWriter writer(first_seq);
  begin(writer);
  std::uint32_t next_set_id = 1;
  for (const Table& table : tables)
    append_table(writer, table, next_set_id);
  end(writer);
  return writer.finish();
}

NftBatch encode_replace_batch(const Table& table, std::uint32_t first_seq) {
  return encode_replace_batch(std::vector<Table>{table}, first_seq);
}

NftBatch encode_delete_batch(std::string_view table, std::uint32_t first_seq, Family family) {
  BatchWriter writer(first_seq);
  begin(writer);
  append_table_message(writer, NFT_MSG_DELTABLE, 0, family, table,
                       fmt::format("table {} {}", family_name(family), table));
  end(writer);
  return writer.finish();
}

Result<void> commit_tables(const std::vector<Table>& tables) {
  std::string names;
  for (const Table& table : tables)
    names += fmt::format("{}table {} {}", names.empty() ? "" : " and ", family_name(table.family),
                         table.name);
  const auto batch = encode_replace_batch(tables, 1);
  return send_batch(batch, fmt::format("nftables: committing {}", names));
}

Result<void> commit_table(const Table& table) {
  return commit_tables({table});
}

Result<void> delete_table(std::string_view table, Family family) {
  const auto batch = encode_delete_batch(table, 1, family);
  return send_batch(
      batch, fmt::format("nftables: deleting table {} {}", family_name(family), table), ENOENT);
}

}  // namespace berth::net
