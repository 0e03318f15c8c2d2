// The QEMU guest agent end to end: the berth binary in a pod namespace boots the test guest's
// agent variant (test/guest/build-guest-agent.sh, Debian's qemu-guest-agent 7.2) and the test
// checks, from outside, what berth learns and does through the agent: the status and metrics,
// /readyz with BERTH_READY_AGENT, a freeze that blocks a write in the guest until the thaw, the
// automatic thaw, the agent killed and restarted in the guest, and a guest that ignores the ACPI
// button powered off through the agent.

#include <signal.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "test/support/pod_cluster.hpp"

using namespace berth::test;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kToken = "agent-test-token";

std::string userdata() {
  return slurp(std::string(BERTH_SOURCE_DIR) + "/test/e2e/agent_userdata.sh");
}

struct AgentCluster : PodCluster {
  explicit AgentCluster(std::string extra_userdata = {})
      : PodCluster(PodClusterOptions(test_guest_agent(), userdata() + extra_userdata,
                                     R"({"uuid": "agent-uuid-1", "hostname": "agent-guest"})")) {
    write_text(dir.path / "token", std::string(kToken) + "\n");
  }
  std::unique_ptr<BerthProcess> start_berth(std::vector<std::string> extra) {
    extra.push_back("NO_VNC=1");
    extra.push_back("BERTH_VIEWER=no");
    extra.push_back("BERTH_CONTROL_TOKEN_FILE=" + (dir.path / "token").string());
    return start(std::move(extra));
  }
  // The control API in the pod (curl there): "<status>\n<body>".
  std::string control(const std::string& method, const std::string& path) const {
    return in_ns(net.pod(), "curl -s -m 90 -X " + method + " -H \"Authorization: Bearer " + kToken
                                + "\" -H \"Content-Type: application/json\""
                                + (method == "POST" ? " -d {}" : "")
                                + " -w \"\\n%{http_code}\" http://127.0.0.1:9251" + path);
  }
  json::value status() const {
    const std::string reply = control("GET", "/api/v1/status");
    boost::system::error_code ec;
    auto value = json::parse(reply.substr(0, reply.rfind('\n')), ec);
    return ec ? json::value() : value;
  }
  std::string health(const std::string& path) const {
    return in_ns(net.pod(), "curl -s -m 10 http://127.0.0.1:9250" + path);
  }
  std::string readyz_code() const {
    return in_ns(net.pod(),
                 "curl -s -o /dev/null -m 10 -w %{http_code} http://127.0.0.1:9250/readyz");
  }
  // GET http://<pod IP>/cgi-bin/<name> from the node: the guest's CGI scripts.
  std::string guest_cgi(const std::string& name, int seconds = 10) const {
    return in_ns(net.node(), "curl -s -m " + std::to_string(seconds) + " http://" + PodNet::kPodIp
                                 + "/cgi-bin/" + name);
  }
  // Polls `done` every 500 ms for at most `limit`.
  template <class Pred>
  static bool eventually(Pred done, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return true;
  }
  bool connected() const {
    const auto s = status();
    const auto* agent = s.is_object() ? s.as_object().if_contains("guest_agent") : nullptr;
    return agent && agent->is_object() && agent->as_object().at("connected") == true;
  }
};

bool metric_has(const std::string& metrics, const std::string& line) {
  return metrics.find(line) != std::string::npos;
}

}  // namespace

