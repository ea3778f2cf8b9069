"""What the benches that run a Linux guest under kvmhost beside QEMU
(-accel kvm) share: each VMM's command line for the same kernel, initramfs
and devices, the runs taken in turns, and the table of medians and ratios.

The three VMMs: kvmhost, QEMU's microvm (virtio-mmio like kvmhost) and QEMU's
q35 (virtio-pci)."""
import contextlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("KVMHOST", sys.argv[1] if len(sys.argv) > 1 else "build/kvmhost")
import kvmtest  # noqa: E402
from kernels import debian_kernel  # noqa: E402

# KVMHOST_BENCH_VMMS=kvmhost (comma-separated) runs only those: for trying a
# change out, not for a figure (a ratio needs QEMU in the same run).
VMMS = tuple(os.environ.get("KVMHOST_BENCH_VMMS", "kvmhost,microvm,q35").split(","))
MEMORY_MIB = 256
# The guest's kernel says little: a console is slow where KVM is nested.
QUIET_CMDLINE = "console=ttyS0 loglevel=4 panic=-1"
# What a measuring /init does first.
INIT_MOUNTS = """export PATH=/bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
"""


def virtio(machine, kind):
    """QEMU's name for a virtio device of `kind` (blk, net) on `machine`."""
    return f"virtio-{kind}-{'device' if machine == 'microvm' else 'pci'}"


def qemu_args(machine, kernel, initrd, cmdline, *extra, memory_mib=MEMORY_MIB):
    """QEMU on KVM, 1 vCPU, nothing but the console (stdio) and `extra`."""
    return ["qemu-system-x86_64", "-machine", machine, "-accel", "kvm", "-cpu", "host",
            "-smp", "1", "-m", str(memory_mib), "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
            "-append", cmdline, *extra]


def kvmhost_args(kernel, initrd, cmdline, *extra, name="bench", memory_mib=MEMORY_MIB):
    """kvmhost with what qemu_args gives QEMU, and `extra`."""
    return [kvmtest.KVMHOST, "run", "--name", name, "--kernel", kernel, "--initrd", initrd,
            "--memory", str(memory_mib), "--cpus", "1", "--cmdline", cmdline, *extra]


class Console:
    """Reads a VMM's stdout on a thread; notes when each marker first shows.
    A console silent for `silent_s` counts as stalled."""

    def __init__(self, proc, t0, markers=(), silent_s=45):
        self.proc, self.t0, self.markers, self.silent_s = proc, t0, markers, silent_s
        self.seen, self.text, self.last = {}, b"", time.monotonic()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            with self.cond:
                if not chunk:
                    self.seen["eof"] = time.monotonic()
                    self.cond.notify_all()
                    return
                self.text += chunk
                self.last = time.monotonic()
                for m in self.markers:
                    if m not in self.seen and m.encode() in self.text:
                        self.seen[m] = time.monotonic()
                self.cond.notify_all()

    def wait(self, marker, limit):
        """When `marker` showed; None if the console ended, fell silent too
        long or `limit` passed first."""
        with self.cond:
            while marker not in self.seen and "eof" not in self.seen:
                now = time.monotonic()
                if now > self.t0 + limit or now > self.last + self.silent_s:
                    break
                self.cond.wait(1)
            return self.seen.get(marker)

    def wait_text(self, text, after, limit):
        """Whether `text` shows past byte `after` of the console within `limit` s."""
        deadline = time.monotonic() + limit
        with self.cond:
            while text.encode() not in self.text[after:]:
                if time.monotonic() > deadline or "eof" in self.seen:
                    return False
                self.cond.wait(0.5)
            return True

    def last_line(self):
        lines = self.text.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(nothing)"


def qmp_connect(path, limit=30):
    """(socket, file) of a QMP monitor, capabilities negotiated."""
    wait_until = time.monotonic() + limit
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            break
        except OSError:
            s.close()
            if time.monotonic() > wait_until:
                raise
            time.sleep(0.05)
    f = s.makefile("rw")
    f.readline()  # the greeting
    qmp_call(f, "qmp_capabilities")
    return s, f


def qmp_call(f, cmd, **arguments):
    """QMP's answer to `cmd`; events on the way are passed over."""
    req = {"execute": cmd}
    if arguments:
        req["arguments"] = arguments
    f.write(json.dumps(req) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "event" not in reply:
            assert "return" in reply, reply
            return reply["return"]


@contextlib.contextmanager
def session(prefix):
    """(Debian's kernel, a scratch directory, the VMMs' environment) for one
    bench run, with KVM and QEMU there; the directory goes at the end."""
    kvmtest.require_kvm()
    if not shutil.which("qemu-system-x86_64"):
        kvmtest.skip("qemu-system-x86_64 is not installed")
    kernel = debian_kernel()
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        yield kernel, workdir, dict(os.environ, KVMHOST_RUNDIR=os.path.join(workdir, "run"),
                                    KVMHOST_STATEDIR=os.path.join(workdir, "state"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def in_turns(once, runs, tries=1):
    """{vmm: [figures]}: `runs` good results of `once(vmm, i)` each (a dict;
    a string says why that run gave none), the VMMs taking turns so that a
    drifting host hurts all alike; at most runs x tries attempts each, each
    printed with its time. Returns the results and {vmm: attempts that gave
    none}."""
    results = {v: [] for v in VMMS}
    failed = {v: 0 for v in VMMS}
    for i in range(runs * tries):
        for vmm in VMMS:
            if len(results[vmm]) >= runs:
                continue
            t = time.monotonic()
            r = once(vmm, i)
            print(f"{vmm} run {i + 1} ({time.monotonic() - t:.0f} s): {r}", flush=True)
            if isinstance(r, dict):
                results[vmm].append(r)
            else:
                failed[vmm] += 1
    return results, failed


def counts(results):
    """How many runs each median is of, for a table's caption."""
    return ", ".join(f"{v} {len(r)}" for v, r in results.items())


def medians(results, key):
    return {v: statistics.median(r[key] for r in results[v]) if results[v] else None
            for v in VMMS}


def table(results, rows, width, ratio_name="kvmhost/"):
    """Prints one row per (key, label, ratio) in `rows`: each VMM's median,
    then ratio(kvmhost's, QEMU's) against each QEMU machine."""
    print(f"{'':{width}}" + "".join(f"{v:>10}" for v in VMMS) +
          "".join(f"{ratio_name + v:>18}" for v in VMMS[1:]))
    for key, label, ratio in rows:
        med = medians(results, key)
        row = f"{label:{width}}" + "".join(
            f"{med[v]:10.2f}" if med[v] is not None else f"{'-':>10}" for v in VMMS)
        for v in VMMS[1:]:
            ok = med["kvmhost"] and med[v]
            row += f"{ratio(med['kvmhost'], med[v]):18.2f}" if ok else f"{'-':>18}"
        print(row)


def kvmhost_over(k, q):
    return k / q


def qemu_over(k, q):
    return q / k
