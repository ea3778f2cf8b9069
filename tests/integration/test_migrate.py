"""Live migration: `ctl NAME migrate ADDR` to `run --incoming ADDR`, judged by
what the guest itself reports on the destination (its heartbeats, clock
checks, memory check with pages rewritten while the copy runs, disk
workload), by who holds the disk's lock at every moment, and by the
source running on untouched whenever the migration fails before the
switch-over."""
import fcntl
import json
import os
import signal
import socket
import struct
import threading
import time

from diskcheck import verify_image
from kvmtest import SLOWDOWN, main, note_irqs_if_off, skip, wait_for
from migproxy import Proxy, add_cpuid_bit, set_version


def memcheck_vm(env, name, mib=128, cpus=2, dirty=2000, memory=None, *extra):
    vm = env.start(name, "--cpus", str(cpus), "--memory", str(memory or mib + 32),
                   "--guest-mode", "memcheck", "--memcheck-mib", str(mib),
                   "--memcheck-dirty", str(dirty), "--print-every", "0", *extra,
                   heartbeats=False)  # vCPU 0 beats once its memory is tagged
    wait_for(lambda: vm.status()["guest_memcheck"]["pages"] == mib * 256, 90, interval=0.1,
             what="the guest to tag its memory")
    vm.wait_ready()
    return vm


def incoming(env, name, addr, *extra):
    vm = env.start(name, "--incoming", addr, *extra, wait=False)
    if addr.startswith("unix:"):
        wait_for(lambda: os.path.exists(addr[5:]) or vm.proc.poll() is not None, 10,
                 what="the destination to listen")
    else:
        time.sleep(0.3)
    return vm


def migrate(vm, addr, *extra):
    return vm.ctl("migrate", addr, "--json", *extra)


def migrated(src, dst, addr, *extra):
    """Migrates and checks what the source says; returns its figures."""
    p = migrate(src, addr, *extra)
    assert p.returncode == 0, (p.stderr, src.stderr(), dst.stderr())
    r = json.loads(p.stdout)
    for k in ("downtime_ms", "total_ms", "bytes", "rounds"):
        assert k in r, r
    assert src.wait_exit(20) == 0, src.stderr()
    dst.wait_ready(heartbeats=False)
    return r


def check_continues(vm, before):
    """Every vCPU's own counter goes on past its value at the switch-over,
    each was told it was stopped, and no clock went backwards."""
    wait_for(lambda: all(v["guest_stopped_seen"] >= 1 for v in vm.status()["vcpus"]), 20,
             what="every vCPU to report PVCLOCK_GUEST_STOPPED")
    wait_for(lambda: all(h > b + 5 for h, b in zip(vm.heartbeats(), before)), 20,
             what="every vCPU to beat on past its count at the switch-over")
    st = vm.status()
    assert all(v["clock_backwards"] == 0 for v in st["vcpus"]), st["vcpus"]
    note_irqs_if_off(st)
    return st


def memory_intact(vm, mib, passes=1):
    wait_for(lambda: vm.status()["guest_memcheck"]["passes"] >= passes, 60, interval=0.1,
             what="the guest's memory check")
    m = vm.status()["guest_memcheck"]
    assert m["errors"] == 0 and m["checked"] == mib * 256, m


def check_after_stop(vm, mib):
    """A pause makes the guest check its memory again: a source that went on
    after a failed migration must still have all of it."""
    passes = vm.status()["guest_memcheck"]["passes"]
    assert vm.ctl("pause").returncode == 0
    assert vm.ctl("resume").returncode == 0
    memory_intact(vm, mib, passes + 1)
    assert vm.status()["state"] == "running"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unix_512m_dirtying(env):
    src = memcheck_vm(env, "m1", 448, 2, dirty=5000, memory=512)
    sock = os.path.join(env.dir, "m.sock")
    dst = incoming(env, "m2", "unix:" + sock)
    assert os.stat(sock).st_mode & 0o777 == 0o600  # as the control socket
    before = src.heartbeats()
    r = migrated(src, dst, "unix:" + sock)
    assert r["bytes"] >= 448 << 20, r
    st = check_continues(dst, before)
    assert st["state"] == "running"
    memory_intact(dst, 448)
    wait_for(lambda: dst.status()["wallclock_offset_ms"] is not None, 10, what="a wall clock")
    time.sleep(0.5)  # a report from its loop, not one begun before the stop
    assert abs(dst.status()["wallclock_offset_ms"]) < 1000, dst.status()["wallclock_offset_ms"]
    assert not os.path.exists(sock)  # the destination took its one peer
    assert dst.ctl("quit").returncode == 0 and dst.wait_exit() == 0


