#!/usr/bin/env python3
"""A Linux guest with 1 GiB of its memory in use, live migrated, saved to a
file and restored, by kvmhost beside QEMU (-accel kvm) on the same KVM, in
one run: the same Debian kernel and initramfs, 1 vCPU, 1536 MiB. The
guest's /init writes FILL MiB (bench/guest/fill.c: every page, none zero)
and reads it all back each time a line comes on its console. For each VMM,
median of RUNS:

  downtime   live migration over a unix socket to a second process of the
             same VMM: guest stopped -> going on, as the VMM reports it
  total      that migration, start to end, as the VMM reports it
  save       the migrated guest stopped and saved to a file (kvmhost: ctl
             save; QEMU: stop, migrate to exec:cat > FILE, as virsh save)
  restore    exec -> the guest running from that file (kvmhost: run
             --restore; QEMU: -incoming exec:cat FILE, then cont)
  read       exec -> the restored guest, asked once it runs, has read all
             its memory back: kvmhost maps the file and loads a page when it
             is first touched, QEMU reads it all before it runs
  file       the saved file's size on disk (allocated blocks)

Each step counts only if the guest then reads its memory back whole. QEMU
as it comes but for what kvmhost does not limit either: max-bandwidth
(QEMU 7.2's default caps it at 128 MiB/s) and the downtime limit, 300 ms on
both sides (QEMU's default). Ratios kvmhost / QEMU: below 1, kvmhost takes
less. Meant for the test host, where guest ring 0 is TCG's: only ratios
count.

usage: bench/bench_qemu_migrate.py [path/to/kvmhost] [runs] [MiB]
       tools/testhost --cpus 1 --memory 8192 -- bench/bench_qemu_migrate.py build/kvmhost 3"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import beside_qemu  # noqa: E402 (first: it finds kvmhost and the test helpers)
from beside_qemu import (HERE, INIT_MOUNTS, QUIET_CMDLINE, Console, kvmhost_over,  # noqa: E402
                         kvmtest, qmp_call, qmp_connect)
from kernels import busybox_initramfs  # noqa: E402

RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
FILL_MIB = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
MEMORY_MIB = FILL_MIB + 512
DOWNTIME_MS = 300
LIMIT_S = 600
INIT = INIT_MOUNTS + f"/fill {FILL_MIB} </dev/console\necho FILL-ENDED\nsleep 1000000\n"
FIGURES = [("downtime", "live migration downtime (ms)", kvmhost_over),
           ("total", "live migration total (ms)", kvmhost_over),
           ("save", "stop + save to a file (ms)", kvmhost_over),
           ("restore", "exec -> running from the file (ms)", kvmhost_over),
           ("read", "exec -> all memory read back (ms)", kvmhost_over),
           ("file", "saved file (MiB)", kvmhost_over)]


class Run:
    """One VMM's processes in one run, all killed at the end."""

    def __init__(self, vmm, kernel, initrd, workdir, env):
        self.vmm, self.kernel, self.initrd, self.dir, self.env = vmm, kernel, initrd, workdir, env
        self.procs = []

    def start(self, name, *extra):
        """(process, console) of a VMM named `name` with this run's guest."""
        if self.vmm == "kvmhost":
            args = (beside_qemu.kvmhost_args(self.kernel, self.initrd, QUIET_CMDLINE, name=name,
                                             memory_mib=MEMORY_MIB) if not extra else
                    [kvmtest.KVMHOST, "run", "--name", name, *extra])
        else:
            args = beside_qemu.qemu_args(self.vmm, self.kernel, self.initrd, QUIET_CMDLINE,
                                         "-qmp", f"unix:{self.qmp(name)},server=on,wait=off",
                                         *extra, memory_mib=MEMORY_MIB)
        p = subprocess.Popen(args, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p, Console(p, time.monotonic(), ["FILLED", "FILL-ENDED"], silent_s=LIMIT_S)

    def qmp(self, name):
        return os.path.join(self.dir, f"{name}.qmp")

    def ctl(self, name, *args):
        p = subprocess.run([kvmtest.KVMHOST, "ctl", name, *args, "--timeout", str(LIMIT_S)],
                           env=self.env, capture_output=True, text=True, timeout=LIMIT_S + 60)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def intact(proc, con):
    """Asks the guest on `proc`'s console to read its memory back: whether
    it found every page as written."""
    after = len(con.text)
    proc.stdin.write(b"scan\n")
    proc.stdin.flush()
    return con.wait_text("FILL ok", after, 300) and b"FILL BAD" not in con.text[after:]


def qmp_migrate(f, uri):
    """Runs a QEMU migration to `uri` to its end: query-migrate's answer."""
    qmp_call(f, "migrate-set-parameters", **{"max-bandwidth": 1 << 40,
                                              "downtime-limit": DOWNTIME_MS})
    qmp_call(f, "migrate", uri=uri)
    while True:
        q = qmp_call(f, "query-migrate")
        if q.get("status") in ("completed", "failed", "cancelled"):
            assert q["status"] == "completed", q
            return q
        time.sleep(0.02)


def migrate(run, sock):
    """Source to destination over `sock`: ({downtime, total}, (its process, console))."""
    if run.vmm == "kvmhost":
        dst = run.start("dst", "--incoming", f"unix:{sock}")
        r = json.loads(run.ctl("src", "migrate", f"unix:{sock}", "--json",
                               "--max-downtime", str(DOWNTIME_MS)))
        return {"downtime": r["downtime_ms"], "total": r["total_ms"]}, dst
    dst = run.start("dst", "-incoming", f"unix:{sock}")
    deadline = time.monotonic() + LIMIT_S
    while not os.path.exists(sock):
        assert time.monotonic() < deadline, "the destination QEMU never listened"
        time.sleep(0.01)
    _, f = qmp_connect(run.qmp("src"))
    q = qmp_migrate(f, f"unix:{sock}")
    qmp_call(f, "quit")
    return {"downtime": q["downtime"], "total": q["total-time"]}, dst


def save(run, path):
    """The destination stopped and saved to `path`: ms."""
    t = time.monotonic()
    if run.vmm == "kvmhost":
        run.ctl("dst", "save", path)
        run.procs[-1].wait(LIMIT_S)
    else:
        _, f = qmp_connect(run.qmp("dst"))
        qmp_call(f, "stop")
        qmp_migrate(f, f"exec:cat > {path}")
    took = (time.monotonic() - t) * 1e3
    run.procs[-1].kill()
    return took


def kvmhost_state(sock):
    """A VM's state over its control socket, None while it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(sock)
            s.sendall(b'{"cmd": "status"}\n')
            return json.loads(kvmtest.read_line(s))["result"]["state"]
    except (OSError, ValueError, KeyError):
        return None


def restore(run, path):
    """exec -> running from `path`: (ms, (its process, console))."""
    t = time.monotonic()
    if run.vmm == "kvmhost":
        rst = run.start("rst", "--restore", path)
        sock = os.path.join(run.env["KVMHOST_RUNDIR"], "rst.sock")
        while kvmhost_state(sock) != "running":
            time.sleep(0.005)
    else:
        rst = run.start("rst", "-incoming", f"exec:cat {path}")
        _, f = qmp_connect(run.qmp("rst"))
        # Saved stopped, it arrives stopped (QEMU migrates the run state):
        # go on once it is in, as virsh restore does.
        while (state := qmp_call(f, "query-status")["status"]) != "running":
            if state == "paused":
                qmp_call(f, "cont")
            time.sleep(0.005)
    return (time.monotonic() - t) * 1e3, rst


def once(vmm, kernel, initrd, workdir, env):
    """{figure: value}, or a string saying which step failed."""
    d = tempfile.mkdtemp(dir=workdir)
    run = Run(vmm, kernel, initrd, d, env)
    try:
        proc, con = run.start("src")
        if not con.wait("FILLED", LIMIT_S) or not intact(proc, con):
            return f"the guest did not fill its memory: {con.last_line()}"
        r, (proc, con) = migrate(run, os.path.join(d, "m.sock"))
        if not intact(proc, con):
            return f"after the migration the guest did not read its memory: {con.last_line()}"
        path = os.path.join(d, "saved")
        r["save"] = save(run, path)
        r["file"] = os.stat(path).st_blocks * 512 / (1 << 20)  # what it takes on disk
        t = time.monotonic()
        r["restore"], (proc, con) = restore(run, path)
        if not intact(proc, con):
            return f"restored, the guest did not read its memory: {con.last_line()}"
        r["read"] = (time.monotonic() - t) * 1e3
        return r
    except (AssertionError, OSError, subprocess.SubprocessError) as e:
        return f"failed: {e!r}"
    finally:
        run.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    with beside_qemu.session("kvmhost-bench-migrate-") as (kernel, workdir, env):
        fill = os.path.join(workdir, "fill")
        subprocess.run(["cc", "-static", "-O2", "-o", fill, os.path.join(HERE, "guest", "fill.c")],
                       check=True)
        initrd = busybox_initramfs(workdir, INIT, extra=[fill])
        results, _ = beside_qemu.in_turns(
            lambda vmm, _: once(vmm, kernel, initrd, workdir, env), RUNS)
        print(f"{os.path.basename(kernel)}, 1 vCPU, {MEMORY_MIB} MiB, {FILL_MIB} MiB in use, "
              f"medians of {beside_qemu.counts(results)} runs:")
        beside_qemu.table(results, FIGURES, 40)

if __name__ == "__main__":
    main()
