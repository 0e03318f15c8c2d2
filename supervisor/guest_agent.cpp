#include "supervisor/guest_agent.hpp"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/async.hpp"

namespace berth {
namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kInfoDeadline = 5s;
// Freezing flushes every filesystem: slow under TCG or with much dirty data.
constexpr auto kFreezeDeadline = 60s;

json::object os_json(const agent::OsInfo& os) {
  return {{"id", os.id},
          {"name", os.name},
          {"pretty_name", os.pretty_name},
          {"version", os.version},
          {"version_id", os.version_id},
          {"kernel_release", os.kernel_release},
          {"kernel_version", os.kernel_version},
          {"machine", os.machine}};
}

json::array interfaces_json(const std::vector<agent::Interface>& interfaces) {
  json::array out;
  for (const auto& interface : interfaces) {
    json::array addresses;
    for (const auto& a : interface.addresses)
      addresses.push_back(
          json::object{{"type", a.type}, {"address", a.address}, {"prefix", a.prefix}});
    out.push_back(json::object{
        {"name", interface.name}, {"mac", interface.mac}, {"addresses", std::move(addresses)}});
  }
  return out;
}

json::array filesystems_json(const std::vector<agent::Filesystem>& filesystems) {
  json::array out;
  for (const auto& fs : filesystems) {
    json::object o{{"name", fs.name}, {"mountpoint", fs.mountpoint}, {"type", fs.type}};
    o["used_bytes"] = fs.used ? json::value(*fs.used) : json::value(nullptr);
    o["total_bytes"] = fs.total ? json::value(*fs.total) : json::value(nullptr);
    out.push_back(std::move(o));
  }
  return out;
}

// The value of a command's reply read by `parse`, or nullopt (logged at debug: older agents
// lack some commands).
template <class Parse>
auto read_fact(const agent::CommandResult& result, Parse parse, spdlog::logger& log,
               std::string_view command)
    -> std::optional<
        std::variant_alternative_t<0, decltype(parse(std::declval<const json::value&>()))>> {
  if (!result.ok()) {
    log.debug("guest agent {}: {}", command, result.describe());
    return std::nullopt;
  }
  auto parsed = parse(result.value);
  if (auto* bad = std::get_if<agent::ParseError>(&parsed)) {
    log.warn("guest agent {}: {}", command, bad->reason);
    return std::nullopt;
  }
  return std::move(std::get<0>(parsed));
}

}  // namespace

json::object guest_facts_json(const GuestFacts& facts) {
  json::object out;
  out["os"] = facts.os ? json::value(os_json(*facts.os)) : json::value(nullptr);
  out["hostname"] = facts.hostname;
  if (facts.timezone)
    out["timezone"] =
        json::object{{"zone", facts.timezone->zone}, {"offset_seconds", facts.timezone->offset}};
  else
    out["timezone"] = nullptr;
  out["interfaces"] = interfaces_json(facts.interfaces);
  out["filesystems"] = filesystems_json(facts.filesystems);
  json::array users;
  for (const auto& user : facts.users)
    users.push_back(json::object{{"name", user.name}, {"login_time", user.login_time}});
  out["users"] = std::move(users);
  return out;
}

GuestAgent::GuestAgent(std::shared_ptr<spdlog::logger> log, std::chrono::seconds auto_thaw)
    : log_(std::move(log)), auto_thaw_(auto_thaw) {}

void GuestAgent::attach(std::shared_ptr<agent::Client> client) {
  client_ = std::move(client);
  connected_ = false;
  missed_ = 0;
  frozen_ = false;  // a new QEMU runs a booting guest
  ++freeze_generation_;
  refreshed_.reset();
  facts_ = {};
}