def test_tcp_and_zero_pages(env):
    src = memcheck_vm(env, "t1", 192, 2, 20000, 1024, "--device", "rng")
    port = free_port()
    dst = incoming(env, "t2", f"tcp:127.0.0.1:{port}")
    before = src.heartbeats()
    r = migrated(src, dst, f"tcp:127.0.0.1:{port}", "--max-downtime", "5")
    # 1 GiB of guest, 192 MiB of it used: what was never touched is not sent;
    # what is sent again is at most what the guest rewrote meanwhile (20,000
    # pages/s for as long as the copy took: longer on a slow host).
    rewritten = 20000 * 4096 * r["total_ms"] / 1000
    assert (192 << 20) <= r["bytes"] < (192 << 20) + rewritten + (16 << 20), r
    check_continues(dst, before)
    memory_intact(dst, 192)
    # Its `--device` came along in the stream's configuration.
    assert [d["kind"] for d in dst.status()["devices"]] == ["rng"]
    assert dst.ctl("quit").returncode == 0


class LockWatcher:
    """Takes the image lock as kvmhost does (the gate, an OFD lock on byte
    0, then the flock), over and over: it must never get it while the VM
    lives on either side."""

    def __init__(self, path):
        self.path, self.got, self.tries = path, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def try_once(self):
        fd = os.open(self.path, os.O_RDWR)
        try:
            lk = struct.pack("hh4xqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lk)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _run(self):
        while not self.stop.is_set():
            self.tries += 1
            self.got += self.try_once()

    def close(self):
        self.stop.set()
        self.thread.join()


def test_disk_workload_and_lock_handover(env):
    img = env.image("disk.img", 32 << 20)
    blocks = 768
    src = env.start("d1", "--disk", img, "--guest-mode", "disk", "--disk-blocks", str(blocks),
                    "--disk-flush-every", "32", "--disk-generation", "3", "--print-every", "0",
                    heartbeats=False)
    wait_for(lambda: src.status()["guest_disk"]["flushed_blocks"] >= 64, 60,
             what="the workload to be under way")
    sock = os.path.join(env.dir, "d.sock")
    dst = incoming(env, "d2", "unix:" + sock)
    watcher = LockWatcher(img)
    try:
        # Another VM is refused while the destination waits, too.
        p = env.run("run", "--console", "none", "--disk", img)
        assert p.returncode == 5 and "in use" in p.stderr, p.stderr
        migrated(src, dst, "unix:" + sock)
    finally:
        watcher.close()
    assert watcher.tries > 100 and watcher.got == 0, (watcher.tries, watcher.got)
    wait_for(lambda: dst.status()["guest_disk"]["done"], 120, interval=0.1,
             what="the workload to finish on the destination")
    g = dst.status()["guest_disk"]
    assert g["errors"] == 0 and g["verified_blocks"] == blocks, g
    assert verify_image(img, blocks, 3) == []
    p = env.run("run", "--console", "none", "--disk", img)
    assert p.returncode == 5 and "in use" in p.stderr, p.stderr
    assert dst.ctl("quit").returncode == 0 and dst.wait_exit() == 0
    w = LockWatcher.__new__(LockWatcher)
    w.path = img
    assert w.try_once()  # free once no VM has it: the watcher could have seen it


def migrate_in_background(vm, addr, *extra):
    out = {}
    t = threading.Thread(target=lambda: out.update(p=migrate(vm, addr, *extra)))
    t.start()
    return t, out


def in_precopy(vm, nbytes):
    m = vm.status().get("migration")
    return m and m.get("status") == "active" and m["bytes"] >= nbytes


def failed_but_running(env, src, t, out, needle, mib):
    t.join(60)
    p = out["p"]
    assert p.returncode != 0 and needle in p.stderr, (needle, p.stderr)
    st = src.status()
    assert st["state"] == "running" and st["migration"]["status"] == "failed", st["migration"]
    check_after_stop(src, mib)


def test_faults(env):
    mib = 128
    src = memcheck_vm(env, "f1", mib, 2, dirty=2000)
    real = os.path.join(env.dir, "real.sock")
    via = os.path.join(env.dir, "via.sock")

    # The destination killed mid-copy.
    dst = incoming(env, "f2", "unix:" + real)
    px = Proxy(via, real, rate=20 << 20)
    t, out = migrate_in_background(src, "unix:" + via)
    wait_for(lambda: in_precopy(src, 8 << 20), 30, what="the copy to be under way")
    dst.proc.send_signal(signal.SIGKILL)
    dst.proc.wait()
    failed_but_running(env, src, t, out, "migration failed", mib)
    px.close()
    assert not os.path.exists(real)

    # The connection dropped: the destination discards what came, status 7.
    dst = incoming(env, "f3", "unix:" + real)
    px = Proxy(via, real, cut_after=16 << 20)
    t, out = migrate_in_background(src, "unix:" + via)
    failed_but_running(env, src, t, out, "migration failed", mib)
    assert dst.wait_exit(30) == 7 and "nothing received is kept" in dst.stderr()
    px.close()

    # The destination refuses: another version, then a CPU it does not have.
    dst = incoming(env, "f4", "unix:" + real)
    px = Proxy(via, real, rewrite=lambda h: set_version(h, 99))
    t, out = migrate_in_background(src, "unix:" + via)
    failed_but_running(env, src, t, out, "migration version 99", mib)
    assert dst.wait_exit(30) == 7 and "version 99" in dst.stderr()
    px.close()
    for leaf, reg, bit, name in ((7, 3, 8, "avx512_vp2intersect"), (7, 1, 29, "sha_ni"),
                                 (7, 3, 4, "fsrm")):
        probe = []
        dst = incoming(env, "f5", "unix:" + real)
        px = Proxy(via, real, rewrite=lambda h: probe.append(add_cpuid_bit(h, leaf, reg, bit))
                   or (probe[-1] or h))
        t, out = migrate_in_background(src, "unix:" + via)
        t.join(60)
        px.close()
        if probe and probe[-1] is not None:
            failed_but_running(env, src, t, out, f"features this host lacks: {name}", mib)
            assert dst.wait_exit(30) == 7
            break
        # The host has it: this one migrated. Bring it back and try the next.
        assert out["p"].returncode == 0, out["p"].stderr
        src = dst
        src.wait_ready(heartbeats=False)
        name_back = "f1" if src.name != "f1" else "f1b"
        back = incoming(env, name_back, "unix:" + real)
        migrated(src, back, "unix:" + real)
        src = back
    else:
        skip("this host has every CPU feature the test knows how to add")

    # The source quits mid-migration: it ends cleanly, the destination 7.
    dst = incoming(env, "f6", "unix:" + real)
    px = Proxy(via, real, rate=10 << 20)
    t, out = migrate_in_background(src, "unix:" + via)
    wait_for(lambda: in_precopy(src, 4 << 20), 30, what="the copy to be under way")
    assert src.ctl("quit").returncode == 0
    assert src.wait_exit(20) == 0
    t.join(30)
    assert out["p"].returncode != 0
    assert dst.wait_exit(30) == 7
    px.close()
    assert not os.path.exists(real) and not os.path.exists(via)


def test_status_refusals_and_paused(env):
    mib = 64
    src = memcheck_vm(env, "s1", mib, 2, dirty=1000)
    assert src.ctl("pause").returncode == 0
    real = os.path.join(env.dir, "real.sock")
    via = os.path.join(env.dir, "via.sock")
    dst = incoming(env, "s2", "unix:" + real)
    # Slow enough that the copy is still under way when the refusals are
    # asked for (client start-up alone takes seconds in the test host).
    px = Proxy(via, real, rate=int((30 << 20) / SLOWDOWN))
    t, out = migrate_in_background(src, "unix:" + via)
    wait_for(lambda: in_precopy(src, 4 << 20), 30, what="the copy to be under way")
    m = src.status()["migration"]
    assert m["phase"] == "precopy" and m["addr"] == "unix:" + via, m
    wait_for(lambda: src.status()["migration"]["bytes"] > m["bytes"], 5, what="progress")
    p = migrate(src, "unix:" + real)
    assert p.returncode != 0 and "in flight" in p.stderr, p.stderr
    p = src.ctl("save", os.path.join(env.dir, "x.kvmh"))
    assert p.returncode != 0 and "migration is in flight" in p.stderr, p.stderr
    t.join(60)
    assert out["p"].returncode == 0, out["p"].stderr
    assert src.wait_exit(20) == 0
    px.close()
    dst.wait_ready(heartbeats=False)
    assert dst.status()["state"] == "paused"  # as its user left it
    before = dst.heartbeats()
    time.sleep(0.3)
    assert dst.heartbeats() == before
    assert dst.ctl("resume").returncode == 0
    check_continues(dst, before)
    memory_intact(dst, mib)


def test_back_and_forth_20(env):
    mib = 32
    vm = memcheck_vm(env, "pa", mib, 2, dirty=3000)
    sock = os.path.join(env.dir, "bf.sock")
    for i in range(20):
        name = "pb" if vm.name == "pa" else "pa"
        dst = incoming(env, name, "unix:" + sock)
        before = vm.heartbeats()
        migrated(vm, dst, "unix:" + sock)
        check_continues(dst, before)
        vm = dst
    memory_intact(vm, mib)  # its error count is the guest's own, over all 20
    assert vm.ctl("quit").returncode == 0


def test_cpu_features(env):
    with open("/proc/cpuinfo") as f:
        if " cx16" not in f.read():
            skip("this host's CPU has no cmpxchg16b to hide")
    vm = env.start("c1", "--cpus", "1", "--cpu-features", "-cx16")
    wait_for(lambda: vm.status()["guest_cpuid"]["leaf1_ecx"] is not None, 10, what="CPUID")
    assert not vm.status()["guest_cpuid"]["leaf1_ecx"] & (1 << 13)
    plain = env.start("c0", "--cpus", "1")
    wait_for(lambda: plain.status()["guest_cpuid"]["leaf1_ecx"] is not None, 10, what="CPUID")
    assert plain.status()["guest_cpuid"]["leaf1_ecx"] & (1 << 13)
    # The mask travels with the guest: after a migration it still has no cx16.
    sock = os.path.join(env.dir, "c.sock")
    dst = incoming(env, "c2", "unix:" + sock)
    migrated(vm, dst, "unix:" + sock)
    wait_for(lambda: dst.status()["vcpus"][0]["guest_stopped_seen"] >= 1, 10, what="a stop")
    time.sleep(0.2)  # CPUID is reported again after the stop
    assert not dst.status()["guest_cpuid"]["leaf1_ecx"] & (1 << 13)
    p = env.run("run", "--cpu-features", "-nosuchflag")
    assert p.returncode == 2 and "-nosuchflag" in p.stderr and "cx16" in p.stderr, p.stderr
    p = env.run("run", "--incoming", "unix:" + sock, "--cpus", "2")
    assert p.returncode == 2 and "come from the migration stream" in p.stderr, p.stderr
    p = env.run("run", "--incoming", "tcp:nowhere")
    assert p.returncode == 2 and "tcp:HOST:PORT" in p.stderr, p.stderr


if __name__ == "__main__":
    main([test_unix_512m_dirtying, test_tcp_and_zero_pages, test_disk_workload_and_lock_handover,
          test_faults, test_status_refusals_and_paused, test_back_and_forth_20,
          test_cpu_features])
