#!/usr/bin/env python3
"""A Linux guest's network under kvmhost beside QEMU (-accel kvm) on the same
KVM, in one run: the same Debian kernel with its own virtio_net driver
(virtio-mmio for kvmhost and QEMU's microvm, virtio-pci for q35), each VMM on
a tap it makes in a network namespace this script makes and deletes, 1 vCPU,
256 MiB. Measured from the host side:

  guest->host   TCP throughput, MIB MiB sent by the guest (busybox nc)
  host->guest   TCP throughput, MIB MiB sent to the guest, until it closes
  ping          round trip of a flood ping (2000 requests): request/response

MB/s and microseconds for each VMM (median of RUNS boots, interleaved) and
the ratios kvmhost / QEMU (for ping, QEMU / kvmhost): above 1, kvmhost is
faster. Meant for the test host, where guest ring 0 is TCG's: only ratios
count. As root.

usage: bench/bench_qemu_net.py [path/to/kvmhost] [runs] [MiB]
       tools/testhost --cpus 1 -- bench/bench_qemu_net.py build/kvmhost 3"""
import os
import re
import subprocess
import sys
import time

import beside_qemu  # noqa: E402 (first: it finds kvmhost and the test helpers)
from beside_qemu import (INIT_MOUNTS, QUIET_CMDLINE, kvmhost_over, kvmtest,  # noqa: E402
                         qemu_over, virtio)
from kernels import busybox_initramfs, debian_modules  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
MIB = int(sys.argv[3]) if len(sys.argv) > 3 else 16
HOST, GUEST, TAP = "10.79.0.1", "10.79.0.2", "bt0"
CMDLINE = QUIET_CMDLINE
INIT = INIT_MOUNTS + f"""ip link set lo up
ip link set eth0 up
ip addr add {GUEST}/24 dev eth0
echo NET-UP
until dd if=/dev/zero bs=64k count={MIB * 16} 2>/dev/null | nc {HOST} 7001; do sleep 0.2; done
nc -l -p 7000 >/dev/null
nc -l -p 7002 >/dev/null
poweroff -f
"""


def vmm_args(vmm, kernel, initrd):
    if vmm == "kvmhost":
        return beside_qemu.kvmhost_args(kernel, initrd, CMDLINE, "--net", f"tap={TAP}")
    return beside_qemu.qemu_args(
        vmm, kernel, initrd, CMDLINE,
        "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no,vhost=off",
        "-device", f"{virtio(vmm, 'net')},netdev=n0")


def ns_run(ns, *cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          **kw)


def wait_tap(ns):
    deadline = time.monotonic() + 120
    while ns_run(ns, "ip", "link", "show", TAP).returncode:
        if time.monotonic() > deadline:
            raise RuntimeError("the VMM made no tap")
        time.sleep(0.1)
    ns_run(ns, "ip", "addr", "add", f"{HOST}/24", "dev", TAP, check=True)
    ns_run(ns, "ip", "link", "set", TAP, "up", check=True)


# The host's side runs in the namespace: one Python process per run.
HOST_SIDE = f"""
import socket, sys, time
mib = int(sys.argv[1]); size = mib << 20
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7001)); l.listen(1); l.settimeout(300)  # before the tap exists
print("listening", flush=True)
c, _ = l.accept(); n = 0; t0 = None
while True:
    b = c.recv(1 << 16)
    if t0 is None: t0 = time.monotonic()
    if not b: break
    n += len(b)
rx = n / 1e6 / (time.monotonic() - t0)
c.close()
def connect(port):
    for _ in range(600):
        try: return socket.create_connection(("{GUEST}", port), timeout=60)
        except OSError: time.sleep(0.1)
    raise RuntimeError("the guest never listened on %d" % port)
s = connect(7000); data = bytes(1 << 16); t0 = time.monotonic()
for _ in range(size >> 16): s.sendall(data)
s.shutdown(socket.SHUT_WR)
while s.recv(1 << 16): pass
tx = size / 1e6 / (time.monotonic() - t0)
s.close()
print("RESULT", n, rx, tx, flush=True)
"""


def run_once(vmm, kernel, initrd, env, console):
    """{figure: value}, or a string saying what went wrong."""
    ns = f"kvmh-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    vm = host = None
    try:
        ns_run(ns, "ip", "link", "set", "lo", "up", check=True)
        host = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOST_SIDE,
                                 str(MIB)], stdout=subprocess.PIPE, text=True)
        assert host.stdout.readline().strip() == "listening"
        vm = subprocess.Popen(["ip", "netns", "exec", ns, *vmm_args(vmm, kernel, initrd)],
                              env=env, stdin=subprocess.DEVNULL, stdout=console,
                              stderr=subprocess.STDOUT)
        try:
            wait_tap(ns)
        except RuntimeError as e:
            return str(e)
        out = host.stdout.read()
        host.wait(600)
        m = re.search(r"RESULT (\d+) ([\d.]+) ([\d.]+)", out)
        if not m or int(m[1]) != MIB << 20:
            return f"the transfers did not complete: {out!r}"
        ping = ns_run(ns, "ping", "-n", "-q", "-f", "-c", "2000", GUEST, timeout=600).stdout
        rtt = re.search(r"= [\d.]+/([\d.]+)/", ping)
        loss = re.search(r"(\d+) received", ping)
        if not rtt or int(loss[1]) != 2000:
            return f"the flood ping lost replies: {ping!r}"
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c",
                        f"import socket; socket.create_connection(('{GUEST}', 7002), 60).close()"],
                       check=True, timeout=120)
        vm.wait(120)
        return {"guest->host": float(m[2]), "host->guest": float(m[3]),
                "ping": float(rtt[1]) * 1000}
    finally:
        for p in (vm, host):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# kvmhost's throughput / QEMU's, QEMU's round trip / kvmhost's: above 1,
# kvmhost is faster.
FIGURES = [("guest->host", "guest->host (MB/s)", kvmhost_over),
           ("host->guest", "host->guest (MB/s)", kvmhost_over),
           ("ping", "ping (us)", qemu_over)]


def main():
    kvmtest.require_root()
    with beside_qemu.session("kvmhost-bench-net-") as (kernel, workdir, env):
        initrd = busybox_initramfs(workdir, INIT, modules=debian_modules(
            ["virtio_mmio", "virtio_net", "virtio_pci"]))

        def once(vmm, i):
            with open(os.path.join(workdir, f"{vmm}-{i}.console"), "w") as console:
                return run_once(vmm, kernel, initrd, env, console)
        results, _ = beside_qemu.in_turns(once, RUNS)
        print(f"{os.path.basename(kernel)}, 1 vCPU, a tap each, TCP {MIB} MiB each way, "
              f"medians of {beside_qemu.counts(results)} runs:")
        beside_qemu.table(results, FIGURES, 18, ratio_name="ratio ")
        print("ratio: kvmhost's throughput / QEMU's, QEMU's round trip / kvmhost's "
              "(above 1: kvmhost is faster)")

if __name__ == "__main__":
    main()
