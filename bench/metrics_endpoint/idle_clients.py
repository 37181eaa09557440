#!/usr/bin/env python3
"""Opens N idle connections to 127.0.0.1:PORT (never sending a byte), then
reports the server's open descriptors (from /proc/PID/fd) and how long a
fresh GET /healthz waits for its answer. For docs/benchmarks.md.
Usage: idle_clients.py PORT N PID   (raise `ulimit -n` above N first)"""
import os
import socket
import sys
import time

port, count, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
before = len(os.listdir(f"/proc/{pid}/fd"))
idle = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    idle.append(s)
time.sleep(1.5)
print(f"server descriptors: {before} before, {len(os.listdir(f'/proc/{pid}/fd'))} with {count} idle", flush=True)
started = time.time()
fresh = socket.create_connection(("127.0.0.1", port), timeout=120)
fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
try:
    answer = fresh.recv(100)
    print(f"fresh /healthz answered in {1000 * (time.time() - started):.0f} ms: {answer[:15]!r}")
except TimeoutError:
    print("fresh /healthz not answered within 120 s")