TEST_CASE("e2e: the guest agent: status, metrics, readiness, freeze and thaw, kill and restart",
          "[e2e-agent]") {
  AgentCluster cluster;
  auto berth = cluster.start_berth({"BERTH_READY_AGENT=yes", "BERTH_FSFREEZE_TIMEOUT=10"});
  REQUIRE(berth->wait_console("berth-guest: agent /dev/vport", 240s));
  REQUIRE(berth->wait_console("berth-guest: ready", 60s));

  // The status: what the agent says, refreshed when it first answers.
  json::object agent;
  REQUIRE(AgentCluster::eventually(
      [&] {
        const auto s = cluster.status();
        const auto* a = s.is_object() ? s.as_object().if_contains("guest_agent") : nullptr;
        if (!a || !a->is_object() || a->as_object().at("hostname") != "agent-guest")
          return false;
        agent = a->as_object();
        return true;
      },
      90s));
  INFO(json::serialize(agent));
  CHECK(agent.at("connected") == true);
  CHECK(agent.at("os").at("id") == "berth-guest");
  CHECK(agent.at("os").at("kernel_release").as_string().ends_with("-cloud-amd64"));
  CHECK(agent.at("timezone").at("offset_seconds") == 0);
  bool address = false;
  for (const auto& i : agent.at("interfaces").as_array())
    for (const auto& a : i.at("addresses").as_array())
      address = address || a.at("address") == "192.168.254.2";
  CHECK(address);
  // The test guest's root is its initramfs (no block device, so the agent leaves it out): its one
  // disk filesystem is /data, ext4 on the pet disk's second partition.
  bool data = false;
  for (const auto& fs : agent.at("filesystems").as_array())
    data = data
           || (fs.at("mountpoint") == "/data" && fs.at("type") == "ext4"
               && fs.at("total_bytes").to_number<double>() > 100e6);
  CHECK(data);
  const std::string metrics = cluster.health("/metrics");
  CHECK(metric_has(metrics, "berth_guest_agent_connected 1"));
  CHECK(
      metric_has(metrics, "berth_guest_filesystem_size_bytes{mountpoint=\"/data\",type=\"ext4\"}"));
  CHECK(cluster.readyz_code() == "200");

  // A freeze: a write to /data blocks until the thaw.
  const std::string frozen = cluster.control("POST", "/api/v1/fsfreeze");
  INFO(frozen);
  REQUIRE(frozen.ends_with("\n200"));
  CHECK_THAT(frozen, Catch::Contains("\"thaw_within_seconds\":10"));
  auto started = Clock::now();
  auto write = std::async(std::launch::async, [&] { return cluster.guest_cgi("write", 60); });
  CHECK(write.wait_for(std::chrono::seconds(3)) == std::future_status::timeout);
  const std::string thawed = cluster.control("POST", "/api/v1/fsthaw");
  CHECK(thawed.ends_with("\n200"));
  CHECK(write.get() == "written");
  const double blocked = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("agent: a write blocked %.1fs by the freeze, until the thaw\n", blocked);
  CHECK(blocked >= 3);

  // A freeze nobody thaws: berth thaws after BERTH_FSFREEZE_TIMEOUT (10 s).
  REQUIRE(cluster.control("POST", "/api/v1/fsfreeze").ends_with("\n200"));
  started = Clock::now();
  auto late = std::async(std::launch::async, [&] { return cluster.guest_cgi("write", 90); });
  CHECK(late.get() == "written");
  const double auto_thaw = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("agent: the automatic thaw released the write after %.1fs\n", auto_thaw);
  CHECK(auto_thaw >= 8);
  CHECK(berth->wait_log("still frozen after 10s; thawing them", 5s));
  CHECK(metric_has(cluster.health("/metrics"), "berth_guest_auto_thaws_total 1"));

  // The agent killed in the guest: the metric and readiness flip; restarted, both recover.
  REQUIRE(cluster.guest_cgi("agent-stop") == "stopped");
  started = Clock::now();
  CHECK(AgentCluster::eventually(
      [&] { return metric_has(cluster.health("/metrics"), "berth_guest_agent_connected 0"); },
      30s));
  std::printf("agent: berth saw the agent gone after %.1fs\n",
              std::chrono::duration<double>(Clock::now() - started).count());
  CHECK(cluster.readyz_code() == "503");
  CHECK_THAT(cluster.health("/readyz"), Catch::Contains("guest agent"));
  CHECK(cluster.control("POST", "/api/v1/fsfreeze").ends_with("\n409"));
  REQUIRE(cluster.guest_cgi("agent-start") == "started");
  started = Clock::now();
  CHECK(AgentCluster::eventually([&] { return cluster.connected(); }, 60s));
  std::printf("agent: berth saw the agent back after %.1fs\n",
              std::chrono::duration<double>(Clock::now() - started).count());
  CHECK(AgentCluster::eventually([&] { return cluster.readyz_code() == "200"; }, 30s));

  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(60s) == 0);
}

TEST_CASE("e2e: a guest that ignores the ACPI button is powered off through its agent",
          "[e2e-agent]") {
  AgentCluster cluster("kill \"$(cat /run/berth/acpid.pid)\"\n");
  auto berth = cluster.start_berth({"BERTH_SHUTDOWN_TIMEOUT=30"});
  REQUIRE(berth->wait_console("berth-guest: ready", 240s));
  REQUIRE(AgentCluster::eventually([&] { return cluster.connected(); }, 60s));
  const auto sent = Clock::now();
  berth->signal(SIGTERM);
  CHECK(berth->wait_exit(90s) == 0);
  std::printf("agent: powered off through the agent %.1fs after SIGTERM\n",
              std::chrono::duration<double>(Clock::now() - sent).count());
  CHECK(berth->wait_log("ignored the ACPI power button; asking its agent", 0ms));
  CHECK(berth->wait_console("shutdown by the guest agent: poweroff", 0ms));
}
