#!/usr/bin/env python3
"""A Linux guest's direct disk I/O under kvmhost beside QEMU (-accel kvm) on
the same KVM, in one run: the same Debian kernel, its own virtio_blk driver
(virtio-mmio for kvmhost and QEMU's microvm, virtio-pci for q35), the same
raw image file, 1 vCPU, 256 MiB. In the guest, bench/guest/diskio.c (built
static here) times with O_DIRECT on /dev/vda:

  seq-write-1m / seq-read-1m     1 MiB requests over the first MIB MiB
  rand-write-4k / rand-read-4k   4 KiB requests at pseudo-random blocks

MB/s for each VMM (median of RUNS boots, interleaved) and the ratios kvmhost
/ QEMU: above 1, kvmhost is faster. The image is a file in the host's page
cache for all three (QEMU: cache=writeback, aio=threads, its defaults).
Meant for the test host, where guest ring 0 is TCG's: only ratios count.

usage: bench/bench_qemu_disk.py [path/to/kvmhost] [runs] [MiB]
       tools/testhost --cpus 1 -- bench/bench_qemu_disk.py build/kvmhost 3"""
import os
import re
import subprocess
import sys

import beside_qemu  # noqa: E402 (first: it finds kvmhost and the test helpers)
from beside_qemu import HERE, INIT_MOUNTS, QUIET_CMDLINE, kvmhost_over, virtio  # noqa: E402
from kernels import busybox_initramfs, debian_modules  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
MIB = int(sys.argv[3]) if len(sys.argv) > 3 else 32
LIMIT_S = 600
PATTERNS = ["seq-write-1m", "seq-read-1m", "rand-write-4k", "rand-read-4k"]
LINE = re.compile(r"DISKIO (\S+) (\d+) (\d+) (\d+)")
CMDLINE = QUIET_CMDLINE
INIT = INIT_MOUNTS + f"""n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
/diskio /dev/vda {MIB} || echo DISKIO-FAIL
echo DISKIO-DONE
poweroff -f
"""


def vmm_args(vmm, kernel, initrd, image):
    if vmm == "kvmhost":
        return beside_qemu.kvmhost_args(kernel, initrd, CMDLINE, "--disk", image)
    return beside_qemu.qemu_args(
        vmm, kernel, initrd, CMDLINE,
        "-drive", f"id=d0,file={image},format=raw,if=none,cache=writeback,aio=threads",
        "-device", f"{virtio(vmm, 'blk')},drive=d0")


def run_once(vmm, kernel, initrd, image, env):
    """{pattern: MB/s}, or a string saying what went wrong."""
    p = subprocess.Popen(vmm_args(vmm, kernel, initrd, image), env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return f"no end in {LIMIT_S} s; console ends: {out[-500:]!r}"
    got = {m[1]: int(m[3]) / 1e6 / (int(m[4]) / 1e9) for m in LINE.finditer(out)}
    if sorted(got) != sorted(PATTERNS) or "DISKIO-FAIL" in out:
        return f"the guest did not report every pattern; console ends: {out[-800:]!r}"
    return got


def build_guest(workdir):
    diskio = os.path.join(workdir, "diskio")
    subprocess.run(["cc", "-static", "-O2", "-o", diskio, os.path.join(HERE, "guest", "diskio.c")],
                   check=True)
    return busybox_initramfs(workdir, INIT, extra=[diskio],
                             modules=debian_modules(["virtio_mmio", "virtio_blk", "virtio_pci"]))


def main():
    with beside_qemu.session("kvmhost-bench-disk-") as (kernel, workdir, env):
        initrd = build_guest(workdir)
        image = os.path.join(workdir, "disk.img")
        with open(image, "wb") as f:
            f.write(os.urandom(1 << 20) * MIB)  # written: no holes, in the page cache
        results, _ = beside_qemu.in_turns(
            lambda vmm, _: run_once(vmm, kernel, initrd, image, env), RUNS)
        print(f"{os.path.basename(kernel)}, 1 vCPU, O_DIRECT on /dev/vda, {MIB} MiB, "
              f"MB/s, medians of {beside_qemu.counts(results)} runs:")
        beside_qemu.table(results, [(p, p, kvmhost_over) for p in PATTERNS], 16)

if __name__ == "__main__":
    main()