asio::awaitable<void> GuestAgent::run(Duration period, Duration refresh_every, Duration settle) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(period);
    co_await timer.async_wait(asio::use_awaitable);
    auto client = client_;
    if (!client) {
      connected_ = false;
      continue;
    }
    auto pong = co_await client->execute("guest-ping", {}, 3s);
    if (client != client_)
      continue;  // a new QEMU meanwhile
    const bool was = connected_;
    // Two misses in a row before it counts as gone: one slow answer (a loaded host, TCG) is not.
    missed_ = pong.ok() ? 0 : missed_ + 1;
    connected_ = pong.ok() || (was && missed_ < 2);
    if (was && !connected_)
      log_->warn("the guest agent stopped answering: {}", pong.describe());
    const auto now = std::chrono::steady_clock::now();
    if (!was && connected_) {
      log_->info("the guest agent answers guest-ping");
      answering_since_ = now;
      refreshed_.reset();  // a new agent or a rebooted guest: its facts are asked for anew
    }
    const bool due =
        refreshed_ ? now - *refreshed_ >= refresh_every : now - answering_since_ >= settle;
    if (connected_ && !frozen_ && due)
      co_await refresh(client);
  }
}

asio::awaitable<void> GuestAgent::refresh(std::shared_ptr<agent::Client> client) {
  GuestFacts facts;
  auto os = co_await client->execute("guest-get-osinfo", {}, kInfoDeadline);
  facts.os = read_fact(os, agent::parse_osinfo, *log_, "guest-get-osinfo");
  auto host = co_await client->execute("guest-get-host-name", {}, kInfoDeadline);
  facts.hostname =
      read_fact(host, agent::parse_hostname, *log_, "guest-get-host-name").value_or(std::string());
  auto zone = co_await client->execute("guest-get-timezone", {}, kInfoDeadline);
  facts.timezone = read_fact(zone, agent::parse_timezone, *log_, "guest-get-timezone");
  auto interfaces = co_await client->execute("guest-network-get-interfaces", {}, kInfoDeadline);
  facts.interfaces =
      read_fact(interfaces, agent::parse_interfaces, *log_, "guest-network-get-interfaces")
          .value_or(std::vector<agent::Interface>{});
  auto fs = co_await client->execute("guest-get-fsinfo", {}, kInfoDeadline);
  facts.filesystems = read_fact(fs, agent::parse_fsinfo, *log_, "guest-get-fsinfo")
                          .value_or(std::vector<agent::Filesystem>{});
  auto users = co_await client->execute("guest-get-users", {}, kInfoDeadline);
  facts.users = read_fact(users, agent::parse_users, *log_, "guest-get-users")
                    .value_or(std::vector<agent::User>{});
  if (client != client_)
    co_return;
  facts_ = std::move(facts);
  refreshed_ = std::chrono::steady_clock::now();
}

asio::awaitable<std::optional<std::string>> GuestAgent::ping(Duration timeout) {
  auto client = client_;
  if (!client)
    co_return std::string("the VM has no guest agent channel yet");
  auto pong = co_await client->execute("guest-ping", {}, timeout);
  if (pong.ok())
    co_return std::nullopt;
  co_return "the guest agent does not answer guest-ping (" + pong.describe() + ")";
}

asio::awaitable<FreezeOutcome> GuestAgent::freeze() {
  auto client = client_;
  if (!client || !connected_)
    co_return FreezeOutcome{FreezeOutcome::Status::kNoAgent, 0,
                            "no guest agent answers (is qemu-guest-agent running in the guest?)"};
  // The thaw is armed first: a freeze whose reply is lost may still have frozen the guest.
  frozen_ = true;
  const auto generation = ++freeze_generation_;
  auto executor = co_await asio::this_coro::executor;  // named: GCC 12 and co_await
  asio::co_spawn(executor, thaw_later(generation), log_exceptions(log_, "automatic thaw"));
  auto result = co_await client->execute("guest-fsfreeze-freeze", {}, kFreezeDeadline);
  if (result.error && generation == freeze_generation_) {
    frozen_ = false;  // the agent refused, or failed and thawed what it had frozen
    ++freeze_generation_;
  }
  if (!result.ok() || !result.value.is_int64())
    co_return FreezeOutcome{FreezeOutcome::Status::kFailed, 0,
                            "guest-fsfreeze-freeze: " + result.describe()};
  log_->info("froze {} guest filesystems; thawing by {}s at the latest", result.value.get_int64(),
             auto_thaw_.count());
  co_return FreezeOutcome{FreezeOutcome::Status::kOk, result.value.get_int64(), {}};
}

