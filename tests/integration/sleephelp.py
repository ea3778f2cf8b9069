"""A private D-Bus with a fake logind, and a cgroup freezer, for host-sleep
tests. Never touches /sys/power."""
import os
import queue
import shutil
import subprocess
import threading
import time

from kvmtest import skip

FAKE_LOGIND = os.environ.get("FAKE_LOGIND") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tests", "fake_logind")
CONF = os.environ.get("DBUS_TEST_CONF") or os.path.join(
    os.path.dirname(__file__), "..", "dbus-test.conf")


def start_bus(base_env):
    """A private dbus-daemon of type system: (its process, base_env pointing at it)."""
    if not shutil.which("dbus-daemon"):
        skip("dbus-daemon is not installed (apt-get install dbus-daemon)")
    daemon = subprocess.Popen(["dbus-daemon", "--config-file", CONF, "--nofork",
                               "--print-address=1"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    address = daemon.stdout.readline().strip()
    assert address.startswith("unix:"), address
    return daemon, dict(base_env, DBUS_SYSTEM_BUS_ADDRESS=address)


def stop(*procs):
    """Terminates each process still running, killing it if it lingers."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Logind:
    """dbus-daemon + fake_logind; .env carries DBUS_SYSTEM_BUS_ADDRESS."""

    def __init__(self, base_env, upower=False, delay_us=None):
        self.daemon, self.env = start_bus(base_env)
        self.cmd = [FAKE_LOGIND] + (["--upower"] if upower else [])
        self.cmd += [f"--delay-us={delay_us}"] if delay_us else []
        self.lines = queue.Queue()
        self.stash = []  # inhibit/released lines of another inhibitor, not yet asked for
        self._start()

    def _start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        assert self.expect("ready")[0] == "ready"

    def restart(self):
        """logind going away and a new one taking the name: every inhibitor
        the old one handed out is forgotten."""
        self.proc.terminate()
        self.proc.wait(5)
        self._start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.put(line.split())

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    @staticmethod
    def _what(parts):
        """What an inhibit/released line's inhibitor is for, else None."""
        if parts[0] == "inhibit" and len(parts) > 4:
            return parts[4]
        if parts[0] == "released" and len(parts) > 3:
            return parts[3]
        return None

    def _is(self, parts, word, what):
        return parts[0] == word and (what is None or self._what(parts) in (None, what))

    def expect(self, word, timeout=10, what="sleep"):
        """The next `word` line; inhibit/released lines only for `what` (those
        for another inhibitor are kept for an expect that asks for it)."""
        for i, parts in enumerate(self.stash):
            if self._is(parts, word, what):
                return self.stash.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"fake logind: no '{word}' within {timeout}s")
            try:
                parts = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if self._is(parts, word, what):
                return parts
            if self._what(parts) not in (None, what):
                self.stash.append(parts)

    def quiet(self, word, seconds, what="sleep"):
        """True if no `word` line arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                parts = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                return True
            if self._is(parts, word, what):
                return False
        return True

    def close(self):
        stop(self.proc, self.daemon)


def with_logind(env, **kw):
    """A private bus and fake logind for this test, gone when the test ends."""
    logind = Logind(env.env, **kw)
    env.env = logind.env
    env.cleanups.append(logind.close)
    return logind


class Freezer:
    """Freezes a process the way the kernel freezes tasks for a suspend."""

    def __init__(self, pid):
        self.pid = pid
        v1 = "/sys/fs/cgroup/freezer"
        if os.path.exists(f"{v1}/freezer.state") or os.path.exists(f"{v1}/tasks"):
            self.root, self.v2 = v1, False
        elif os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            self.root, self.v2 = "/sys/fs/cgroup", True
        else:
            skip("no cgroup freezer (v1 freezer or v2 cgroup.freeze)")
        if os.geteuid() != 0:
            skip("the cgroup freezer needs root here")
        self.dir = f"{self.root}/kvmhost-test-{os.getpid()}-{pid}"
        os.mkdir(self.dir)
        with open(f"{self.dir}/cgroup.procs", "w") as f:
            f.write(str(pid))

    def _state(self, frozen):
        if self.v2:
            with open(f"{self.dir}/cgroup.freeze", "w") as f:
                f.write("1" if frozen else "0")
            return
        with open(f"{self.dir}/freezer.state", "w") as f:
            f.write("FROZEN" if frozen else "THAWED")
        want = "FROZEN" if frozen else "THAWED"
        for _ in range(500):
            with open(f"{self.dir}/freezer.state") as f:
                if f.read().strip() == want:
                    return
            time.sleep(0.01)
        raise AssertionError(f"freezer did not reach {want}")

    def freeze(self):
        self._state(True)

    def thaw(self):
        self._state(False)

    def close(self):
        try:
            self._state(False)
        except OSError:
            pass
        try:
            with open(f"{self.root}/cgroup.procs", "w") as f:
                f.write(str(self.pid))
        except OSError:
            pass  # the process may be gone
        for _ in range(100):
            try:
                os.rmdir(self.dir)
                return
            except OSError:
                time.sleep(0.02)
