#!/usr/bin/env python3
"""Latency percentiles from `dnsperf -v` output (lines "> NOERROR name A 0.000123")."""
import sys

latencies = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 5 and parts[0] == ">":
        try:
            latencies.append(float(parts[-1]) * 1000)
        except ValueError:
            pass
latencies.sort()
if not latencies:
    print("no answers")
    sys.exit(1)
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"answers={len(latencies)} p50={p(0.5):.3f}ms p90={p(0.9):.3f}ms p99={p(0.99):.3f}ms "
      f"p99.9={p(0.999):.3f}ms max={latencies[-1]:.3f}ms")
