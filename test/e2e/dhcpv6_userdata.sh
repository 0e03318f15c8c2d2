#!/bin/sh
# User-data of the udhcpc6 end-to-end test (dhcpv6_test.cpp), run by the dhcpv6 guest variant
# (test/guest/build-guest-dhcpv6.sh) at boot. Not a file the host runs.
# The kernel's SLAAC is turned off on eth0 and what it configured is removed, so the address can
# only come from DHCPv6; busybox udhcpc6 then asks berth's server (its default script adds the
# address as a /128 and the DNS server to /etc/resolv.conf). The default route is the one the
# router advertisements name (fe80::1, the bridge): DHCPv6 carries no routes. What the guest saw
# is published on its httpd (/www).
# udhcpc6 starts only once eth0's link-local address exists and has left duplicate address
# detection (wait-for-ll6, as Debian's ifupdown does before its DHCPv6 client): user-data runs
# within a second of eth0 coming up, when the kernel may not have added that address yet (udhcpc6
# then quits: "can't get link-local IPv6 address") or it is still tentative (the guest answers no
# neighbour solicitation for it, so berth's ADVERTISE waits on neighbour discovery).
echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_ra
echo 0 > /proc/sys/net/ipv6/conf/eth0/autoconf
ip -6 addr flush dev eth0 scope global
while ip -6 route del default dev eth0 2> /dev/null; do :; done
(
  { cat /proc/uptime; ip -6 addr show dev eth0; } > /www/before
  ip -6 addr show dev eth0 scope global > /www/flushed
  wait-for-ll6 eth0 30 >> /www/before 2>&1
  { cat /proc/uptime; ip -6 addr show dev eth0 scope link; } >> /www/before
  udhcpc6 -i eth0 -f -q -n -t 10 -T 2 > /www/udhcpc6.log 2>&1
  echo $? > /www/udhcpc6.rc
  ip -6 route add default via fe80::1 dev eth0
  for i in $(seq 1 30); do
    ip -6 addr show dev eth0 scope global | grep -q tentative || break
    sleep 1
  done
  { ip -6 addr show dev eth0; ip -6 route show; } > /www/ip6
  cat /run/berth/dhcpv6.eth0 > /www/lease
  cat /etc/resolv.conf > /www/resolv
  dns=$(sed -n 's/^dns=//p' /run/berth/dhcpv6.eth0 | cut -d " " -f 1)
  for i in $(seq 1 30); do
    nslookup -type=aaaa e2e.berth.test "$dns" > /www/aaaa6 2>&1 && break
    sleep 1
  done
  echo done > /www/dhcpv6-done
) > /dev/null 2>&1 &
