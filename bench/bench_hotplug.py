#!/usr/bin/env python3
"""Host CPU hotplug figures on a real hotplug of cpu1 (root only).

Reaction time: from the uevent to every displaced vCPU re-pinned (offline)
or its pinning restored (online), as kvmhost measures it (uevent read ->
last affinity applied) and as seen from outside (this script's own copy of
the uevent -> /proc shows the new affinity). Then a soak: N offline/online
cycles with 4 VMs x 2 vCPUs running.

usage: bench/bench_hotplug.py [path/to/kvmhost] [cycles]"""
import json
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("KVMHOST", sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost")

import kvmtest  # noqa: E402
from hotplug import Offline, affinity, online_path, set_online  # noqa: E402

CPU = 1
CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def uevent_socket():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)  # NETLINK_KOBJECT_UEVENT
    s.bind((0, 1))
    s.settimeout(5)
    return s


def wait_uevent(s, action):
    want = f"{action}@/devices/system/cpu/cpu{CPU}".encode()
    while True:
        d = s.recv(65536)  # the socket's timeout bounds this
        if d.split(b"\0")[0] == want:
            return time.monotonic()


def poll_until(pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def reaction(env, rounds=30):
    vm = env.start("react", "--cpus", "2", "--cpu-pin", "0=1,1=0", "--print-every", "0")
    pid = vm.status()["pid"]
    tid = vm.status()["vcpus"][0]["tid"]
    ev = socket.socket(socket.AF_UNIX)
    ev.settimeout(5)
    ev.connect(vm.sock)
    ev.sendall(b'{"cmd":"subscribe"}\n')
    evf = ev.makefile("r")
    json.loads(evf.readline())
    ue = uevent_socket()
    inside = {"offline": [], "online": []}
    outside = {"offline": [], "online": []}

    def reaction_event(up):
        # The first report of this change; 0 when kvmhost learnt it from its
        # sysfs re-read rather than the uevent (then there is no figure).
        while True:
            e = json.loads(evf.readline())
            if e["event"] == "host-cpu" and e["online"] == up:
                return e["reaction_us"]

    def measure(action, want):
        """After a transition: when the uevent came, when /proc shows `want`."""
        t = wait_uevent(ue, action)
        poll_until(lambda: affinity(pid, tid) == want, f"vCPU 0 on cpu{want}")
        outside[action].append((time.monotonic() - t) * 1e6)
        r = reaction_event(action == "online")
        if r > 0:
            inside[action].append(r)

    for _ in range(rounds):
        with Offline(CPU) as off:
            measure("offline", "0")
            off.online()
            measure("online", "1")
        time.sleep(0.02)
    for k in ("offline", "online"):
        print(f"hotplug_reaction_us[{k}]: kvmhost median {statistics.median(inside[k]):.0f} "
              f"p90 {pct(inside[k], 90):.0f}, seen from outside median "
              f"{statistics.median(outside[k]):.0f} p90 {pct(outside[k], 90):.0f} "
              f"(target <= 1000 median; {rounds} rounds)")
    vm.kill()


def soak(env):
    vms = [env.start(f"soak{i}", "--cpus", "2", "--cpu-pin", "0=1,1=0", "--print-every", "0")
           for i in range(4)]
    not_restored = 0
    t0 = time.monotonic()
    for _ in range(CYCLES):
        with Offline(CPU) as off:
            time.sleep(0.01)
            off.online()
        deadline = time.monotonic() + 1.0
        pending = list(vms)
        while pending and time.monotonic() < deadline:
            pending = [vm for vm in pending
                       if [affinity(vm.proc.pid, v["tid"]) for v in vm.status()["vcpus"]]
                       != ["1", "0"]]
            if pending:
                time.sleep(0.001)
        not_restored += 2 * len(pending)
    elapsed = time.monotonic() - t0
    backwards = gap = 0.0
    errors = 0
    for vm in vms:
        if vm.proc.poll() is not None:
            errors += 1
            continue
        st = vm.status()
        for v in st["vcpus"]:
            backwards += v["clock_backwards"]
            gap = max(gap, v["max_heartbeat_gap_ms"])
        errors += st["unhandled_pio"] + st["unhandled_mmio"]
    print(f"hotplug_soak: {CYCLES} cycles of cpu{CPU} offline/online in {elapsed:.1f}s with "
          f"4 VMs x 2 vCPUs: guest_errors {errors} (target 0), vcpus_not_restored "
          f"{not_restored} (target 0), clock_backwards {backwards:.0f} (target 0), "
          f"max_heartbeat_gap_ms {gap:.1f}")


def main():
    if os.geteuid() != 0 or not os.access(online_path(CPU), os.W_OK):
        print(f"bench_hotplug: skipped: needs root and a hotpluggable cpu{CPU}")
        return
    set_online(CPU, True)
    env = kvmtest.Env()
    try:
        reaction(env)
        soak(env)
    finally:
        env.close()


if __name__ == "__main__":
    main()
