#!/usr/bin/env python3
"""Opens N idle connections to an exporter started here (demo mode, on 127.0.0.1 only) and prints
its resident memory and file descriptors before, during and after; the cap on connections
(--web.max-connections) bounds both.

  scripts/connection-flood.py BINARY [MAX_CONNECTIONS=512] [N=15000]

A benchmark, not a test: the connections are bounded in number, local, and closed after a few
seconds; the exporter is stopped at the end."""
import os
import resource
import socket
import subprocess
import sys
import time

binary = sys.argv[1]
cap = sys.argv[2] if len(sys.argv) > 2 else "512"
count = int(sys.argv[3]) if len(sys.argv) > 3 else 15000
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
exporter = subprocess.Popen(
    ["bash", "-c", f"ulimit -n {hard} && exec {binary} --demo --web.listen-address 127.0.0.1:{port} --web.max-connections {cap}"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)


def report(when):
    status = {k: v.strip() for k, v in (line.split(":", 1) for line in open(f"/proc/{exporter.pid}/status"))}
    fds = len(os.listdir(f"/proc/{exporter.pid}/fd"))
    print(f"{when:<28} RSS {status['VmRSS']:>10}  peak {status['VmHWM']:>10}  descriptors {fds}")


time.sleep(2)
report("idle")
held = []
for _ in range(count):
    connection = socket.socket()
    connection.setblocking(False)
    try:
        connection.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(connection)
time.sleep(3)
report(f"{count} idle connections")
for connection in held:
    connection.close()
time.sleep(12)
report("12 s after closing them")
exporter.terminate()
exporter.wait()
