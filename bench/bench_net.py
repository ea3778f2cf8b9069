#!/usr/bin/env python3
"""Network figures, in network namespaces this script makes and deletes:
ping round trip host -> built-in guest (virtio-net on a tap) against the same
ping over a veth pair between two namespaces in the same run; and packets per
second host -> guest (raw frames of 64 and 1500 bytes, counted by the guest)
and guest -> host (echo replies to a flood ping of those sizes), with
kvmhost's own CPU time per packet. As root.

usage: bench/bench_net.py [path/to/kvmhost]"""
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
KVMHOST = sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost"
os.environ["KVMHOST"] = KVMHOST
import kvmtest  # noqa: E402
from nettest import NetNS  # noqa: E402

GUEST = "10.77.0.2"
PINGS = 500
FRAMES = 20000
SENDER = r'''
import socket, sys, time
# FRAMES raw frames of SIZE bytes to MAC on DEV, as fast as the socket takes them.
dev, mac, size, n = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
frame = mac + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + bytes(size - 14)
for _ in range(n):
    while True:
        try:
            s.send(frame)
            break
        except BlockingIOError:
            time.sleep(0.0001)
'''


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def cpu_seconds(pid, own_only=False):
    """CPU time of the process (schedstat, in ns); own_only: of its threads
    that are not vCPUs (a vCPU thread's time is mostly the guest's, emulated
    here)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except OSError:
            continue
        if not (own_only and comm.startswith("vcpu")):
            total += ns
    return total / 1e9


def veth_rtts(env):
    a, b = NetNS(env, "va"), NetNS(env, "vb")
    a.run("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b.name)
    a.address("v0", "10.78.0.1/24")
    b.address("v1", "10.78.0.2/24")
    return a.ping("10.78.0.2", PINGS, interval="0.002")[2]


def rx_pps(ns, vm, mac, size):
    """Frames from the host side of the tap to the guest, counted by it."""
    before = vm.status()["guest_net"]["rx"]
    cpu0, t0 = cpu_seconds(vm.proc.pid, True), time.monotonic()
    ns.run(sys.executable, "-c", SENDER, "kt0", mac, str(size), str(FRAMES), timeout=600)
    last, still = before, 0
    while still < 5:  # until the count stops moving for 50 ms
        time.sleep(0.01)
        now = vm.status()["guest_net"]["rx"]
        still = still + 1 if now == last else 0
        last = now
    dt = time.monotonic() - t0 - 0.05
    got = last - before
    return got / dt, got, (cpu_seconds(vm.proc.pid, True) - cpu0) / max(got, 1) * 1e6


def tx_pps(ns, vm, size):
    """Echo replies the guest sends to a flood ping: packets/s out of it."""
    cpu0 = cpu_seconds(vm.proc.pid)
    p = ns.run("ping", "-f", "-c", "2000", "-s", str(size), GUEST, check=False, timeout=600)
    m = re.search(r"(\d+) received.*time (\d+)ms", p.stdout.replace("\n", " "))
    got, ms = int(m.group(1)), int(m.group(2))
    return got / (ms / 1e3), got, (cpu_seconds(vm.proc.pid) - cpu0) / max(got, 1) * 1e6


def main():
    kvmtest.require_kvm()
    kvmtest.require_root()
    env = kvmtest.Env()
    try:
        base = veth_rtts(env)
        ns = NetNS(env, "k")
        vm = env.start("bench", "--net", "tap=kt0", "--guest-ip", GUEST, prefix=ns.prefix)
        ns.address("kt0", "10.77.0.1/24")
        rtts = ns.ping(GUEST, PINGS, interval="0.002")[2]
        print(f"bench_net: {len(rtts)}/{PINGS} pings answered")
        print(f"ping rtt host->guest: median {statistics.median(rtts):.3f} ms p99 "
              f"{pct(rtts, 99):.3f} ms; veth pair: median {statistics.median(base):.3f} ms p99 "
              f"{pct(base, 99):.3f} ms; ratio {statistics.median(rtts) / statistics.median(base):.1f}")
        mac = vm.status()["nets"][0]["mac"]
        for size in (64, 1500):
            pps, got, us = rx_pps(ns, vm, mac, size)
            print(f"host->guest {size:4}-byte frames: {pps:8.0f} packets/s ({got}/{FRAMES} "
                  f"counted by the guest; the rest waited in the tap and overflowed it), "
                  f"kvmhost's own threads {us:.1f} us CPU per packet")
        for size, payload in ((64, 22), (1500, 1458)):
            pps, got, us = tx_pps(ns, vm, payload)
            print(f"guest->host {size:4}-byte frames: {pps:8.0f} packets/s (echo replies to a "
                  f"flood ping, {got} answered), the whole process {us:.1f} us CPU per packet "
                  f"(transmit is served on the vCPU thread, with the guest's emulated ring 0)")
        st = vm.status()["nets"][0]
        print(f"device counters: rx {st['rx_packets']} tx {st['tx_packets']} rx_waits "
              f"{st['rx_waits']} tx_dropped {st['tx_dropped']}")
    finally:
        env.close()


if __name__ == "__main__":
    main()
