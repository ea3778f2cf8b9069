#!/usr/bin/env python3
"""kvmhost beside QEMU (-accel kvm) on the same KVM, in one run: the same
Debian kernel and busybox initramfs, 1 vCPU, 256 MiB, the console on the
first serial port. For kvmhost, QEMU's microvm and QEMU's q35, median of
RUNS boots each:

  banner     exec -> "Linux version" on the console
  init       exec -> the initramfs's /init prints its marker
  poweroff   /init's last line before `poweroff -f` -> the VMM has exited
  memory     the VMM's Pss less its guest RAM's, while /init waits
  pause      a pause and a resume over the control socket (QMP stop/cont)

and the ratios kvmhost / QEMU. Meant for the test host, where KVM is real
but guest ring 0 is TCG's: only the ratios mean anything there.

usage: bench/bench_qemu.py [path/to/kvmhost] [runs]
       tools/testhost -- bench/bench_qemu.py build/kvmhost 3"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import beside_qemu  # noqa: E402 (first: it finds kvmhost and the test helpers)
from beside_qemu import Console, kvmhost_over, kvmtest, qmp_call, qmp_connect  # noqa: E402
from kernels import INIT_MARKER, busybox_initramfs  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BOOT_LIMIT_S = 300
# In the test host some boots stop at random points, under QEMU as under
# kvmhost (a vCPU spinning on a value that never changes, IF=0): a boot
# whose console is silent this long is given up and tried again.
SILENT_S = 45
TRIES = 3  # boots per wanted run, at most
PAUSES = 20
WAITING = "KVMHOST-BENCH-WAITING"
POWEROFF = "KVMHOST-BENCH-POWEROFF"
CMDLINE = "console=ttyS0 panic=-1"
# /init says it is up, waits while it is measured (told to go on by a
# file the VMM cannot see: it just sleeps), then powers off.
INIT = f"echo {INIT_MARKER}\necho {WAITING}\nsleep 4\necho {POWEROFF}\npoweroff -f\n"


def smaps_pss_kib(pid):
    """(the process's Pss, its largest mapping's Pss): that mapping is the
    guest's RAM in both VMMs."""
    total, largest, size, pss = 0, (0, 0), 0, 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
                total += pss
                largest = max(largest, (size, pss))
    return total, largest[1]


def kvmhost_call(f, cmd):
    f.write(json.dumps({"cmd": cmd}) + "\n")
    f.flush()
    reply = json.loads(f.readline())
    assert reply.get("ok"), reply


def pause_resume_ms(call, f):
    """Median of PAUSES pause+resume pairs on one open control connection."""
    times = []
    for _ in range(PAUSES):
        t = time.monotonic()
        call(f, "stop" if call is qmp_call else "pause")
        call(f, "cont" if call is qmp_call else "resume")
        times.append((time.monotonic() - t) * 1e3)
    return statistics.median(times)


def control(vmm, sock_path):
    if vmm == "kvmhost":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        return s, s.makefile("rw"), kvmhost_call
    s, f = qmp_connect(sock_path)
    return s, f, qmp_call


def where_it_is(vmm, env):
    """For a kvmhost guest that stopped short: its vCPUs' RIP and RFLAGS
    (IF is bit 9), to tell a guest spinning with interrupts off from one
    that wrote PM1a and was not heard."""
    if vmm != "kvmhost":
        return ""
    r = subprocess.run([kvmtest.KVMHOST, "ctl", "bench", "regs", "--json"], env=env,
                       capture_output=True, text=True, timeout=30)
    try:
        regs = json.loads(r.stdout)
    except ValueError:
        return f"; regs: {r.stderr.strip()}"
    return "; " + ", ".join(f"vCPU {v['index']} rip {v['rip']} rflags {v['rflags']}"
                            for v in regs)


def boot_once(vmm, kernel, initrd, workdir, env):
    """One boot: {figure: value}, or a string saying where it stalled."""
    qmp = os.path.join(workdir, f"{vmm}.qmp")
    if vmm == "kvmhost":
        args = beside_qemu.kvmhost_args(kernel, initrd, CMDLINE)
        sock = os.path.join(env["KVMHOST_RUNDIR"], "bench.sock")
    else:
        args = beside_qemu.qemu_args(vmm, kernel, initrd, CMDLINE,
                                     "-qmp", f"unix:{qmp},server=on,wait=off")
        sock = qmp
    t0 = time.monotonic()
    p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    con = Console(p, t0, ["Linux version", INIT_MARKER, WAITING, POWEROFF], SILENT_S)
    try:
        if not con.wait(WAITING, BOOT_LIMIT_S):
            return f"no /init; last line: {con.last_line()}" + where_it_is(vmm, env)
        total, ram = smaps_pss_kib(p.pid)
        s, f, call = control(vmm, sock)
        with s:
            pause = pause_resume_ms(call, f)
        off = con.wait(POWEROFF, BOOT_LIMIT_S)
        if not off:
            return f"no power-off line; last line: {con.last_line()}" + where_it_is(vmm, env)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            return (f"still running 60 s after `poweroff -f`; last line: {con.last_line()}" +
                    where_it_is(vmm, env))
        gone = time.monotonic()
        return {"banner": (con.seen["Linux version"] - t0),
                "init": (con.seen[INIT_MARKER] - t0), "poweroff": (gone - off) * 1e3,
                "memory": (total - ram) / 1024, "pause": pause}
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


FIGURES = [("banner", "exec -> Linux banner (s)"), ("init", "exec -> /init (s)"),
           ("poweroff", "poweroff -f -> VMM exit (ms)"),
           ("memory", "VMM Pss less guest RAM (MiB)"),
           ("pause", "pause + resume over the control socket (ms)")]


def main():
    with beside_qemu.session("kvmhost-bench-qemu-") as (kernel, workdir, env):
        initrd = busybox_initramfs(workdir, INIT)
        results, stalls = beside_qemu.in_turns(
            lambda vmm, _: boot_once(vmm, kernel, initrd, workdir, env), RUNS, TRIES)
        reached = ", ".join(f"{v} {len(r)} of {len(r) + stalls[v]}" for v, r in results.items())
        print(f"{os.path.basename(kernel)}, {beside_qemu.MEMORY_MIB} MiB, 1 vCPU, medians of "
              f"the runs that reached power-off ({reached} boots):")
        beside_qemu.table(results, [(k, label, kvmhost_over) for k, label in FIGURES], 44)

if __name__ == "__main__":
    main()
