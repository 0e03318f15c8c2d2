#!/usr/bin/env python3
"""HTTP(S) file server with injectable faults, for the drive module's fetch tests and benchmark.

Serves the files of --root at /files/<name>, with Range (206), If-Range, ETag and Last-Modified.
Query parameters on /files/<name> inject faults; counters are per full request path (path and
query), so each test uses its own path:
  norange=1        ignore Range: always 200 with the whole file
  noetag=1         send neither ETag nor Last-Modified
  fail=N           the first N requests get 500 (with Retry-After: 0)
  truncate=N       the first request sends its Content-Length but closes after N body bytes
                   (truncate_times=K: the first K requests)
  stall=N          send N body bytes, then nothing (the client's stall deadline must fire)
                   (stall_times=K: the first K requests)
  rate=B           at most B bytes/s (rate_times=K: only the first K requests)
  chunked=1        Transfer-Encoding: chunked (no Range)
  tillend=1        answer a Range with the rest of the file, ignoring its end (busybox httpd)
Other paths: /status/<code>; /redirect?to=<url>; /loop/a <-> /loop/b (a redirect loop).
Prints "PORT <n>" on stdout once listening; logs one JSON object per request to --log.
"""

import argparse
import email.utils
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
COUNTS_LOCK = threading.Lock()
LOG_LOCK = threading.Lock()
ARGS = None


def count(key):
    with COUNTS_LOCK:
        COUNTS[key] = COUNTS.get(key, 0) + 1
        return COUNTS[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # silence the default stderr log
        pass

    def record(self, status, extra=None):
        if not ARGS.log:
            return
        entry = {
            "path": self.path,
            "range": self.headers.get("Range"),
            "if_range": self.headers.get("If-Range"),
            "status": status,
        }
        if extra:
            entry.update(extra)
        with LOG_LOCK, open(ARGS.log, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def simple(self, status, body=b"", headers=()):
        self.record(status)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path.startswith("/status/"):
            return self.simple(int(url.path.split("/")[2]), b"status\n")
        if url.path == "/redirect":
            return self.simple(302, headers=[("Location", query["to"])])
        if url.path == "/loop/a":
            return self.simple(302, headers=[("Location", "/loop/b")])
        if url.path == "/loop/b":
            return self.simple(301, headers=[("Location", "http://%s/loop/a" % self.headers["Host"])])
        if url.path.startswith("/files/"):
            return self.serve_file(url.path[len("/files/"):], query)
        return self.simple(404, b"not found\n")

    def serve_file(self, name, query):
        n = count(self.path)
        path = os.path.join(ARGS.root, name)
        if "/" in name or not os.path.isfile(path):
            return self.simple(404, b"not found\n")
        if n <= int(query.get("fail", 0)):
            return self.simple(500, b"try again\n", [("Retry-After", "0")])
        st = os.stat(path)
        size = st.st_size
        etag = '"%x-%x"' % (size, st.st_mtime_ns)
        last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        first, last = 0, size - 1
        status = 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and "norange" not in query and "chunked" not in query:
            if if_range is None or if_range in (etag, last_modified):
                spec = wanted.split("=", 1)[1]
                start, _, end = spec.partition("-")
                first = int(start)
                last = min(int(end), size - 1) if end and "tillend" not in query else size - 1
                if first >= size:
                    return self.simple(416, headers=[("Content-Range", "bytes */%d" % size)])
                status = 206
        self.send_response(status)
        self.send_header("Accept-Ranges", "none" if "norange" in query else "bytes")
        if "noetag" not in query:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
        length = last - first + 1
        chunked = "chunked" in query
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.send_header("Connection", "close")
        self.end_headers()
        self.record(status, {"first": first})
        self.close_connection = True

        limit = length
        if n <= int(query.get("truncate_times", 1)) and "truncate" in query:
            limit = min(limit, int(query["truncate"]))
        stall = None
        if "stall" in query and n <= int(query.get("stall_times", 1 << 30)):
            stall = int(query["stall"])
        if stall is not None:
            limit = min(limit, stall)
        rate = None
        if "rate" in query and n <= int(query.get("rate_times", 1 << 30)):
            rate = int(query["rate"])
        with open(path, "rb") as f:
            self.send_body(f, first, limit, rate, chunked)
        if stall is not None:
            time.sleep(60)

    def send_body(self, f, offset, length, rate, chunked):
        self.wfile.flush()
        plain_socket = not isinstance(self.connection, ssl.SSLSocket)
        started = time.monotonic()
        sent = 0
        while sent < length:
            piece = min(1 << 20, length - sent)
            if rate:
                piece = min(piece, max(1, rate // 20))
            if plain_socket and not chunked and not rate:
                n = os.sendfile(self.connection.fileno(), f.fileno(), offset + sent, piece)
                if n == 0:
                    break
            else:
                f.seek(offset + sent)
                data = f.read(piece)
                if chunked:
                    self.connection.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    self.connection.sendall(data)
                n = len(data)
            sent += n
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        if chunked and sent == length:
            self.connection.sendall(b"0\r\n\r\n")


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    if ARGS.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    server.handle_error = lambda request, address: None  # clients that hang up are expected
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
