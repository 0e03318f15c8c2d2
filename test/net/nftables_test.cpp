#include "net/nftables.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "net/nat.hpp"
#include "sample.hpp"

using namespace berth::net;

namespace {

std::vector<const nlmsghdr*> messages_of(const NftBatch& batch) {
  std::vector<const nlmsghdr*> messages;
  int remaining = static_cast<int>(batch.bytes.size());
  for (auto* message = reinterpret_cast<const nlmsghdr*>(batch.bytes.data());
       mnl_nlmsg_ok(message, remaining); message = mnl_nlmsg_next(message, &remaining))
    messages.push_back(message);
  CHECK(remaining == 0);
  return messages;
}

int nft_type(const nlmsghdr* message) {
  return (message->nlmsg_type >> 8) == NFNL_SUBSYS_NFTABLES ? message->nlmsg_type & 0xff : -1;
}

// The attributes inside [begin, end).
std::vector<const nlattr*> attributes(const void* begin, const void* end) {
  std::vector<const nlattr*> found;
  const auto* attribute = static_cast<const nlattr*>(begin);
  while (mnl_attr_ok(attribute, static_cast<int>(static_cast<const char*>(end)
                                                 - reinterpret_cast<const char*>(attribute)))) {
    found.push_back(attribute);
    attribute = mnl_attr_next(attribute);
  }
  return found;
}

std::vector<const nlattr*> nested(const nlattr* nest) {
  const auto* payload = static_cast<const char*>(mnl_attr_get_payload(nest));
  return attributes(payload, payload + mnl_attr_get_payload_len(nest));
}

// "\telement 00000c17  : 0 [end]" per element, as libnftnl prints them (its own parser of
// element lists reads only the first element, so the list is walked here).
std::string elements_of(const nlmsghdr* message) {
  std::string text;
  for (const nlattr* list : attributes(mnl_nlmsg_get_payload_offset(message, sizeof(nfgenmsg)),
                                       mnl_nlmsg_get_payload_tail(message))) {
    if (mnl_attr_get_type(list) != NFTA_SET_ELEM_LIST_ELEMENTS)
      continue;
    for (const nlattr* element : nested(list))
      for (const nlattr* field : nested(element)) {
        if (mnl_attr_get_type(field) != NFTA_SET_ELEM_KEY)
          continue;
        for (const nlattr* value : nested(field)) {
          std::array<std::uint32_t, 4> words{};
          const auto length = std::min<std::size_t>(mnl_attr_get_payload_len(value), 16);
          std::memcpy(words.data(), mnl_attr_get_payload(value), length);
          text += "\telement ";
          for (std::size_t i = 0; i < (length + 3) / 4; ++i) {
            std::array<char, 16> word{};
            std::snprintf(word.data(), word.size(), "%.8x ", words[i]);
            text += word.data();
          }
          text += " : 0 [end]";
        }
      }
  }
  return text;
}

// The sets, elements and rules of `batch` in the format of `nft --debug=netlink` (libnftnl's).
std::string netlink_dump(const NftBatch& batch) {
  std::string dump;
  std::vector<char> text(16384);
  for (const nlmsghdr* message : messages_of(batch)) {
    const int type = nft_type(message);
    if (type == NFT_MSG_NEWRULE) {
      std::unique_ptr<nftnl_rule, void (*)(const nftnl_rule*)> rule(nftnl_rule_alloc(),
                                                                    nftnl_rule_free);
      REQUIRE(nftnl_rule_nlmsg_parse(message, rule.get()) == 0);
      nftnl_rule_snprintf(text.data(), text.size(), rule.get(), NFTNL_OUTPUT_DEFAULT, 0);
      dump += std::string(text.data()) + "\n";
    } else if (type == NFT_MSG_NEWSET || type == NFT_MSG_NEWSETELEM) {
      std::unique_ptr<nftnl_set, void (*)(const nftnl_set*)> set(nftnl_set_alloc(), nftnl_set_free);
      if (type == NFT_MSG_NEWSET)
        REQUIRE(nftnl_set_nlmsg_parse(message, set.get()) == 0);
      else
        (void)nftnl_set_elems_nlmsg_parse(message, set.get());  // table and name
      nftnl_set_snprintf(text.data(), text.size(), set.get(), NFTNL_OUTPUT_DEFAULT, 0);
      const std::string printed = text.data();
      if (type == NFT_MSG_NEWSET)
        dump += printed + "\n";
      else  // the set's line, then every element
        dump += printed.substr(0, printed.find('\n')) + "\n" + elements_of(message) + "\n";
    }
  }
  return dump;
}

}  // namespace

