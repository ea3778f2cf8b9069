"""Linux guests end to end: Debian's kernel and its own virtio drivers in user
space, writing, syncing and reading back an ext4 disk, on a network, through
what kvmhost promises to survive - a pause, the host's sleep, a snapshot, a
live migration, a managed save - judged by the guest's own reports
(linuxguest.py), its wall clock against ours, the bytes on the disk after it
powered off through its own button driver, and e2fsck.

Where KVM is nested under single-threaded TCG with more than one CPU these
do not run (Linux stalls there: DEVELOPERS.md); tools/run-tests.sh runs them
in a test host with one CPU. A real suspend to RAM is test_linux_suspend.py,
a host CPU going offline test_linux_host_cpu.py."""
import os
import re
import subprocess
import time
import hashlib

import linuxguest
from nettest import NetNS, announced_since
from kvmtest import IN_TESTHOST, SLOWDOWN, main, wait_for
from reallogind import with_real_logind
from test_linux import linux_to_user_space_here
from linuxguest import ctl

CLOCK_S = 1.0  # the guest's wall clock stays within this of ours
KEPT_S = 0.25  # and, through anything the host does, within this of where it was


def step(vm, what, past, clock):
    """After `what`, the workload goes on, numbered past `past`, and the
    guest's clock agrees with ours; returns the last pass's number.

    `clock` holds the offset the guest booted with. Where KVM is nested
    under TCG (the test host) the guest boots 0.4-1.4 s behind the host and
    stays there (DEVELOPERS.md), so there only the change is judged."""
    t0 = time.monotonic()
    last, off = linuxguest.passes_on(vm, past, count=2, timeout=180)
    clock.setdefault("boot", off)
    print(f"{what}: passes go on ({last[0]}, {time.monotonic() - t0:.1f} s), "
          f"guest clock {off * 1000:+.0f} ms", flush=True)
    assert abs(off - clock["boot"]) <= KEPT_S, (
        f"after {what} the guest's clock is {off:+.3f} s off, {clock['boot']:+.3f} at boot")
    assert IN_TESTHOST or abs(off) <= CLOCK_S, f"after {what}, the guest's clock is {off:+.3f} s off"
    return last[0]


def power_off(vm, disk, before=""):
    """The power button: Linux's driver, the agent ends its pass, unmounts,
    S5. Each file holds what the last pass that wrote it read back, and the
    filesystem is clean. `before`: the console of the VM's earlier
    processes (before a restore or migration), oldest first."""
    ctl(vm, "poweroff")
    try:
        assert vm.wait_exit(30) == 0, vm.stderr()
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{vm.name} still runs after its power button: "
                             f"{vm.status()}\n{vm.console_text()[-3000:]}")
    last = vm.console_text()
    assert "E2E clean-shutdown" in last, last[-2000:]
    text = before + last
    linuxguest.check_clean(text)
    linuxguest.fsck_clean(disk)
    files = linuxguest.last_of_each_file(text)
    assert len(files) == 4, files
    for name, sha in files.items():
        got = hashlib.sha256(linuxguest.read_file(disk, name)).hexdigest()
        assert got == sha, (name, got, sha)


def boot(env, name, *extra, cpus=2, net=""):
    """The agent's guest, up and reporting: (vm, its disk, its command's
    arguments after the name)."""
    linux_to_user_space_here()
    kernel, cpio, disk = linuxguest.build(env, net)
    args = [*linuxguest.args(kernel, cpio, disk, cpus=cpus), *extra]
    vm = env.start(name, *args, heartbeats=False)
    # 7-20 s where KVM is nested under multi-threaded TCG; the limit (times
    # KVMHOST_TEST_SLOWDOWN) leaves meson's 900 s room to report a hang.
    linuxguest.wait_reports(vm, 100)
    return vm, disk, args


def check_rng(vm):
    """Linux's own virtio-rng driver took the `--device rng` as its hwrng
    and read 32 bytes of it - the host's count says they came from us."""
    m = linuxguest.RNG.search(vm.console_text())
    assert m and re.fullmatch(r"virtio_rng\.\d+", m[1]) and re.fullmatch("[0-9a-f]{64}", m[2]), \
        m and m[0]
    d = vm.status()["devices"]
    assert [x["kind"] for x in d] == ["rng"] and d[0]["bytes"] >= 32 and d[0]["requests"] >= 1, d


