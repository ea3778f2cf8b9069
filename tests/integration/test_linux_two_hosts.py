"""Live migration of a Linux guest between two test hosts: two QEMU machines,
two kernels, two KVMs, joined by a virtual wire (tools/testhost --link). The
guest runs test_linux_e2e.py's disk workload and network agent; the source
host sends it to the other over TCP on the wire. Judged by the guest's own
reports on the destination (passes go on, its clock kept), its network there
(a ping answered at once, its own gratuitous ARP, a TCP transfer verified),
who holds the disk's lock on each host, and the bytes on the disk and e2fsck
after the guest powered off through its button on the destination.

Run from outside a test host, this file boots the two (one CPU each: Linux
stalls under single-threaded TCG with two, DEVELOPERS.md) and runs itself in
each: end 2 (the destination) and end 1 (the source). The guest's kernel,
initramfs and disk are in a directory of the build both see (the checkout,
shared over 9p); the two ends pass each other files there. QEMU's 9p server
grants every lock, so a lock taken on one test host is not seen on the
other: the lock is judged on each host, as held or free there."""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types

import linuxguest
from kvmtest import IN_TESTHOST, KVMHOST, SKIP, SLOWDOWN, Skipped, main, require_root, wait_for
from testhost import testhost_command
from nettest import NetNS, announced_since
from test_linux_e2e import GUEST, HOST, NET, RECEIVE, SEND, answers_ping, ns_python, power_off, step

PORT = 4444
LINK_NET = "10.99.0."  # the wire between the test hosts: end N is .N
LINK_MAC = "52:54:00:00:99:0"  # tools/testhost's, and the end


def shared_file(name):
    return os.path.join(sys.argv[-1], name)


def publish(name, value):
    """Writes a file the other end waits for, whole or not at all."""
    tmp = shared_file(name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.rename(tmp, shared_file(name))


def read_published(name):
    with open(shared_file(name)) as f:
        return json.load(f)


def wait_published(name, timeout):
    path = shared_file(name)
    wait_for(lambda: os.path.exists(path), timeout, interval=0.2, what=f"the other end's {name}")
    return read_published(name)


def lan(env):
    """This test host's namespace: its end of the wire, addressed, and the
    guest's bridge, the same address on both hosts (the guest's gateway)."""
    end = int(os.environ["KVMHOST_TESTHOST_LINK"])
    ns = NetNS(env, "mig")
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True,
                                      check=True).stdout)
    wire = [x["ifname"] for x in links if x.get("address") == f"{LINK_MAC}{end}"]
    assert wire, f"no interface with MAC {LINK_MAC}{end}: {links}"
    subprocess.run(["ip", "link", "set", wire[0], "netns", ns.name], check=True)
    ns.address(wire[0], f"{LINK_NET}{end}/24")
    ns.bridge("br0", HOST + "/24")
    return ns


