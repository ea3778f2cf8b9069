"""The real systemd-logind on a private D-Bus, for managed-save and sleep
tests: a dbus-daemon of its own, a stub org.freedesktop.systemd1
(tests/stub_systemd1.c: StartUnit only reports), and logind itself inside
`unshare --mount` with a tmpfs over /run (its config drop-in, seats,
sessions, nologin all land there) and a file saying "freeze mem disk" bound
over /sys/power/state in its namespace only. Nothing of the host changes;
nothing here reaches a real systemd."""
import json
import os
import queue
import shutil
import subprocess
import threading
import time

from kvmtest import skip
from sleephelp import start_bus, stop

LOGIND = "/lib/systemd/systemd-logind"
STUB = os.environ.get("STUB_SYSTEMD1") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tests", "stub_systemd1")
LOGIND_CONF = """[Login]
InhibitDelayMaxSec={delay}
HandlePowerKey=ignore
HandleSuspendKey=ignore
HandleHibernateKey=ignore
HandleRebootKey=ignore
HandleLidSwitch=ignore
HandleLidSwitchExternalPower=ignore
HandleLidSwitchDocked=ignore
NAutoVTs=0
ReserveVT=0
KillUserProcesses=no
"""
# Runs as logind's parent inside the new mount namespace, then becomes it.
START = """set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/logind.conf.d
cp "$1/logind.conf" /run/systemd/logind.conf.d/kvmhost-test.conf
mount --bind "$1/power_state" /sys/power/state
exec "$2"
"""


class RealLogind:
    """.env carries DBUS_SYSTEM_BUS_ADDRESS; .log() is logind's debug log."""

    def __init__(self, base_env, workdir, delay_s=5, suspend_cmd=None):
        """suspend_cmd: what starting suspend.target runs for real (only in a
        throwaway test host); by default the stub only reports."""
        if os.geteuid() != 0:
            skip("the real logind needs root (a mount namespace)")
        for tool in ("unshare", "busctl"):
            if not shutil.which(tool):
                skip(f"{tool} is not installed")
        if not os.access(LOGIND, os.X_OK):
            skip(f"{LOGIND} is not installed (apt-get install systemd)")
        self.dir = os.path.join(workdir, "logind")
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "logind.conf"), "w") as f:
            f.write(LOGIND_CONF.format(delay=delay_s))
        with open(os.path.join(self.dir, "power_state"), "w") as f:
            f.write("freeze mem disk\n")
        self.daemon, self.env = start_bus(base_env)
        self.procs = [self.daemon]
        stub_env = dict(self.env, **({"STUB_SYSTEMD1_SUSPEND": suspend_cmd} if suspend_cmd else {}))
        self.stub = self._spawn([STUB], stub_env, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        self.starts = queue.Queue()
        self.suspends = queue.Queue()
        self.prepares = queue.Queue()
        threading.Thread(target=self._read_stub, daemon=True).start()
        self.log_path = os.path.join(self.dir, "logind.log")
        env = dict(self.env, SYSTEMD_LOG_LEVEL="debug", SYSTEMD_LOG_TARGET="console",
                   SYSTEMD_LOG_COLOR="0")
        with open(self.log_path, "w") as log:
            self.logind = self._spawn(["unshare", "--mount", "--propagation", "private", "sh",
                                       "-c", START, "sh", self.dir, LOGIND], env, stdout=log,
                                      stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self.busctl("get-property", "InhibitDelayMaxUSec", check=False).returncode:
            if self.logind.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"logind did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def _spawn(self, cmd, env, **kw):
        p = subprocess.Popen(cmd, env=env, stdin=kw.pop("stdin", subprocess.DEVNULL), text=True,
                             stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
        self.procs.append(p)
        return p

    def _read_stub(self):
        for line in self.stub.stdout:
            parts = line.split()
            if parts and parts[0] == "start":
                self.starts.put(parts[1:])
            elif parts and parts[0] == "prepare":
                self.prepares.put(parts[1:])
            elif parts and parts[0] == "suspended":
                self.suspends.put(int(parts[1]))

    def hold_jobs(self, hold=True):
        """While held, the unit logind starts (suspend.target) stays running: the
        host "sleeps" until hold_jobs(False) ends it and logind wakes everyone."""
        self.stub.stdin.write("hold\n" if hold else "finish\n")
        self.stub.stdin.flush()

    def busctl(self, verb, *args, check=True):
        cmd = ["busctl", "--system", verb, "org.freedesktop.login1", "/org/freedesktop/login1",
               "org.freedesktop.login1.Manager", *args]
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        if check and p.returncode:
            raise AssertionError(f"busctl {verb} {args}: {p.stderr}")
        return p

    def sleep_inhibitors(self):
        """Why each of kvmhost's sleep inhibitors is held, sorted."""
        return sorted(i[2] for i in self.inhibitors() if i[:2] == ("sleep", "kvmhost"))

    def inhibitors(self):
        """(what, who, why, mode) of every inhibitor logind holds."""
        p = subprocess.run(["busctl", "--system", "--json=short", "call", "org.freedesktop.login1",
                            "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                            "ListInhibitors"], env=self.env, capture_output=True, text=True,
                           timeout=30, check=True)
        return [tuple(i[:4]) for i in json.loads(p.stdout)["data"][0]]

    def expect_start(self, timeout=30):
        """The unit logind asked the stub systemd to start, and when:
        (unit, CLOCK_MONOTONIC ns, CLOCK_REALTIME ns)."""
        try:
            unit, mode, mono, real = self.starts.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"logind started no unit in {timeout}s:\n{self.log()[-3000:]}")
        return unit, int(mono), int(real)

    def expect_suspended(self, timeout=120):
        """The exit status of the real suspend the stub ran for suspend.target."""
        try:
            return self.suspends.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the suspend did not return in {timeout}s")

    def expect_prepare(self, timeout=30):
        """(signal, start, CLOCK_MONOTONIC ns) of the next PrepareFor* logind sent."""
        signal, start, mono = self.prepares.get(timeout=timeout)
        return signal, start == "1", int(mono)

    def released_before_start(self, names, why):
        """logind's own log: the kvmhost inhibitor of each VM in names (its
        reason `why(name)`) was released before logind's StartUnit."""
        lines = self.log().splitlines()
        start = next(i for i, l in enumerate(lines) if "member=StartUnit" in l)
        for n in names:
            stopped = [i for i, l in enumerate(lines)
                       if f"({why(n)}" in l and l.endswith("stopped.")]
            assert stopped and stopped[0] < start, (n, stopped, start)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        stop(*reversed(self.procs))


def sleep_why(name):
    """Why kvmhost holds VM `name`'s sleep inhibitor, as logind lists it."""
    return f"pause VM {name} and flush its disks before the host sleeps"


def sleep_why_logged(name):
    """The start of that reason, as logind's log line has it."""
    return f"pause VM {name} and flush its disks"


def with_real_logind(env, **kw):
    """The real systemd-logind on this test's own bus, gone when the test ends."""
    real = RealLogind(env.env, env.dir, **kw)
    env.cleanups.append(real.close)
    env.env = real.env
    return real
