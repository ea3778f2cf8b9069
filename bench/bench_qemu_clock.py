#!/usr/bin/env python3
"""A Linux guest's wall clock beside QEMU's (-accel kvm) on the same KVM, in
one run: the same Debian kernel and a busybox initramfs whose /init prints
its clock and the clocksource Linux picked, ten times 0.3 s
apart, then powers off. Each line's offset is the guest's time less this
host's when the line arrived; a line can only arrive late, so the largest
of a boot's offsets is its best reading (a guest behind the host reads
negative). Prints, per VMM, the median over RUNS boots, and each boot's.

Not a speed figure: it tells whether where a guest's clock starts is
kvmhost's doing or the host's (the test host's clocksource is hpet).

usage: bench/bench_qemu_clock.py [path/to/kvmhost] [runs]
       tools/testhost --cpus 1 -- bench/bench_qemu_clock.py build/kvmhost 3"""
import os
import statistics
import subprocess
import sys
import time

import beside_qemu  # noqa: E402 (first: it finds kvmhost and the test helpers)
from beside_qemu import INIT_MOUNTS, QUIET_CMDLINE, kvmtest  # noqa: E402
from kernels import busybox_initramfs  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
INIT = INIT_MOUNTS + """echo "SOURCE $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
# busybox's date has no %N: a file's new mtime is the kernel's clock (to a tick)
for i in 1 2 3 4 5 6 7 8 9 10; do touch /t; echo "CLOCK $(stat -c '%Y %y' /t)"; sleep 0.3; done
poweroff -f
"""


def vmm_args(vmm, kernel, initrd):
    if vmm == "kvmhost":
        return beside_qemu.kvmhost_args(kernel, initrd, QUIET_CMDLINE)
    return beside_qemu.qemu_args(vmm, kernel, initrd, QUIET_CMDLINE)


def run_once(vmm, kernel, initrd, env):
    """{"offset": s, "source": name}, or a string saying what went wrong."""
    vm = subprocess.Popen(vmm_args(vmm, kernel, initrd), env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    offsets, source = [], None
    try:
        for raw in vm.stdout:
            now = time.time()
            line = raw.decode(errors="replace").strip()
            if line.startswith("SOURCE "):
                source = line.split()[1]
            elif line.startswith("CLOCK "):
                secs, frac = line.split()[1], line.split()[3].partition(".")[2]
                offsets.append(float(f"{secs}.{frac}") - now)
        vm.wait(60)
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
    if len(offsets) < 10:
        return f"{len(offsets)} clock readings of 10"
    return {"offset": max(offsets), "spread": max(offsets) - min(offsets), "source": source}


def main():
    kvmtest.require_root()
    with beside_qemu.session("kvmhost-bench-clock-") as (kernel, workdir, env):
        initrd = busybox_initramfs(workdir, INIT)
        results, _ = beside_qemu.in_turns(lambda vmm, i: run_once(vmm, kernel, initrd, env),
                                          RUNS)
        print(f"{os.path.basename(kernel)}, 1 vCPU: the guest's clock less the host's at boot "
              f"(s; negative: behind), best of 10 readings per boot")
        for vmm, runs in results.items():
            if not runs:
                print(f"{vmm:10} no boot gave readings")
                continue
            each = " ".join(f"{r['offset']:+.3f}" for r in runs)
            print(f"{vmm:10} median {statistics.median(r['offset'] for r in runs):+.3f}  "
                  f"boots: {each}  clocksource: {runs[0]['source']}")


if __name__ == "__main__":
    main()
