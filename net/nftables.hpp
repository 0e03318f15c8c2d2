#pragma once
// The kernel side of ruleset.hpp: an nft::Table encoded with libnftnl as one nf_tables batch and
// sent over NETLINK_NETFILTER with libmnl. A batch is one transaction: all of it or none of it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "net/ruleset.hpp"

namespace berth::net {

// Netlink messages from batch begin to batch end, and what each one does (for error messages).
struct NftBatch {
  std::vector<char> bytes;
  std::uint32_t first_seq = 0;            // the batch-begin message's sequence number
  std::vector<std::string> descriptions;  // [seq - first_seq]: "rule 2 of chain forward: ..."
};

// The batch that replaces any `<family> <table.name>` with `table`: add, delete, add the table,
// then its chains, anonymous sets and rules. Pure.
NftBatch encode_replace_batch(const nft::Table& table, std::uint32_t first_seq);

// The same for several tables (ip and ip6) in one batch: one transaction for all of them. Pure.
NftBatch encode_replace_batch(const std::vector<nft::Table>& tables, std::uint32_t first_seq);

// The batch that deletes `<family> <table>`. Pure.
NftBatch encode_delete_batch(std::string_view table, std::uint32_t first_seq,
                             nft::Family family = nft::Family::kIp);

// Commits encode_replace_batch(table) in the calling thread's network namespace. Errors:
// kPermission (no NET_ADMIN), kUnsupported (the kernel lacks nf_tables or an expression, the
// message names the rule), kSystem.
Result<void> commit_table(const nft::Table& table);

// Commits all of `tables` in one batch: all of them or none. Errors as for commit_table.
Result<void> commit_tables(const std::vector<nft::Table>& tables);

// Deletes `<family> <table>`; success when there is no such table. Errors as for commit_table.
Result<void> delete_table(std::string_view table, nft::Family family = nft::Family::kIp);

}  // namespace berth::net
