#!/usr/bin/env python3
"""Probes berth's console WebSockets (`/api/v1/vnc`, `/api/v1/serial`) the way a browser opens them.

usage: ws_probe.py HOST:PORT [--token-file FILE] [--host-header H]

For each path it sends a WebSocket opening handshake (RFC 6455; subprotocol `binary`, as noVNC
offers) twice: without a token, which must be refused (no 101), and with `Authorization: Bearer
<token>`, which must be upgraded: 101 with the right Sec-WebSocket-Accept. On the VNC socket the
first message must then be QEMU's RFB greeting ("RFB 003.00x"), proof that the proxy reaches QEMU.
Prints one line per check (with the time it took) and exits 1 if any failed.
"""
import argparse
import base64
import hashlib
import os
import socket
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
failures = []


def handshake(address, host_header, path, token):
    """(status line, headers, socket, bytes after the head)."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host_header or address}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: binary"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    return status, headers, sock, rest, expected


def read_message(sock, rest, seconds):
    """The payload of the first data frame (server frames are not masked)."""
    sock.settimeout(seconds)
    data = rest
    while True:
        if len(data) >= 2:
            length = data[1] & 0x7F
            offset = 2
            if length == 126:
                offset = 4
                length = int.from_bytes(data[2:4], "big") if len(data) >= 4 else None
            elif length == 127:
                offset = 10
                length = int.from_bytes(data[2:10], "big") if len(data) >= 10 else None
            if length is not None and len(data) >= offset + length:
                return data[0] & 0x0F, data[offset:offset + length]
        chunk = sock.recv(4096)
        if not chunk:
            return None, data
        data += chunk


def check(ok, message):
    print(f"ws_probe: {'ok  ' if ok else 'FAIL'} {message}", flush=True)
    if not ok:
        failures.append(message)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address", help="HOST:PORT of berth's control listener")
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--host-header", help="Host header (default: HOST:PORT)")
    parser.add_argument("--paths", default="/api/v1/vnc,/api/v1/serial")
    args = parser.parse_args()
    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    for path in args.paths.split(","):
        t0 = time.monotonic()
        status, _, sock, _, _ = handshake(args.address, args.host_header, path, None)
        sock.close()
        check(" 101 " not in status + " ", f"{path} without the token: {status} ({time.monotonic() - t0:.3f} s)")
        t0 = time.monotonic()
        status, headers, sock, rest, accept = handshake(args.address, args.host_header, path, token)
        took = time.monotonic() - t0
        upgraded = status.split(" ")[1:2] == ["101"]
        check(upgraded and headers.get("sec-websocket-accept") == accept,
              f"{path} with the token: {status}, accept {'right' if headers.get('sec-websocket-accept') == accept else 'wrong'} ({took:.3f} s)")
        if upgraded and path.endswith("/vnc"):
            t0 = time.monotonic()
            opcode, payload = read_message(sock, rest, 10)
            check(opcode == 2 and payload.startswith(b"RFB 003."),
                  f"{path}: first message {payload[:12]!r} (opcode {opcode}), expected QEMU's RFB greeting "
                  f"({time.monotonic() - t0:.3f} s)")
        sock.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
