"""Inside the test host (tools/testhost): ask its QEMU for what only the
outside can do - wake it from suspend to RAM, hot-add a CPU - over its second
serial port, and suspend it for real. Nothing here runs on a real machine:
every entry point skips unless KVMHOST_TESTHOST says this is a test host."""
import itertools
import json
import os
import subprocess
import sys
import termios
import threading
import time

from kvmtest import IN_TESTHOST, KVMHOST, SKIP, Skipped, require_root, skip

RELAY_TTY = "/dev/ttyS1"
TESTHOST_TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "tools", "testhost")


def require_testhost(why):
    if not IN_TESTHOST:
        skip(f"{why} runs only inside the throwaway test host (tools/testhost)")


class Relay:
    """JSON lines to tools/testhost's relay, each answered by QEMU's reply."""

    def __init__(self):
        require_testhost("talking to the test host's QEMU")
        self.fd = os.open(RELAY_TTY, os.O_RDWR | os.O_NOCTTY)
        attrs = termios.tcgetattr(self.fd)
        attrs[0] = 0                       # iflag: no translation
        attrs[1] = 0                       # oflag: raw output
        attrs[3] = 0                       # lflag: no echo, no canonical mode
        attrs[6][termios.VMIN] = 1
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        self.ids = itertools.count(1)
        self.replies = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            data = os.read(self.fd, 4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                # Each reply starts with a record separator: what a serial port
                # lost while the test host resumed spoils one reply, not the next.
                line = line.rsplit(b"\x1e", 1)[-1]
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                with self.cond:
                    self.replies[r.get("id")] = r
                    self.cond.notify_all()

    def send(self, cmd, after=0.0, when_suspended=False):
        """Queues `cmd` (a QMP command) to run `after` seconds from now - or
        from when the test host is next asleep; returns its id."""
        rid = next(self.ids)
        req = {"id": rid, "after": after, "qmp": cmd}
        if when_suspended:
            req["when"] = "suspended"
        os.write(self.fd, (json.dumps(req) + "\n").encode())
        return rid

    def wait(self, rid, timeout=60):
        with self.cond:
            if not self.cond.wait_for(lambda: rid in self.replies, timeout):
                raise AssertionError(f"no reply from the test host's QEMU to request {rid}")
            r = self.replies.pop(rid)
        if "error" in r:
            raise AssertionError(f"QEMU refused request {rid}: {r['error']}")
        return r["return"]

    def qmp(self, execute, **arguments):
        cmd = {"execute": execute}
        if arguments:
            cmd["arguments"] = arguments
        return self.wait(self.send(cmd))


_relay = []


def relay():
    """The one Relay of this process (two would read each other's replies)."""
    if not _relay:
        _relay.append(Relay())
    return _relay[0]


def require_suspendable():
    require_testhost("a real suspend to RAM")
    if os.environ.get("KVMHOST_TESTHOST_SUSPENDABLE") != "1":
        skip("this test host's root is on 9p, which cannot suspend (tools/testhost --suspendable)")
    with open("/sys/power/state") as f:
        if "mem" not in f.read().split():
            raise AssertionError("the test host's kernel offers no suspend to RAM")


def wake_when_asleep(relay, asleep_s):
    """Has QEMU wake the test host `asleep_s` after it next suspends. Its
    reply may be lost while the serial port resumes: do not wait for it."""
    return relay.send({"execute": "system_wakeup"}, after=asleep_s, when_suspended=True)


def suspend_to_ram(relay, asleep_s=2.0, pm_test=None):
    """Suspends the test host to RAM (echo mem > /sys/power/state) and has
    QEMU wake it `asleep_s` after it is down; with pm_test ("core", ...) the
    kernel's own test mode instead, which resumes by itself. Returns seconds
    taken."""
    require_suspendable()
    with open("/sys/power/pm_test", "w") as f:
        f.write(pm_test or "none")
    if not pm_test:
        wake_when_asleep(relay, asleep_s)
    start = time.monotonic()
    try:
        with open("/sys/power/state", "w") as f:
            f.write("mem")
    finally:
        if pm_test:
            with open("/sys/power/pm_test", "w") as f:
                f.write("none")
    took = time.monotonic() - start
    # The wake request's reply may be lost to the serial port's own resume;
    # that QEMU runs the test host again is what counts.
    assert relay.qmp("query-status")["status"] == "running"
    return took


def hotpluggable_cpus(relay):
    return relay.qmp("query-hotpluggable-cpus")


def add_cpu(relay):
    """Hot-adds the first absent CPU; returns the new host CPU's number."""
    before = set(os.listdir("/sys/devices/system/cpu"))
    free = [c for c in hotpluggable_cpus(relay) if "qom-path" not in c]
    if not free:
        raise AssertionError("the test host has no CPU left to hot-add (tools/testhost --max-cpus)")
    free.sort(key=lambda c: sorted(c["props"].items()))
    c = free[0]
    relay.qmp("device_add", driver=c["type"], id=f"hotcpu{int(time.time() * 1000)}",
              **c["props"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = {d for d in set(os.listdir("/sys/devices/system/cpu")) - before
               if d.startswith("cpu") and d[3:].isdigit()}
        if new:
            return int(new.pop()[3:])
        time.sleep(0.05)
    raise AssertionError("a hot-added CPU did not appear in /sys/devices/system/cpu")


def testhost_command(script, name, *options, args=(), tcg="single"):
    """From outside a test host: the command that runs `script` with `args`
    inside a test host (tools/testhost `options`, TCG threads `tcg`), with
    the variables the tests read passed on. The test host's console goes to
    meson-logs/testhost-NAME-console.log."""
    passed = [f"{k}={os.environ[k]}" for k in ("KVMHOST", "STUB_SYSTEMD1", "FAKE_LOGIND",
                                                "DBUS_TEST_CONF", "PYTHONPATH")
              if k in os.environ]
    console = os.path.join(os.path.dirname(os.path.abspath(KVMHOST)), "meson-logs",
                           f"testhost-{name}-console.log")
    os.makedirs(os.path.dirname(console), exist_ok=True)
    return [TESTHOST_TOOL, "--tcg-threads", tcg, *options,
            "--console", console, "--", "env", *passed, "python3", "-u",
            os.path.abspath(script), *args], console


def native_kvm():
    """Whether this machine's /dev/kvm can make a VM (tools/testhost --native-kvm)."""
    return subprocess.run([TESTHOST_TOOL, "--native-kvm"]).returncode == 0


def rerun_in_a_suspendable_test_host(script, name, cpus=2):
    """From outside a test host: runs `script` again, with this process's
    arguments, inside a test host that can sleep (tools/testhost
    --suspendable), and exits with its status. So such a file runs
    natively, never in the shared test hosts of the `kvm` suite."""
    rerun_in_a_test_host(script, name, "--suspendable", "--cpus", str(cpus),
                         "--append", "loglevel=7")  # the kernel says how each suspend went


# What the test host's kernel prints when it dies under multi-threaded TCG
# (DEVELOPERS.md): its own bug, QEMU -accel kvm's guests hit it too.
HOST_DIED = ("Kernel panic - not syncing", "BUG: TASK stack guard page was hit")
HOST_GONE = 125  # tools/testhost's status when the command never finished


def rerun_in_a_test_host(script, name, *options, tcg="single", host_deaths_allowed=0):
    """From outside a test host: runs `script` again, with this process's
    arguments, in a test host of its own (tools/testhost `options`), and
    exits with its status. A run whose test host's kernel died under it
    (its console says so) is no verdict on kvmhost: it is run again, at most
    `host_deaths_allowed` times; a test that failed is never run again."""
    try:
        require_root()
    except Skipped as e:
        print(f"SKIP: {e}")
        sys.exit(SKIP)
    cmd, console = testhost_command(script, name, "--timeout", "1800", *options,
                                    args=sys.argv[1:], tcg=tcg)
    for attempt in range(host_deaths_allowed + 1):
        print(f"in a test host of its own (console: {console})", flush=True)
        rc = subprocess.run(cmd).returncode
        died = rc == HOST_GONE and host_died(console)
        if not died or attempt == host_deaths_allowed:
            break
        print(f"the test host's kernel died ({died}): running it again", flush=True)
    sys.exit(rc)


def host_died(console):
    """The first of HOST_DIED that the test host's console shows, or None."""
    try:
        with open(console, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return next((m for m in HOST_DIED if m in text), None)
