#!/usr/bin/env python3
"""Makes fuzz/corpus/migration-1vcpu.bin: a real migration stream's HELLO and
state from a 1-vCPU, 16 MiB built-in guest, with one page and one zero run
between, as a hostile source would start from. Plays the destination just
far enough, then refuses, so the source runs on; then stops it.
usage: tools/mig-seed.py [build/kvmhost] [OUT]"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HDR = struct.Struct("<IIQ")
HELLO, READY, ERROR, PAGES, ZERO, STATE = 1, 2, 3, 4, 5, 6


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def main():
    kvmhost = sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost"
    out = sys.argv[2] if len(sys.argv) > 2 else "fuzz/corpus/migration-1vcpu.bin"
    d = tempfile.mkdtemp()
    env = dict(os.environ, KVMHOST_RUNDIR=d, KVMHOST_STATEDIR=d)
    vm = subprocess.Popen([kvmhost, "run", "--name", "seed", "--cpus", "1", "--memory", "16",
                           "--console", "none"], env=env, stderr=subprocess.DEVNULL)
    time.sleep(1)
    path = os.path.join(d, "mig.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    ctl = subprocess.Popen([kvmhost, "ctl", "seed", "migrate", "unix:" + path], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s, _ = ls.accept()
    typ, _, n = HDR.unpack(recv_exact(s, HDR.size))
    seed = HDR.pack(typ, 0, n) + recv_exact(s, n)
    s.sendall(HDR.pack(READY, 0, 0))
    page = None
    while True:
        typ, _, n = HDR.unpack(recv_exact(s, HDR.size))
        body = recv_exact(s, n)
        if typ == PAGES and page is None:
            page = body[8:8 + 4096]
        if typ == STATE:
            break
    seed += HDR.pack(PAGES, 0, 8 + 4096) + struct.pack("<Q", 0) + page
    seed += HDR.pack(ZERO, 0, 16) + struct.pack("<QQ", 1, 2)
    seed += HDR.pack(STATE, 0, len(body)) + body
    msg = b"seed captured"
    s.sendall(HDR.pack(ERROR, 0, len(msg)) + msg)
    ctl.wait(30)
    subprocess.run([kvmhost, "ctl", "seed", "quit"], env=env, capture_output=True)
    vm.wait(30)
    with open(out, "wb") as f:
        f.write(seed)
    print(f"{out}: {len(seed)} bytes")


if __name__ == "__main__":
    main()
