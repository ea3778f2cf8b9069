#!/usr/bin/env python3
"""Robustness figures: `kvmhost list` over 100 VMs (and with one of them
stopped by SIGSTOP: it returns within its deadline), and `ctl status` while
32 local peers try to lock everyone out of the control socket by trickling
bytes that never make a request.

usage: bench/bench_robust.py [path/to/kvmhost] [VMs]"""
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
KVMHOST = sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost"
os.environ["KVMHOST"] = KVMHOST
import kvmtest  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 100


def timed(env, *args):
    t0 = time.monotonic()
    p = subprocess.run([KVMHOST, *args], env=env.env, capture_output=True, text=True,
                       timeout=60)
    return (time.monotonic() - t0) * 1e3, p.returncode


def bench_list(env):
    vms = [env.start(f"v{i:03d}", "--cpus", "1", "--memory", "16", "--heartbeat-us", "100000",
                     "--print-every", "0", wait=False) for i in range(N)]
    for vm in vms:
        kvmtest.wait_for(lambda: os.path.exists(vm.sock), 60, what=f"{vm.name} to listen")
    times = [timed(env, "list", "--json")[0] for _ in range(5)]
    print(f"list_ms[{N} VMs]: median {statistics.median(times):.1f} min {min(times):.1f} "
          f"(5 runs; every VM asked at once)")
    vms[N // 2].proc.send_signal(signal.SIGSTOP)
    try:
        for timeout in (1, 2):
            ms, code = timed(env, "list", "--json", "--timeout", str(timeout))
            print(f"list_ms[{N} VMs, one stopped, --timeout {timeout}]: {ms:.0f} "
                  f"(exit status {code}; the stopped one listed as unresponsive)")
    finally:
        vms[N // 2].proc.send_signal(signal.SIGCONT)
    for vm in vms:
        vm.kill()


def bench_lockout(env):
    env.env["KVMHOST_CLIENT_IDLE_MS"] = "30000"  # the default idle time
    vm = env.start("target")
    quiet = [timed(env, "ctl", "target", "status")[0] for _ in range(10)]
    with kvmtest.LockoutAttack(vm.sock, 32, 1.0):
        time.sleep(0.5)
        runs = [timed(env, "ctl", "target", "status") for _ in range(10)]
    ok = sum(code == 0 for _, code in runs)
    print(f"ctl_status_ms under a 32-peer lock-out attack: median "
          f"{statistics.median(ms for ms, _ in runs):.1f} ({ok}/10 answered; "
          f"{statistics.median(quiet):.1f} with no attack)")


def main():
    env = kvmtest.Env()
    try:
        bench_list(env)
        bench_lockout(env)
    finally:
        env.close()


if __name__ == "__main__":
    main()
