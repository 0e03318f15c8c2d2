#include "net/resolv_conf.hpp"

#include <catch2/catch.hpp>

using berth::net::parse_resolv_conf;

TEST_CASE("net: a Kubernetes pod's resolv.conf", "[resolv]") {
  const auto conf = parse_resolv_conf(
      "search default.svc.cluster.local svc.cluster.local cluster.local\n"
      "nameserver 10.96.0.10\n"
      "options ndots:5\n");
  REQUIRE(conf.nameservers.size() == 1);
  CHECK(conf.nameservers[0].to_string() == "10.96.0.10");
  CHECK(conf.search
        == std::vector<std::string>{"default.svc.cluster.local", "svc.cluster.local",
                                    "cluster.local"});
  CHECK(conf.ndots == 5);
}

TEST_CASE("net: resolv.conf quirks: comments, limits, bad lines, last search wins", "[resolv]") {
  const auto conf = parse_resolv_conf(
      "# generated\n"
      "domain example.org\n"
      "nameserver 1.1.1.1 # trailing comment\n"
      "nameserver not-an-address\n"
      "nameserver fe80::1%eth0\n"
      "nameserver 8.8.8.8\n"
      "nameserver 9.9.9.9\n"
      "search a.example b.example ; comment\n"
      "options rotate ndots:99 timeout:1\n"
      "nameserver");
  REQUIRE(conf.nameservers.size() == 3);
  CHECK(conf.nameservers[0].to_string() == "1.1.1.1");
  CHECK(conf.nameservers[1].to_string() == "fe80::1");
  CHECK(conf.nameservers[2].to_string() == "8.8.8.8");
  CHECK(conf.search == std::vector<std::string>{"a.example", "b.example"});
  CHECK(conf.ndots == 15);
  CHECK(parse_resolv_conf("").nameservers.empty());
}

TEST_CASE("net: a dual-stack pod's resolv.conf keeps its IPv6 nameservers", "[resolv]") {
  const auto conf = parse_resolv_conf(
      "nameserver fd00:10:96::a\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n");
  REQUIRE(conf.nameservers.size() == 3);
  CHECK(conf.nameservers[0] == boost::asio::ip::make_address("fd00:10:96::a"));
  CHECK(conf.nameservers[1].is_v4());
  CHECK(conf.nameservers[2] == boost::asio::ip::make_address("fe80::1"));  // the scope dropped
}
