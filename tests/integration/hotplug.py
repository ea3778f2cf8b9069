"""Real host CPU hotplug for tests, with a guard that always brings the CPU
back: on success, failure, timeout (SIGTERM from the runner) and Ctrl-C."""
import atexit
import os
import signal
import sys
import time

from kvmtest import skip

SYSFS = "/sys/devices/system/cpu"


def online_path(cpu):
    return f"{SYSFS}/cpu{cpu}/online"


def is_online(cpu):
    with open(online_path(cpu)) as f:
        return f.read().strip() == "1"


def set_online(cpu, up, tries=50):
    for i in range(tries):
        try:
            with open(online_path(cpu), "w") as f:
                f.write("1" if up else "0")
            return
        except OSError:
            # EBUSY while the kernel is still busy with the last transition.
            if i == tries - 1:
                raise
            time.sleep(0.05)


def require_hotplug(cpu=1):
    if os.geteuid() != 0:
        skip("host CPU hotplug needs root")
    if not os.path.exists(online_path(cpu)):
        skip(f"host CPU {cpu} cannot be hotplugged here (no {online_path(cpu)})")
    if not os.access(online_path(cpu), os.W_OK):
        skip(f"{online_path(cpu)} is not writable")
    if not is_online(cpu):
        set_online(cpu, True)


_offline = set()


def _restore_all():
    for cpu in list(_offline):
        try:
            set_online(cpu, True)
        except OSError as e:
            print(f"hotplug guard: could not bring cpu{cpu} back: {e}", file=sys.stderr)
        _offline.discard(cpu)


def _on_signal(signum, frame):
    _restore_all()
    # Leave with the signal's usual status; the finally blocks run too.
    raise SystemExit(128 + signum)


atexit.register(_restore_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


class Offline:
    """with Offline(1): ... cpu1 is offline inside, online after, whatever happens."""

    def __init__(self, cpu):
        self.cpu = cpu

    def __enter__(self):
        _offline.add(self.cpu)
        set_online(self.cpu, False)
        return self

    def online(self):
        """Brings the CPU back early; returns the monotonic time the write returned."""
        set_online(self.cpu, True)
        _offline.discard(self.cpu)
        return time.monotonic()

    def __exit__(self, *exc):
        if self.cpu in _offline:
            set_online(self.cpu, True)
            _offline.discard(self.cpu)
        return False


def affinity(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    raise AssertionError("no Cpus_allowed_list")


def cpu_list(text):
    """The set of CPUs in a kernel CPU list ("0,2-3")."""
    cpus = set()
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def online_cpus():
    with open(f"{SYSFS}/online") as f:
        return cpu_list(f.read())