asio::awaitable<FreezeOutcome> GuestAgent::thaw() {
  auto client = client_;
  if (!client || !connected_)
    co_return FreezeOutcome{FreezeOutcome::Status::kNoAgent, 0,
                            "no guest agent answers (is qemu-guest-agent running in the guest?)"};
  auto result = co_await client->execute("guest-fsfreeze-thaw", {}, kFreezeDeadline);
  if (!result.ok() || !result.value.is_int64())
    co_return FreezeOutcome{FreezeOutcome::Status::kFailed, 0,
                            "guest-fsfreeze-thaw: " + result.describe()};
  frozen_ = false;
  ++freeze_generation_;  // the automatic thaw is not needed any more
  log_->info("thawed {} guest filesystems", result.value.get_int64());
  co_return FreezeOutcome{FreezeOutcome::Status::kOk, result.value.get_int64(), {}};
}

asio::awaitable<void> GuestAgent::thaw_later(std::uint64_t generation) {
  asio::steady_timer timer(co_await asio::this_coro::executor, auto_thaw_);
  co_await timer.async_wait(asio::use_awaitable);
  // Until a thaw succeeds (a new freeze, a thaw or a new QEMU changes the generation).
  while (generation == freeze_generation_ && client_) {
    log_->warn("the guest's filesystems are still frozen after {}s; thawing them",
               auto_thaw_.count());
    auto client = client_;
    auto result = co_await client->execute("guest-fsfreeze-thaw", {}, kFreezeDeadline);
    if (generation != freeze_generation_)
      co_return;
    if (result.ok()) {
      frozen_ = false;
      ++freeze_generation_;
      ++auto_thaws_;
      co_return;
    }
    log_->warn("automatic guest-fsfreeze-thaw: {}", result.describe());
    timer.expires_after(2s);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

json::object GuestAgent::status() const {
  json::object out = guest_facts_json(facts_);
  out["connected"] = connected_;
  out["frozen"] = frozen_;
  return out;
}

void GuestAgent::register_metrics(MetricsRegistry& registry) const {
  registry.gauge("berth_guest_agent_connected", "1 while the QEMU guest agent answers guest-ping.",
                 [this] { return connected_ ? 1.0 : 0.0; });
  auto per_fs = [this](bool used) {
    std::vector<Sample> samples;
    for (const auto& fs : facts_.filesystems) {
      const auto& value = used ? fs.used : fs.total;
      if (value)
        samples.push_back(
            {{{"mountpoint", fs.mountpoint}, {"type", fs.type}}, static_cast<double>(*value)});
    }
    return samples;
  };
  registry.family(MetricType::kGauge, "berth_guest_filesystem_used_bytes",
                  "Bytes used per guest filesystem (guest agent, guest-get-fsinfo).",
                  [per_fs] { return per_fs(true); });
  registry.family(MetricType::kGauge, "berth_guest_filesystem_size_bytes",
                  "Size in bytes per guest filesystem (guest agent, guest-get-fsinfo).",
                  [per_fs] { return per_fs(false); });
  registry.gauge("berth_guest_users", "Users logged in to the guest (guest agent).",
                 [this] { return static_cast<double>(facts_.users.size()); });
  registry.gauge("berth_guest_frozen", "1 while berth holds the guest's filesystems frozen.",
                 [this] { return frozen_ ? 1.0 : 0.0; });
  registry.counter("berth_guest_auto_thaws_total",
                   "Freezes berth ended itself after BERTH_FSFREEZE_TIMEOUT.",
                   [this] { return static_cast<double>(auto_thaws_); });
}

}  // namespace berth
