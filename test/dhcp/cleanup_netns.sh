#!/bin/sh
# Removes bdhcp-* network namespaces whose test process (the name's last field) is gone: what a
# crashed or killed root test left behind. Namespaces of running tests are kept.
for ns in $(ip netns list | awk '{print $1}' | grep '^bdhcp-'); do
  pid=${ns##*-}
  kill -0 "$pid" 2>/dev/null || ip netns del "$ns"
done
exit 0