def test_disk_and_clock_through_host_events(env):
    vm, disk, _ = boot(env, "lx", "--device", "rng")
    check_rng(vm)
    clock = {}
    past = step(vm, "boot", 0, clock)
    ctl(vm, "pause")
    time.sleep(2)
    ctl(vm, "resume")
    past = step(vm, "a 2 s pause", past, clock)
    # What kvmhost does when logind says the host is about to sleep.
    ctl(vm, "host-sleep", "prepare")
    assert vm.status()["disks"][0]["host_flushes"] >= 1
    time.sleep(2)
    ctl(vm, "host-sleep", "resume")
    past = step(vm, "host sleep", past, clock)
    snap = os.path.join(env.dir, "lx.kvmh")
    p = vm.ctl("save", snap)
    assert p.returncode == 0 and vm.wait_exit(60) == 0, (p.stderr, vm.stderr())
    before = vm.console_text()
    time.sleep(2)  # the guest is off the host a while: its clock must catch up
    vm = env.start("lx", "--restore", snap, heartbeats=False)
    past = step(vm, "a snapshot and restore", past, clock)
    sock = os.path.join(env.dir, "m.sock")
    dst = env.start("lx2", "--incoming", "unix:" + sock, wait=False)
    wait_for(lambda: os.path.exists(sock), 10 * SLOWDOWN, what="the destination")
    p = vm.ctl("migrate", "unix:" + sock, "--json", "--timeout", str(int(60 * SLOWDOWN)))
    assert p.returncode == 0, (p.stderr, vm.stderr(), dst.stderr())
    print(f"migration: {p.stdout.strip()}", flush=True)
    assert vm.wait_exit(30) == 0
    before += vm.console_text()
    dst.wait_ready(heartbeats=False)
    # The source gave the disk up, the destination holds it.
    assert dst.status()["disks"][0]["path"] == disk
    assert [x["kind"] for x in dst.status()["devices"]] == ["rng"]
    past = step(dst, "a live migration", past, clock)
    power_off(dst, disk, before)


def test_managed_save_at_host_shutdown(env):
    """The host shuts down through the real logind: kvmhost saves the guest
    mid-workload before logind may go on (its delay inhibitor), and the same
    command later continues it - passes go on, the clock is kept, and the
    disk verifies when it powers off."""
    real = with_real_logind(env)
    vm, disk, args = boot(env, "ms")
    clock = {}
    past = step(vm, "boot", 0, clock)
    wait_for(lambda: vm.status()["host_shutdown"]["inhibitor"], 10 * SLOWDOWN,
             what="logind to hold kvmhost's inhibitor")
    real.busctl("call", "PowerOff", "b", "false")
    unit, _, started_at = real.expect_start()
    assert unit == "poweroff.target"
    assert vm.wait_exit(60 * SLOWDOWN) == 0, vm.stderr()
    saved = os.path.join(env.statedir, "ms.kvmh")
    assert os.stat(saved).st_mtime_ns <= started_at  # whole before logind went on
    before = vm.console_text()
    time.sleep(2)  # the host is down a while: the guest's clock must catch up
    vm = env.start("ms", *args, heartbeats=False)
    assert "continuing from its managed save" in vm.stderr()
    past = step(vm, "a managed save at host shutdown", past, clock)
    power_off(vm, disk, before)


GUEST = "10.77.0.2"
HOST = "10.77.0.1"
NET = f"""ip link set lo up
ip link set eth0 up
ip addr add {GUEST}/24 dev eth0
# host -> guest: what arrives on port 7000, hashed; guest -> host: 1 MiB to 7001
(while :; do echo "E2E rx $(nc -l -p 7000 | sha256sum | cut -c1-64)"; done) &
(dd if=/dev/urandom of=/tx bs=64k count=16 2>/dev/null
 echo "E2E tx $(sha256sum /tx | cut -c1-64)"
 until nc {HOST} 7001 </tx; do sleep 0.5; done) &
"""