TEST_CASE("net: the encoded rules are the expressions nft itself sends", "[nftables]") {
  // golden/berth-calico.netlink: `nft --debug=netlink -f golden/berth-calico.nft` (nft 1.0.6),
  // from the first set on.
  const auto batch = encode_replace_batch(build_nat_table(nat_spec(test::sample_spec())), 100);
  CHECK(netlink_dump(batch) == test::golden("berth-calico.netlink"));
}

TEST_CASE("net: the encoded IPv6 rules are the expressions nft itself sends", "[nftables]") {
  // golden/berth-calico6.netlink: `nft --debug=netlink -f golden/berth-calico6.nft` (nft 1.0.6),
  // from the first set on.
  const auto batch = encode_replace_batch(build_nat6_table(nat_spec(test::sample_spec6())), 100);
  CHECK(netlink_dump(batch) == test::golden("berth-calico6.netlink"));
}

TEST_CASE("net: a dual-stack pod's two tables go in one batch, the ip one as before",
          "[nftables]") {
  const auto spec = nat_spec(test::sample_spec6());
  const auto both = encode_replace_batch(build_nat_tables(spec), 100);
  const auto ip_only = encode_replace_batch(build_nat_table(spec), 100);
  const auto messages = messages_of(both);
  REQUIRE(messages.size() == both.descriptions.size());
  CHECK(messages.front()->nlmsg_type == NFNL_MSG_BATCH_BEGIN);
  CHECK(messages.back()->nlmsg_type == NFNL_MSG_BATCH_END);
  std::size_t batch_ends = 0;
  for (const auto* message : messages)
    batch_ends += message->nlmsg_type == NFNL_MSG_BATCH_END ? 1 : 0;
  CHECK(batch_ends == 1);
  // The ip table's messages come first and are exactly those of the IPv4-only batch.
  const std::size_t ip_bytes = ip_only.bytes.size() - messages_of(ip_only).back()->nlmsg_len;
  CHECK(std::equal(ip_only.bytes.begin(), ip_only.bytes.begin() + ip_bytes, both.bytes.begin()));
  const auto ip6_start = ip_only.descriptions.size() - 1;
  CHECK(both.descriptions[ip6_start] == "table ip6 berth (ensure)");
  CHECK(reinterpret_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(messages[ip6_start]))->nfgen_family
        == NFPROTO_IPV6);
  CHECK(both.descriptions[both.descriptions.size() - 2]
        == "rule 8 of ip6 chain input: iifname \"br0\" reject comment \"the rest of the pod is "
           "not the VM's\"");
}

TEST_CASE("net: one batch replaces the table atomically", "[nftables]") {
  const auto table = build_nat_table(nat_spec(test::sample_spec()));
  const auto batch = encode_replace_batch(table, 100);
  const auto messages = messages_of(batch);
  REQUIRE(messages.size() == batch.descriptions.size());
  REQUIRE(messages.size() > 5);
  CHECK(messages.front()->nlmsg_type == NFNL_MSG_BATCH_BEGIN);
  CHECK(messages.back()->nlmsg_type == NFNL_MSG_BATCH_END);
  for (std::size_t i = 0; i < messages.size(); ++i) {
    CHECK(messages[i]->nlmsg_seq == 100 + i);
    const bool inner = i > 0 && i + 1 < messages.size();
    CHECK(((messages[i]->nlmsg_flags & NLM_F_ACK) != 0) == inner);
  }
  CHECK(nft_type(messages[1]) == NFT_MSG_NEWTABLE);
  CHECK(nft_type(messages[2]) == NFT_MSG_DELTABLE);
  CHECK(nft_type(messages[3]) == NFT_MSG_NEWTABLE);
  CHECK((messages[3]->nlmsg_flags & NLM_F_EXCL) != 0);
  std::size_t rules = 0;
  for (const auto* message : messages)
    rules += nft_type(message) == NFT_MSG_NEWRULE ? 1 : 0;
  std::size_t expected_rules = 0;
  for (const auto& chain : table.chains)
    expected_rules += chain.rules.size();
  CHECK(rules == expected_rules);
  CHECK(batch.descriptions[batch.descriptions.size() - 2]
        == "rule 7 of chain input: iifname \"br0\" reject comment \"the rest of the pod is not the "
           "VM's\"");
}

TEST_CASE("net: the delete batch deletes one table", "[nftables]") {
  const auto batch = encode_delete_batch("berth", 7);
  const auto messages = messages_of(batch);
  REQUIRE(messages.size() == 3);
  CHECK(nft_type(messages[1]) == NFT_MSG_DELTABLE);
  CHECK(batch.descriptions[1] == "table ip berth");
  const auto batch6 = encode_delete_batch("berth", 7, berth::net::nft::Family::kIp6);
  CHECK(batch6.descriptions[1] == "table ip6 berth");
}
