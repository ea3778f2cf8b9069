#!/usr/bin/env python3
"""A Linux guest's wall clock beside QEMU's (-accel kvm) on the same KVM, in
one run: the same Debian kernel and a busybox initramfs whose /init says
which clocksource Linux picked, then answers each line it reads on its
console with its own clock ($EPOCHREALTIME: no fork), and powers off after
ten. This host sends its time t1, reads the answer t2 at t4: the guest's
clock less this host's is t2 - (t1 + t4) / 2, within half the round trip
t4 - t1, as NTP reckons it. Of a boot's ten, the one with the shortest
round trip counts. Prints, per VMM, the median over RUNS boots, and each
boot's offset and round trip.

Not a speed figure: it tells whether where a guest's clock starts is
kvmhost's doing or the host's (the test host's clocksource is hpet).

usage: bench/bench_qemu_clock.py [path/to/kvmhost] [runs]
       tools/testhost --cpus 1 -- bench/bench_qemu_clock.py build/kvmhost 3"""
import os
import select
import statistics
import subprocess
import sys
import time

import beside_qemu  # noqa: E402 (first: it finds kvmhost and the test helpers)
from beside_qemu import INIT_MOUNTS, QUIET_CMDLINE, kvmtest  # noqa: E402
from kernels import busybox_initramfs  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
READINGS = 10
INIT = INIT_MOUNTS + f"""stty -echo 2>/dev/null
echo "SOURCE $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
n=0
while [ $n -lt {READINGS} ] && read -r t1; do echo "CLOCK $t1 $EPOCHREALTIME"; n=$((n + 1)); done
poweroff -f
"""


def vmm_args(vmm, kernel, initrd):
    if vmm == "kvmhost":
        return beside_qemu.kvmhost_args(kernel, initrd, QUIET_CMDLINE)
    return beside_qemu.qemu_args(vmm, kernel, initrd, QUIET_CMDLINE)


class Lines:
    """The VMM's console, a line at a time, with the time each was read."""

    def __init__(self, f):
        self.f, self.buf = f, b""

    def next(self, timeout):
        end = time.time() + timeout
        while b"\n" not in self.buf:
            if not select.select([self.f], [], [], max(0.0, end - time.time()))[0]:
                return None, time.time()
            data = os.read(self.f.fileno(), 4096)
            if not data:
                return None, time.time()
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace").strip(), time.time()


def readings(vm, lines):
    """[(offset, round trip)] of the guest's clock against ours, and its
    clocksource."""
    source, out = None, []
    while source is None:
        line, _ = lines.next(120)
        if line is None:
            return out, None
        if line.startswith("SOURCE "):
            source = line.split()[1]
    for _ in range(READINGS):
        time.sleep(0.3)
        t1 = time.time()
        vm.stdin.write(f"{t1:.6f}\n".encode())
        vm.stdin.flush()
        line, t4 = lines.next(30)
        while line is not None and not line.startswith(f"CLOCK {t1:.6f} "):
            line, t4 = lines.next(30)
        if line is None:
            break
        out.append((float(line.split()[2]) - (t1 + t4) / 2, t4 - t1))
    return out, source


def run_once(vmm, kernel, initrd, env):
    """{"offset": s, "rtt": s, "source": name}, or a string saying what went
    wrong."""
    vm = subprocess.Popen(vmm_args(vmm, kernel, initrd), env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        got, source = readings(vm, Lines(vm.stdout))
        vm.wait(60)
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
    if len(got) < READINGS:
        return f"{len(got)} clock readings of {READINGS}"
    offset, rtt = min(got, key=lambda r: r[1])
    return {"offset": offset, "rtt": rtt, "source": source}


def main():
    kvmtest.require_root()
    with beside_qemu.session("kvmhost-bench-clock-") as (kernel, workdir, env):
        initrd = busybox_initramfs(workdir, INIT)
        results, _ = beside_qemu.in_turns(lambda vmm, i: run_once(vmm, kernel, initrd, env),
                                          RUNS)
        print(f"{os.path.basename(kernel)}, 1 vCPU: the guest's clock less the host's at boot "
              f"(s; negative: behind), the reading with the shortest round trip of "
              f"{READINGS} per boot")
        for vmm, runs in results.items():
            if not runs:
                print(f"{vmm:10} no boot gave readings")
                continue
            each = " ".join(f"{r['offset']:+.3f} (rtt {r['rtt'] * 1000:.0f} ms)" for r in runs)
            print(f"{vmm:10} median {statistics.median(r['offset'] for r in runs):+.3f}  "
                  f"boots: {each}  clocksource: {runs[0]['source']}")


if __name__ == "__main__":
    main()
