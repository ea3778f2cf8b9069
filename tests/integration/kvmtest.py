"""Helpers for kvmhost integration tests: start real VMs, talk to them over
their control sockets, and always clean up. Standard library only."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

KVMHOST = os.environ.get("KVMHOST") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "kvmhost")
SKIP = 77  # meson's "skipped" exit code
# How much slower than a real KVM host this one is: tools/testhost sets it for
# its TCG-emulated KVM, where every guest instruction is emulated. Waits and
# "is it still moving" windows stretch by it; no figure is ever scaled.
SLOWDOWN = float(os.environ.get("KVMHOST_TEST_SLOWDOWN", "1"))
IN_TESTHOST = os.environ.get("KVMHOST_TESTHOST") == "1"
# KVM nested under single-threaded TCG (tools/testhost's default): with two or
# more test-host CPUs it delivers an interrupt twice now and then, which
# stalls Linux guests (DEVELOPERS.md).
SINGLE_TCG = IN_TESTHOST and os.environ.get("KVMHOST_TESTHOST_TCG", "single") != "multi"


class Skipped(Exception):
    pass


def skip(why):
    """Skips the running test (or, outside one, the whole file)."""
    raise Skipped(why)


def require_kvm():
    if IN_TESTHOST and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise AssertionError("the test host has no usable /dev/kvm")
    if not os.path.exists("/dev/kvm"):
        skip("/dev/kvm does not exist on this machine")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        skip("no permission to open /dev/kvm (run as root or in the kvm group)")


def require_root():
    if os.geteuid() != 0:
        skip("needs root")


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    timeout *= SLOWDOWN
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sparse_file(path, size):
    """Makes `path` a file of `size` bytes, all a hole; returns the path."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


class Env:
    """A private runtime directory, so tests never see other VMs."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kvmhost-test-")
        self.rundir = os.path.join(self.dir, "run")
        self.statedir = os.path.join(self.dir, "state")  # managed saves
        self.env = dict(os.environ, KVMHOST_RUNDIR=self.rundir, KVMHOST_STATEDIR=self.statedir)
        self.vms = []
        self.cleanups = []  # run after the VMs are gone, last first

    def run(self, *args, timeout=30, check=False):
        p = subprocess.run([KVMHOST, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout * SLOWDOWN)
        if check and p.returncode != 0:
            raise AssertionError(f"kvmhost {' '.join(args)} failed {p.returncode}: {p.stderr}")
        return p

    def start(self, name, *args, wait=True, heartbeats=True, prefix=()):
        """Starts a VM; waits until it answers and (with heartbeats) every
        vCPU has beaten once. `prefix` runs it through another command
        (`ip netns exec NS`), which must exec it in its place."""
        vm = VM(self, name, args, prefix)
        self.vms.append(vm)
        if wait:
            vm.wait_ready(heartbeats=heartbeats)
        return vm

    def image(self, name, size, owner=None):
        """A sparse disk image of `size` bytes in the test's directory."""
        path = sparse_file(os.path.join(self.dir, name), size)
        if owner is not None:
            os.chown(path, owner, owner)
        return path

    def list(self):
        p = self.run("list", "--json", check=True)
        return json.loads(p.stdout)

    def close(self):
        for vm in self.vms:
            vm.kill()
        for fn in reversed(self.cleanups):
            fn()
        shutil.rmtree(self.dir, ignore_errors=True)


class VM:
    def __init__(self, env, name, args, prefix=()):
        self.env = env
        self.name = name
        self.console = os.path.join(env.dir, f"{name}.console")
        self.stderr_path = os.path.join(env.dir, f"{name}.stderr")
        self._stderr = open(self.stderr_path, "w")
        cmd = [*prefix, KVMHOST, "run", "--name", name, "--console", self.console, *args]
        self.proc = subprocess.Popen(cmd, env=env.env, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, stdin=subprocess.DEVNULL)
        self.sock = os.path.join(env.rundir, f"{name}.sock")

    def wait_ready(self, timeout=15, heartbeats=True):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"VM {self.name} exited {self.proc.returncode}: "
                                     f"{self.stderr()}")
            try:
                st = self.status()
            except OSError:
                return False
            return not heartbeats or all(v["heartbeats"] > 0 for v in st["vcpus"])
        wait_for(ready, timeout, what=f"{self.name} to boot")

    def request(self, obj, timeout=5):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout * SLOWDOWN)
            s.connect(self.sock)
            s.sendall((json.dumps(obj) + "\n").encode())
            return json.loads(read_line(s))

    def status(self):
        r = self.request({"cmd": "status"})
        assert r["ok"], r
        return r["result"]

    def heartbeats(self):
        return [v["heartbeats"] for v in self.status()["vcpus"]]

    def ctl(self, *args):
        return self.env.run("ctl", self.name, *args)

    def stderr(self):
        self._stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout=20):
        return self.proc.wait(timeout * SLOWDOWN)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


class LockoutAttack:
    """`peers` connections to a VM's control socket, each sending a byte every
    `period` s and never a request: every slot taken, as an attacker would."""

    def __init__(self, sock_path, peers=32, period=0.2):
        self.peers = []
        for _ in range(peers):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            self.peers.append(s)
        self.period = period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle)

    def _trickle(self):
        while not self.stop.is_set():
            for s in self.peers:
                try:
                    s.send(b" ")
                except OSError:
                    pass
            self.stop.wait(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for s in self.peers:
            s.close()


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {buf!r}")
        buf += chunk
    return buf.decode()


def advancing(vm, interval=0.3):
    """Heartbeats of every vCPU advance over `interval`."""
    a = vm.heartbeats()
    time.sleep(interval * SLOWDOWN)
    b = vm.heartbeats()
    return all(y > x for x, y in zip(a, b))


def note_irqs_if_off(st):
    """Interrupts the built-in guest took with interrupts off: none where KVM
    is native; single-threaded TCG in the test host delivers some twice
    (DEVELOPERS.md), so they are said, and required to be none only there."""
    n = st.get("guest_irqs_if_off")
    if not n:
        return
    where = st.get("guest_irq_if_off_where")
    assert IN_TESTHOST, f"{n} interrupts taken with interrupts off, last {where}"
    print(f"note: {st.get('name')}: {n} interrupts taken with IF clear (last: {where}): "
          "single-threaded TCG's double delivery", flush=True)


def main(tests, needs_kvm=True, setup=None):
    """Runs the given test functions, each with a fresh Env; prints a summary.
    A test that skips is counted as such; if every test skips, so does the file.
    Test names given as arguments run only those."""
    if sys.argv[1:]:
        tests = [t for t in tests if t.__name__ in sys.argv[1:]]
    try:
        if needs_kvm:
            require_kvm()
        if setup:
            setup()
    except Skipped as e:
        print(f"SKIP: {e}")
        sys.exit(SKIP)
    failed = skipped = 0
    for t in tests:
        env = Env()
        start = time.monotonic()
        try:
            t(env)
            print(f"PASS {t.__name__} ({time.monotonic() - start:.2f}s)")
        except Skipped as e:
            skipped += 1
            print(f"SKIP {t.__name__}: {e}")
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
            for vm in env.vms:
                print(f"--- {vm.name} stderr:\n{vm.stderr()}")
        finally:
            env.close()
    print(f"{len(tests) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else SKIP if skipped == len(tests) else 0)