def lock_is_free(disk):
    """Whether this host could take the image's lock as kvmhost does (flock)."""
    with open(disk, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


# The two test hosts' clocks differ (each read its RTC, to the second, as it
# booted): the destination answers the time over the wire, the source asks.
CLOCK_SERVER = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{LINK_NET}2", {PORT + 1}))
while True:
    _, peer = s.recvfrom(64)
    s.sendto(repr(time.time()).encode(), peer)
"""
CLOCK_CLIENT = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
best = None
for _ in range(40):
    t0 = time.time()
    try:
        s.sendto(b"t", ("{LINK_NET}2", {PORT + 1}))
        there = float(s.recv(64))
    except OSError:
        continue
    rtt = time.time() - t0
    if best is None or rtt < best[1]:
        best = (there - (t0 + rtt / 2), rtt)
    time.sleep(0.05)
print(*best)
"""


def clock_difference(ns):
    """(the destination's clock minus ours, the round trip it was read in), s."""
    p = ns_python(ns, CLOCK_CLIENT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and out.split(), (out, err)
    delta, rtt = map(float, out.split())
    return delta, rtt


def test_source(env):
    ns = lan(env)
    g = read_published("guest.json")  # the outside put it there
    rx = ns_python(ns, RECEIVE)  # before the guest boots: it sends as soon as it can
    env.cleanups.append(rx.kill)
    vm = env.start("lx", *linuxguest.args(g["kernel"], g["cpio"], g["disk"]), "--net",
                   "bridge=br0", heartbeats=False, prefix=ns.prefix)
    linuxguest.wait_reports(vm, 100)
    clock = {}
    past = step(vm, "boot on the source", 0, clock)
    sent, got, _ = ns.ping(GUEST, 20, interval="0.05")
    assert (sent, got) == (20, 20), (sent, got)
    out, err = rx.communicate(timeout=120)
    n, sha = out.split()
    tx = [ln.split()[2] for ln in vm.console_text().splitlines() if ln.startswith("E2E tx ")]
    assert int(n) == 1 << 20 and tx and tx[0] == sha, (out, err, tx)
    print("source: the guest sent 1 MiB to the host, verified", flush=True)
    assert not lock_is_free(g["disk"]), "kvmhost does not hold the disk's lock"
    wait_published("destination.json", 120)
    delta, rtt = clock_difference(ns)
    print(f"source: the destination's clock is {delta * 1000:+.0f} ms from ours "
          f"(read in {rtt * 1000:.1f} ms)", flush=True)
    p = vm.ctl("migrate", f"tcp:{LINK_NET}2:{PORT}", "--json", "--timeout",
               str(int(120 * SLOWDOWN)))
    assert p.returncode == 0, (p.stdout, p.stderr, vm.stderr())
    print(f"migration to the other test host: {p.stdout.strip()}", flush=True)
    assert json.loads(p.stdout)["status"] == "completed", p.stdout
    assert vm.wait_exit(30) == 0, vm.stderr()
    assert lock_is_free(g["disk"]), "the source still holds the disk's lock"
    publish("source.json", {"past": past, "clock": clock, "console": vm.console_text(),
                            "delta": delta})


def test_destination(env):
    ns = lan(env)
    g = read_published("guest.json")  # the outside put it there
    cap = ns.capture_announcements("br0")
    clocks = ns_python(ns, CLOCK_SERVER)
    env.cleanups.append(clocks.kill)
    dst = env.start("lx", "--incoming", f"tcp:{LINK_NET}2:{PORT}", wait=False, prefix=ns.prefix)
    wait_for(lambda: f":{PORT} " in ns.run("ss", "-ltnH").stdout, 10,
             what="the destination to listen")
    listening = time.monotonic()  # the guest was never on this host before
    publish("destination.json", {"listening": f"{LINK_NET}2:{PORT}"})
    source = wait_published("source.json", 240)
    dst.wait_ready(heartbeats=False)
    answers_ping(ns, "after a live migration to this host")
    wait_for(lambda: announced_since(cap, listening, GUEST), 5,
             what="the guest's gratuitous ARP on this host")
    st = dst.status()
    assert st["disks"][0]["path"] == g["disk"], st["disks"]
    assert not lock_is_free(g["disk"]), "the destination does not hold the disk's lock"
    print(f"destination: our clock is {source['delta'] * 1000:+.0f} ms from the source's; "
          "the guest's offset from ours must be what it was from the source's", flush=True)
    step(dst, "a live migration to another host", source["past"], source["clock"])
    data = os.urandom(1 << 20)
    tx = ns_python(ns, SEND)
    env.cleanups.append(tx.kill)
    tx.communicate(data.hex() + "\n", timeout=120)
    want = hashlib.sha256(data).hexdigest()
    wait_for(lambda: f"E2E rx {want}" in dst.console_text(), 30,
             what="the guest to hash 1 MiB sent from this host")
    print("destination: the host sent 1 MiB to the guest, verified", flush=True)
    power_off(dst, g["disk"], source["console"])


def start_end(shared, wire, end, role):
    cmd, console = testhost_command(
        __file__, f"two-hosts-{end}", "--cpus", "1", "--memory", "2048", "--timeout", "1500",
        "--link", f"{wire}:{end}", args=[role, shared])
    out = open(os.path.join(shared, f"end{end}.out"), "w+")
    print(f"end {end} ({role}) in a test host, console: {console}", flush=True)
    return end, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out


def wait_ends(procs):
    """Exit statuses by end; once one end fails, the other (waiting for it)
    is given a minute to say so, then stopped."""
    failed_at = None
    while any(p.poll() is None for _, p, _ in procs):
        if failed_at is None and any(p.poll() not in (None, 0) for _, p, _ in procs):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > 60:
            break
        time.sleep(1)
    return {end: p.poll() for end, p, _ in procs}


def run_both_ends():
    """Outside: the guest's files in the build, then the two test hosts."""
    build = os.path.dirname(os.path.abspath(KVMHOST))
    shared = tempfile.mkdtemp(prefix="two-hosts.", dir=build)  # in the checkout: 9p
    wire = tempfile.mkdtemp(prefix="kvmhost-wire.")
    procs, rcs = [], {}
    try:
        require_root()
        kernel, cpio, disk = linuxguest.build(types.SimpleNamespace(dir=shared), NET)
        with open(os.path.join(shared, "guest.json"), "w") as f:
            json.dump({"kernel": kernel, "cpio": cpio, "disk": disk}, f)
        procs.append(start_end(shared, wire, 2, "test_destination"))
        procs.append(start_end(shared, wire, 1, "test_source"))
        rcs = wait_ends(procs)
    except Skipped as e:
        print(f"SKIP: {e}")
        rcs = {0: SKIP}
    finally:
        for end, p, out in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
            out.seek(0)
            print(f"=== end {end}:\n{out.read()}", flush=True)
            out.close()
        shutil.rmtree(shared, ignore_errors=True)
        shutil.rmtree(wire, ignore_errors=True)
    print(f"exit statuses: {rcs}")
    sys.exit(0 if set(rcs.values()) == {0} else SKIP if set(rcs.values()) == {SKIP} else 1)


if __name__ == "__main__":
    if not IN_TESTHOST:
        run_both_ends()
    main([test_source, test_destination])
