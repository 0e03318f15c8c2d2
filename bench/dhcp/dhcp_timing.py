#!/usr/bin/env python3
"""DISCOVER-to-ACK times from a pcap of DHCP exchanges (Ethernet, IPv4), one per transaction ID,
and the server's own turnaround (DISCOVER to OFFER, REQUEST to ACK): median, p90 and max in ms.
The rest of DISCOVER-to-ACK is the client's time between OFFER and REQUEST."""
import struct
import sys


def packets(path):
    data = open(path, "rb").read()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    nano = data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        payload = frame[14 + ihl + 8:]
        xid = payload[4:8]
        i, kind = 240, None
        while i + 1 < len(payload):
            code = payload[i]
            if code == 0:
                i += 1
                continue
            if code == 255:
                break
            if code == 53:
                kind = payload[i + 2]
            i += 2 + payload[i + 1]
        yield sec + frac / (1e9 if nano else 1e6), xid, kind


def summary(times):
    times = sorted(times)
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    return f"median={p(0.5):.3f}ms p90={p(0.9):.3f}ms max={times[-1]:.3f}ms"


def main(path):
    first = {}  # (xid, type) -> first timestamp
    for ts, xid, kind in packets(path):
        first.setdefault((xid, kind), ts)
    xids = {x for x, k in first if k == 5 and (x, 1) in first}
    if not xids:
        print("no complete exchanges")
        return 1
    total = [(first[(x, 5)] - first[(x, 1)]) * 1000 for x in xids]
    server = [(first[(x, 2)] - first[(x, 1)]) * 1000 for x in xids if (x, 2) in first]
    server += [(first[(x, 5)] - first[(x, 3)]) * 1000 for x in xids if (x, 3) in first]
    print(f"{len(xids)} exchanges: DISCOVER-to-ACK {summary(total)}; "
          f"server turnaround {summary(server)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