def ns_python(ns, code):
    return subprocess.Popen([*ns.prefix, "python3", "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


RECEIVE = f"""
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{HOST}", 7001)); s.listen(1); s.settimeout(300)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while n < 1 << 20:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest())
"""

SEND = f"""
import socket, sys, time
data = bytes.fromhex(sys.stdin.readline().strip())
for _ in range(600):
    try:
        s = socket.create_connection(("{GUEST}", 7000), timeout=5); break
    except OSError:
        time.sleep(0.5)
s.sendall(data); s.close(); print("sent")
"""


def answers_ping(ns, what):
    t0 = time.monotonic()
    while ns.ping(GUEST, 1, wait="0.2")[1] != 1:
        assert time.monotonic() - t0 < 1.0 * SLOWDOWN, f"no answer {what}"
    print(f"{what}: first ping answered after {time.monotonic() - t0:.2f} s", flush=True)


def test_network(env):
    linux_to_user_space_here()
    ns = NetNS(env, "lx")
    ns.bridge("br0", HOST + "/24")
    cap = ns.capture_announcements("br0")
    rx = ns_python(ns, RECEIVE)  # before the guest boots: it sends as soon as it can
    procs = [rx]
    kernel, cpio, disk = linuxguest.build(env, NET)
    vm = env.start("nx", *linuxguest.args(kernel, cpio, disk), "--net", "bridge=br0",
                   heartbeats=False, prefix=ns.prefix)
    try:
        linuxguest.wait_reports(vm, 100)
        sent, got, _ = ns.ping(GUEST, 20, interval="0.05")
        assert (sent, got) == (20, 20), (sent, got)
        # guest -> host
        print("network: booted, pinged", flush=True)
        out, err = rx.communicate(timeout=120)
        n, sha = out.split()
        tx = [ln.split()[2] for ln in vm.console_text().splitlines() if ln.startswith("E2E tx ")]
        assert int(n) == 1 << 20 and tx and tx[0] == sha, (out, err, tx)
        # host -> guest
        data = os.urandom(1 << 20)
        tx = ns_python(ns, SEND)
        procs.append(tx)
        print("network: guest -> host", flush=True)
        want = hashlib.sha256(data).hexdigest()
        out = err = None
        try:
            out, err = tx.communicate(data.hex() + "\n", timeout=120)
            wait_for(lambda: f"E2E rx {want}" in vm.console_text(), 30,
                     what="the guest to hash what we sent")
        except Exception as e:
            links = ns.run("ip", "-s", "-d", "link", "show", check=False).stdout
            tcp = ns.run("ss", "-tni", check=False).stdout
            raise AssertionError(f"host -> guest: {e!r} ({out!r}, {err!r}); device: "
                                 f"{vm.status()['nets'][0]}; links: {links}; tcp: {tcp}; "
                                 f"console ends: {vm.console_text()[-1500:]}") from e
        print("network: host -> guest", flush=True)
        # Linux's own driver took event indexes: it refilled its receive
        # buffers without a notify each time, only when kvmhost had to wait.
        dev = vm.status()["nets"][0]
        print(f"network: {dev['rx_packets']} frames in, {dev['tx_packets']} out, "
              f"{dev['notifies']} notifies ({dev['rx_kicks']} for receive buffers), "
              f"{dev['rx_waits']} waits, {dev['interrupts']} interrupts", flush=True)
        assert dev["event_idx"] and dev["rx_kicks"] <= dev["rx_waits"] + 4, dev
        assert dev["interrupts"] > 0 and dev["notifies"] > dev["rx_kicks"], dev
        # Restored and migrated, it is found again: its own driver announces it.
        path = os.path.join(env.dir, "nx.kvmh")
        assert vm.ctl("save", path).returncode == 0 and vm.wait_exit(60) == 0
        before = vm.console_text()
        t0 = time.monotonic()
        vm = env.start("nx", "--restore", path, heartbeats=False, prefix=ns.prefix)
        answers_ping(ns, "after a restore")
        wait_for(lambda: announced_since(cap, t0, GUEST), 5 * SLOWDOWN,
                 what="the guest's gratuitous ARP after the restore")
        sock = os.path.join(env.dir, "m.sock")
        dst = env.start("nx2", "--incoming", "unix:" + sock, wait=False, prefix=ns.prefix)
        wait_for(lambda: os.path.exists(sock), 10 * SLOWDOWN, what="the destination")
        t1 = time.monotonic()
        p = vm.ctl("migrate", "unix:" + sock, "--timeout", str(int(60 * SLOWDOWN)))
        assert p.returncode == 0 and vm.wait_exit(30) == 0, (p.stderr, vm.stderr())
        before += vm.console_text()
        dst.wait_ready(heartbeats=False)
        answers_ping(ns, "after a migration")
        wait_for(lambda: announced_since(cap, t1, GUEST), 5 * SLOWDOWN,
                 what="the guest's gratuitous ARP after the migration")
        print("network: announced after the migration", flush=True)
        power_off(dst, disk, before)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main([test_disk_and_clock_through_host_events, test_managed_save_at_host_shutdown,
          test_network])
