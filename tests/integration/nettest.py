"""Network namespaces for the network tests: each test makes its own, puts
its taps and bridges in it, runs kvmhost inside it (`ip netns exec`), and
deletes it at the end. No address outside it is ever used."""
import math
import os
import re
import shutil
import subprocess
import sys
import time

from kvmtest import require_root, skip

CAPTURE = r'''
import socket, struct, sys, time
# Gratuitous ARPs (sender IP == target IP) seen on an interface, one line each.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
while True:
    f = s.recv(2048)
    if len(f) >= 42 and f[28:32] == f[38:42]:
        print("%.6f %s %s" % (time.monotonic(), socket.inet_ntoa(f[28:32]), f[22:28].hex(":")), flush=True)
'''


class NetNS:
    def __init__(self, env, tag):
        require_root()
        if not shutil.which("ip"):
            skip("iproute2 (ip) is missing")
        if not os.path.exists("/dev/net/tun"):
            skip("/dev/net/tun does not exist here: no taps")
        self.name = f"kvmh-{os.getpid()}-{tag}"
        self.env = env  # commands see its private run and state directories
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        env.cleanups.append(self.delete)
        self.captures = []
        self.run("ip", "link", "set", "lo", "up")

    def delete(self):
        for c in self.captures:
            c.kill()
            c.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    @property
    def prefix(self):
        return ("ip", "netns", "exec", self.name)

    def run(self, *cmd, check=True, timeout=60):
        p = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, timeout=timeout,
                           env=self.env.env)
        if check and p.returncode:
            raise AssertionError(f"{' '.join(cmd)}: {p.returncode} {p.stderr}")
        return p

    def bridge(self, name, addr):
        self.run("ip", "link", "add", name, "type", "bridge")
        self.run("ip", "addr", "add", addr, "dev", name)
        self.run("ip", "link", "set", name, "up")

    def address(self, dev, addr):
        self.run("ip", "addr", "add", addr, "dev", dev)
        self.run("ip", "link", "set", dev, "up")

    def ping(self, addr, count, interval="0.01", wait="2"):
        """(sent, received, [rtt ms...]) for `count` echo requests, each given
        `wait` seconds after the last is sent. Not ping's -W alone: once one
        reply is in, -W waits only two round trips for the rest, so a reply
        slowed by ASan or TCG counted as lost. -w waits, but sends more while
        replies are missing: only the first `count` requests are counted.
        The deadline also ends sending, and a loaded TCG test host sends
        slower than `interval` (875 of 1000 in 1000 x 5 ms + 2 s once), so
        it allows four times the sending time; ping ends as soon as `count`
        replies are in, so only a test that expects losses waits it out."""
        span = 4 * count * float(interval) + float(wait)
        limit = ["-W", wait] if count == 1 else ["-w", str(math.ceil(span))]
        p = self.run("ping", "-n", "-c", str(count), "-i", interval, *limit, addr,
                     check=False, timeout=span + 60)
        m = re.search(r"(\d+) packets transmitted", p.stdout)
        replies = {}
        for seq, rtt in re.findall(r"icmp_seq=(\d+) .*?time=([\d.]+) ms", p.stdout):
            if int(seq) <= count:
                replies[int(seq)] = float(rtt)
        return (min(int(m.group(1)), count) if m else 0, len(replies), list(replies.values()))

    def neighbour(self, addr):
        p = self.run("ip", "neigh", "show", addr, check=False)
        m = re.search(r"lladdr ([0-9a-f:]{17})", p.stdout)
        return m.group(1) if m else None

    def capture_announcements(self, dev):
        """Starts a raw-socket capture of gratuitous ARPs on dev."""
        c = subprocess.Popen([*self.prefix, sys.executable, "-c", CAPTURE, dev],
                             stdout=subprocess.PIPE, text=True)
        assert c.stdout.readline().strip() == "ready"
        self.captures.append(c)
        c.seen = []

        def pump():
            for line in c.stdout:
                t, ip, mac = line.split()
                c.seen.append((float(t), ip, mac))
        import threading
        threading.Thread(target=pump, daemon=True).start()
        return c


def announced_since(capture, t0, ip, timeout=5):
    """(CLOCK_MONOTONIC s, MAC) of the first gratuitous ARP for ip at or
    after t0 (same clock), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, a, mac in capture.seen:
            if t >= t0 and a == ip:
                return t, mac
        time.sleep(0.01)
    return None
