#!/usr/bin/env python3
"""Host-sleep figures with a private D-Bus and the fake logind:
prepare-to-release latency (PrepareForSleep(true) -> inhibitor closed) for 1,
4 and 16 VMs, with and without a disk under write load; wake-to-running
latency; a soak of sleep/wake cycles with 3 VMs (one paused by its user).

usage: bench/bench_sleep.py [path/to/kvmhost] [soak cycles]"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("KVMHOST", sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost")
os.environ.setdefault("FAKE_LOGIND", os.path.join(HERE, "..", "build", "tests", "fake_logind"))
os.environ.setdefault("DBUS_TEST_CONF", os.path.join(HERE, "..", "tests", "dbus-test.conf"))
import kvmtest  # noqa: E402
from sleephelp import Freezer, Logind  # noqa: E402

CYCLES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
INHIBIT_DELAY_MAX_S = 5.0  # logind's default InhibitDelayMaxSec


def start_vms(env, logind, n, with_disk):
    vms = []
    for i in range(n):
        args = ["--cpus", "1", "--print-every", "0"]
        if with_disk:
            img = os.path.join(env.dir, f"d{i}.img")
            with open(img, "wb") as f:
                f.truncate(64 << 20)
            # The guest keeps writing and never flushes: the sleep's flush has work.
            args += ["--disk", img, "--guest-mode", "disk", "--disk-blocks", "16000",
                     "--disk-request-kib", "64", "--disk-flush-every", "1000000"]
        vms.append(env.start(f"vm{i}", *args, heartbeats=not with_disk))
    for _ in vms:
        logind.expect("inhibit", 30)
    return vms


def cycle(logind, vms):
    """One sleep/wake; returns (release latencies s, wake->running latencies s)."""
    logind.send("sleep")
    t_sig = int(logind.expect("signal")[2])
    rel = [(int(logind.expect("released", 30)[2]) - t_sig) / 1e9 for _ in vms]
    logind.send("wake")
    t_wake = int(logind.expect("signal")[2])
    for _ in vms:
        logind.expect("inhibit", 30)
    wake = [(vm.status()["host_sleep"]["last"]["resumed_ns"] - t_wake) / 1e9 for vm in vms]
    return rel, wake


def latency(n, with_disk, rounds=10):
    env = kvmtest.Env()
    logind = Logind(env.env)
    env.env = logind.env
    try:
        vms = start_vms(env, logind, n, with_disk)
        time.sleep(0.5)
        last, per_vm, wake = [], [], []
        for _ in range(rounds):
            rel, wk = cycle(logind, vms)
            last.append(max(rel))
            per_vm += rel
            wake += wk
            time.sleep(0.1)
        print(f"sleep_prepare_to_release_ms[{n} VMs, {'disk under write load' if with_disk else 'no disk'}]: "
              f"median per VM {statistics.median(per_vm) * 1e3:.2f}, median last VM "
              f"{statistics.median(last) * 1e3:.2f}, worst {max(last) * 1e3:.2f} (target median "
              f"<= 50 with a disk; {rounds} rounds)")
        print(f"wake_to_running_ms[{n} VMs]: median {statistics.median(wake) * 1e3:.2f}, "
              f"worst {max(wake) * 1e3:.2f}")
    finally:
        env.close()
        logind.close()


def soak():
    env = kvmtest.Env()
    logind = Logind(env.env)
    env.env = logind.env
    late = errors = woken = 0
    try:
        vms = start_vms(env, logind, 3, False)
        napper = vms[2]
        napper.ctl("pause")
        napping = [v["heartbeats"] for v in napper.status()["vcpus"]]
        t0 = time.monotonic()
        for _ in range(CYCLES):
            logind.send("sleep")
            t_sig = int(logind.expect("signal")[2])
            for _ in vms:
                parts = logind.expect("released", 30)
                if (int(parts[2]) - t_sig) / 1e9 > INHIBIT_DELAY_MAX_S:
                    late += 1
            fz = Freezer(vms[0].proc.pid) if os.geteuid() == 0 else None
            if fz:
                fz.freeze()
                time.sleep(0.02)
                fz.thaw()
                fz.close()
            before = [vm.status()["vcpus"][0]["heartbeats"] for vm in vms[:2]]
            logind.send("wake")
            logind.expect("signal")
            for _ in vms:
                logind.expect("inhibit", 30)
            for vm, b in zip(vms[:2], before):
                if not kvmtest.wait_for(lambda: vm.status()["vcpus"][0]["heartbeats"] > b, 5,
                                        interval=0.005):
                    errors += 1
            if [v["heartbeats"] for v in napper.status()["vcpus"]] != napping or \
                    napper.status()["state"] != "paused":
                woken += 1
        backwards = sum(v["clock_backwards"] for vm in vms for v in vm.status()["vcpus"])
        errors += backwards + sum(vm.proc.poll() is not None for vm in vms)
        print(f"sleep_soak: {CYCLES} sleep/wake cycles in {time.monotonic() - t0:.1f}s with 3 VMs: "
              f"guest_errors {errors} (target 0; clock went backwards {backwards}), "
              f"inhibitors_late_or_never {late} (target 0), user_paused_woken {woken} (target 0)")
    finally:
        env.close()
        logind.close()


def main():
    kvmtest.require_kvm()
    for n in (1, 4, 16):
        latency(n, False)
        latency(n, True)
    soak()


if __name__ == "__main__":
    main()
