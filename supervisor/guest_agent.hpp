#pragma once
// What berth knows of the guest through its QEMU guest agent: whether the agent answers (a ping
// every few seconds), what it last said about the guest (OS, hostname, time zone, interfaces,
// filesystems, users; refreshed while it answers), and the filesystem freeze with its automatic
// thaw. One object for the supervisor's life; the VM's agent client is attached per QEMU.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/metrics.hpp"
#include "qemu/agent/agent_client.hpp"

namespace berth {

// What the agent said about the guest the last time it was asked.
struct GuestFacts {
  std::optional<agent::OsInfo> os;
  std::string hostname;
  std::optional<agent::Timezone> timezone;
  std::vector<agent::Interface> interfaces;
  std::vector<agent::Filesystem> filesystems;
  std::vector<agent::User> users;
};

// The outcome of a freeze or thaw for the API: ok with the number of filesystems, or refused
// (kNoAgent: 409) or failed (kFailed: 502) with why.
struct FreezeOutcome {
  enum class Status { kOk, kNoAgent, kFailed };
  Status status = Status::kOk;
  std::int64_t filesystems = 0;
  std::string reason;
};

// The agent's facts as JSON for /api/v1/status: {"connected":..., "os":..., "hostname":...,
// "timezone":..., "interfaces":[...], "filesystems":[...], "users":[...], "frozen":...}.
boost::json::object guest_facts_json(const GuestFacts& facts);

class GuestAgent {
 public:
  using Duration = std::chrono::steady_clock::duration;

  // `auto_thaw`: how long a freeze lasts at most before berth thaws by itself.
  GuestAgent(std::shared_ptr<spdlog::logger> log, std::chrono::seconds auto_thaw);

  // The agent of a new QEMU (null: none); its facts are forgotten until it answers.
  void attach(std::shared_ptr<agent::Client> client);
  // Pings every `period` and refreshes the facts every `refresh` while the agent answers, the
  // first time `settle` after it (again) answers: an agent appears while its guest boots (it
  // starts beside sshd and the other services), and six commands then would take that CPU from
  // them. Runs until the loop stops.
  boost::asio::awaitable<void> run(Duration period = std::chrono::seconds(2),
                                   Duration refresh = std::chrono::seconds(30),
                                   Duration settle = std::chrono::seconds(10));

  // Whether the agent answers: the last ping, or the one before it, got an answer.
  bool connected() const { return connected_; }
  const GuestFacts& facts() const { return facts_; }
  bool frozen() const { return frozen_; }
  // A ping now, within `timeout`: nullopt when it answered, else why not (for /readyz).
  boost::asio::awaitable<std::optional<std::string>> ping(Duration timeout);
  // guest-fsfreeze-freeze; a thaw follows by itself after auto_thaw unless thaw() comes first.
  boost::asio::awaitable<FreezeOutcome> freeze();
  // guest-fsfreeze-thaw.
  boost::asio::awaitable<FreezeOutcome> thaw();
  std::chrono::seconds auto_thaw() const { return auto_thaw_; }
  // The status JSON (guest_facts_json with "connected" and "frozen").
  boost::json::object status() const;

  // Registers berth_guest_agent_connected, berth_guest_filesystem_used_bytes,
  // berth_guest_filesystem_size_bytes, berth_guest_users, berth_guest_frozen and
  // berth_guest_auto_thaws_total; this object must outlive every render.
  void register_metrics(MetricsRegistry& registry) const;

 private:
  boost::asio::awaitable<void> refresh(std::shared_ptr<agent::Client> client);
  boost::asio::awaitable<void> thaw_later(std::uint64_t generation);

  std::shared_ptr<spdlog::logger> log_;
  std::chrono::seconds auto_thaw_;
  std::shared_ptr<agent::Client> client_;
  bool connected_ = false;
  int missed_ = 0;  // pings in a row without an answer
  bool frozen_ = false;
  std::uint64_t freeze_generation_ = 0;
  std::uint64_t auto_thaws_ = 0;
  std::optional<std::chrono::steady_clock::time_point> refreshed_;
  std::chrono::steady_clock::time_point answering_since_;  // when it last began to answer
  GuestFacts facts_;
};

}  // namespace berth
