"""Snapshots: `ctl NAME save FILE` and `run --restore FILE`, judged by what
the guest itself reports after the restore (its own heartbeat counters, its
clock checks, its wall clock, its memory check, its disk workload), and every
kind of unusable file refused with exit status 7."""
import os
import signal
import struct
import threading
import time
import zlib

from diskcheck import verify_image
from hotplug import Offline, affinity, require_hotplug
from kvmtest import main, skip, wait_for

HEADER = struct.Struct("<8sIIIIQQQ48sII")  # struct snap_header
SECTION = struct.Struct("<IIQQII")  # struct snap_section
SNAP_VCPU = 4


def status(vm):
    return vm.status()


def memcheck_vm(env, name, mib=256, cpus=2, *extra):
    # vCPU 0 tags all of its memory before its first heartbeat: in a loaded
    # test host that once took over start()'s 15 s (x5), so the heartbeats
    # are awaited only once the memory is tagged.
    vm = env.start(name, "--cpus", str(cpus), "--memory", str(mib + 32), "--guest-mode",
                   "memcheck", "--memcheck-mib", str(mib), "--print-every", "0", *extra,
                   heartbeats=False)
    wait_for(lambda: status(vm)["guest_memcheck"]["pages"] == mib * 256, 60, interval=0.1,
             what="the guest to tag its memory")
    vm.wait_ready()
    return vm


def save(vm, path, *extra):
    p = vm.ctl("save", path, *extra)
    assert p.returncode == 0, p.stderr
    return p


def restored(env, name, path, *extra):
    return env.start(name, "--restore", path, *extra)


def check_continues(vm, before):
    """The guest goes on from where it was: every vCPU's own counter past its
    saved value, told it was stopped, its clock never backwards."""
    wait_for(lambda: all(v["guest_stopped_seen"] >= 1 and v["exits"] > 0
                         for v in status(vm)["vcpus"]), 20,
             what="every vCPU to run and report PVCLOCK_GUEST_STOPPED")
    wait_for(lambda: all(h > b + 5 for h, b in zip(vm.heartbeats(), before)), 20,
             what="every vCPU to beat on past its saved count")
    st = status(vm)
    for v in st["vcpus"]:
        assert v["clock_backwards"] == 0, st["vcpus"]
    return st


def devices(vm):
    return [(d["kind"], d["base"], d["gsi"]) for d in status(vm)["devices"]]


def test_save_restore_memory_and_clock(env):
    # With a `--device` (virtio-rng) too: the restored VM has it where it was.
    vm = memcheck_vm(env, "snap", 256, 2, "--device", "rng")
    assert devices(vm) == [("rng", 0xd000c000, 20)]
    path = os.path.join(env.dir, "snap.kvmh")
    before = vm.heartbeats()
    save(vm, path)
    assert vm.wait_exit(20) == 0  # the VM ends once the file is complete
    assert os.path.exists(path) and not os.path.exists(path + ".tmp")
    # Sparse: the file holds what the guest touched (256 MiB), not all 288 MiB.
    used = os.stat(path).st_blocks * 512
    assert used <= (256 + 16) << 20, used
    time.sleep(3)  # time spent saved: the guest's clock must move on by it
    vm2 = restored(env, "snap", path)
    assert devices(vm2) == [("rng", 0xd000c000, 20)]
    st = check_continues(vm2, before)
    assert st["vcpus"][0]["heartbeats"] >= before[0]
    wait_for(lambda: status(vm2)["guest_memcheck"]["passes"] >= 1, 30, what="the memory check")
    m = status(vm2)["guest_memcheck"]
    assert m["errors"] == 0 and m["checked"] == 256 * 256, m
    wait_for(lambda: status(vm2)["wallclock_offset_ms"] is not None, 10, what="a wall clock")
    time.sleep(0.5)
    off = status(vm2)["wallclock_offset_ms"]
    assert abs(off) < 1000, off  # the 3 s saved are not lost
    assert vm2.ctl("quit").returncode == 0


def test_keep_running_twice_and_repinned(env):
    vm = env.start("twice", "--cpus", "2")
    a = os.path.join(env.dir, "a.kvmh")
    save(vm, a, "--keep-running")
    time.sleep(0.3)
    assert vm.proc.poll() is None and status(vm)["state"] == "running"
    b0 = vm.heartbeats()
    wait_for(lambda: all(x > y for x, y in zip(vm.heartbeats(), b0)), 10, what="it to go on")
    before = vm.heartbeats()
    save(vm, a)  # the same file again: replaced whole
    assert vm.wait_exit(20) == 0
    # Restore with other pinning, save it again, restore that.
    vm2 = restored(env, "twice", a, "--cpu-pin", "0=1,1=0")
    check_continues(vm2, before)
    tids = [v["tid"] for v in status(vm2)["vcpus"]]
    assert [affinity(vm2.proc.pid, t) for t in tids] == ["1", "0"]
    b = os.path.join(env.dir, "b.kvmh")
    before = vm2.heartbeats()
    save(vm2, b)
    assert vm2.wait_exit(20) == 0
    vm3 = restored(env, "twice", b)
    check_continues(vm3, before)
    # A restored VM is a VM: host-sleep prepare/resume, pause/resume.
    assert vm3.ctl("host-sleep", "prepare").returncode == 0
    assert status(vm3)["state"] == "host-sleep"
    assert vm3.ctl("host-sleep", "resume").returncode == 0
    assert vm3.ctl("pause").returncode == 0 and status(vm3)["state"] == "paused"
    c = os.path.join(env.dir, "c.kvmh")
    save(vm3, c)  # saved while paused by its user: comes back paused
    assert vm3.wait_exit(20) == 0
    vm4 = restored(env, "twice", c)
    assert status(vm4)["state"] == "paused"
    assert vm4.ctl("resume").returncode == 0
    check_continues(vm4, vm4.heartbeats())


def test_restore_while_cpu_offline(env):
    require_hotplug(1)
    vm = env.start("off", "--cpus", "2", "--cpu-pin", "0=0,1=1")
    path = os.path.join(env.dir, "off.kvmh")
    before = vm.heartbeats()
    save(vm, path)
    assert vm.wait_exit(20) == 0
    with Offline(1):
        vm2 = restored(env, "off", path, "--cpu-pin", "0=0,1=1")
        st = check_continues(vm2, before)
        assert st["vcpus"][1]["displaced"], st["vcpus"][1]
    wait_for(lambda: not status(vm2)["vcpus"][1]["displaced"], 10, what="vCPU 1 back on cpu1")


def test_disk_workload_across_restore(env):
    img = env.image("disk.img", 32 << 20)
    blocks = 768  # the guest checksums every block in emulated ring 0: ~6 ms each here
    vm = env.start("disk", "--disk", img, "--guest-mode", "disk", "--disk-blocks", str(blocks),
                   "--disk-flush-every", "32", "--disk-generation", "5", "--print-every", "0",
                   heartbeats=False)
    wait_for(lambda: status(vm)["guest_disk"]["flushed_blocks"] >= 64, 60, interval=0.02,
             what="the workload to be under way")
    path = os.path.join(env.dir, "disk.kvmh")
    save(vm, path)
    assert vm.wait_exit(20) == 0
    vm2 = env.start("disk", "--restore", path, heartbeats=False)
    wait_for(lambda: status(vm2)["guest_disk"]["done"], 120, interval=0.1,
             what="the workload to finish after the restore")
    g = status(vm2)["guest_disk"]
    assert g["errors"] == 0 and g["verified_blocks"] == blocks, g
    assert verify_image(img, blocks, 5) == []
    # The image is locked by the restored VM, as by the one that saved it.
    p = env.run("run", "--console", "none", "--disk", img)
    assert p.returncode == 5 and "in use" in p.stderr, p.stderr


def restore_fails(env, path, needle, *extra):
    p = env.run("run", "--console", "none", "--restore", path, *extra, timeout=60)
    assert p.returncode == 7, (needle, p.returncode, p.stderr)
    assert needle in p.stderr, (needle, p.stderr)
    assert "Sanitizer" not in p.stderr


def parse(data):
    h = HEADER.unpack_from(data, 0)
    nr = h[3]
    table = [SECTION.unpack_from(data, HEADER.size + i * SECTION.size) for i in range(nr)]
    return h, table


def reseal(data):
    """Recomputes every section's, the table's and the header's CRC."""
    h, table = parse(data)
    out = bytearray(data)
    for i, s in enumerate(table):
        crc = zlib.crc32(bytes(out[s[2]:s[2] + s[3]]))
        SECTION.pack_into(out, HEADER.size + i * SECTION.size, *s[:4], crc, s[5])
    tcrc = zlib.crc32(bytes(out[HEADER.size:HEADER.size + len(table) * SECTION.size]))
    h = list(HEADER.unpack_from(out, 0))
    h[4], h[-1] = tcrc, 0
    HEADER.pack_into(out, 0, *h)
    h[-1] = zlib.crc32(bytes(out[:HEADER.size]))
    HEADER.pack_into(out, 0, *h)
    return bytes(out)


def test_bad_files(env):
    img = env.image("d.img", 1 << 20)
    vm = env.start("good", "--disk", img)
    good = os.path.join(env.dir, "good.kvmh")
    save(vm, good)
    assert vm.wait_exit(20) == 0
    with open(good, "rb") as f:
        data = f.read()
    h, table = parse(data)
    bad = os.path.join(env.dir, "bad.kvmh")

    meta = data[:h[5]]  # everything before the memory image

    def write(blob, size=None):
        """The file's sections from blob, its memory image a hole: these
        files are refused before the memory is looked at, and a hole keeps
        hundreds of them cheap."""
        with open(bad, "wb") as f:
            f.write(blob[:h[5]])
            f.truncate(len(data) if size is None else size)

    # Truncated at every section boundary, in the middle of each, in the memory image.
    cuts = {0, 50, HEADER.size, HEADER.size + 10, h[5], h[5] + 4096, len(data) - 1}
    for s in table:
        cuts |= {s[2], s[2] + s[3] // 2, s[2] + s[3]}
    for cut in sorted(c for c in cuts if c < len(data)):
        write(data[:cut], cut)
        restore_fails(env, bad, "truncated" if cut >= 4 * 1024 or cut >= h[5] or cut < HEADER.size
                      else "")
    # Every byte of the header and the section table flipped.
    for i in range(HEADER.size + len(table) * SECTION.size):
        flipped = bytearray(meta)
        flipped[i] ^= 0xff
        write(bytes(flipped))
        restore_fails(env, bad, "")
    # A section's byte changed: its checksum says so, and where.
    s = table[2]
    flipped = bytearray(meta)
    flipped[s[2] + s[3] // 2] ^= 1
    write(bytes(flipped))
    restore_fails(env, bad, f"section 2 (devices) at offset {s[2]}: checksum mismatch")
    # Not a snapshot; a newer format.
    write(b"\x7fELF" + bytes(8192), 8196)
    restore_fails(env, bad, "not a kvmhost snapshot")
    newer = bytearray(meta)
    struct.pack_into("<I", newer, 8, 2)
    write(reseal(bytes(newer)))
    restore_fails(env, bad, "made by a newer kvmhost")
    # The disk changed size, or is gone.
    with open(img, "ab") as f:
        f.truncate(2 << 20)
    restore_fails(env, good, "changed size")
    os.rename(img, img + ".moved")
    restore_fails(env, good, "is missing")
    os.rename(img + ".moved", img)
    with open(img, "r+b") as f:
        f.truncate(1 << 20)
    # Guest-visible options conflict with the snapshot: usage error.
    p = env.run("run", "--console", "none", "--restore", good, "--cpus", "4")
    assert p.returncode == 2 and "come from the snapshot" in p.stderr, p.stderr
    p = env.run("run", "--console", "none", "--restore", good, "--on-reboot", "restart")
    assert p.returncode == 2 and "cannot boot afresh" in p.stderr, p.stderr
    # And after all that, the good file still restores.
    vm2 = env.start("good", "--restore", good)
    assert vm2.ctl("quit").returncode == 0


def test_cpu_features_checked(env):
    vm = env.start("cpu", "--cpus", "1")
    good = os.path.join(env.dir, "cpu.kvmh")
    save(vm, good)
    assert vm.wait_exit(20) == 0
    with open(good, "rb") as f:
        data = bytearray(f.read())
    h, table = parse(data)
    s = next(s for s in table if s[0] == SNAP_VCPU and s[1] == 0)
    off = s[2] + 12  # parts, tag 0, length: then struct kvm_cpuid2
    nent = struct.unpack_from("<I", data, off)[0]
    names = {(7, 3, 8): "avx512_vp2intersect", (7, 1, 29): "sha_ni", (7, 3, 4): "fsrm",
             (7, 1, 16): "avx512f", (1, 2, 25): "aes"}
    for e in range(nent):
        base = off + 8 + e * 40
        fn, idx = struct.unpack_from("<II", data, base)
        for (leaf, reg, bit), name in names.items():
            if fn != leaf or (leaf == 7 and idx != 0):
                continue
            pos = base + 12 + reg * 4
            val = struct.unpack_from("<I", data, pos)[0]
            if not val & (1 << bit):
                struct.pack_into("<I", data, pos, val | (1 << bit))
                bad = os.path.join(env.dir, "bad.kvmh")
                with open(bad, "wb") as f:
                    f.write(reseal(bytes(data)))
                restore_fails(env, bad, f"features this host lacks: {name}")
                return
    skip("this host has every feature the test knows how to add")


def cpuid_entries(data):
    """{(function, index): offset of eax} of vCPU 0's saved CPUID."""
    h, table = parse(data)
    s = next(s for s in table if s[0] == SNAP_VCPU and s[1] == 0)
    off = s[2] + 12  # parts, tag 0, length: then struct kvm_cpuid2
    nent = struct.unpack_from("<I", data, off)[0]
    return {struct.unpack_from("<II", data, off + 8 + e * 40): off + 8 + e * 40 + 12
            for e in range(nent)}


def with_cpuid_of(data, other):
    """`data` with every CPUID entry's registers taken from snapshot `other`'s
    (zero where `other` has no such leaf): same layout, another CPU."""
    mine, theirs = cpuid_entries(data), cpuid_entries(other)
    for key, pos in mine.items():
        regs = other[theirs[key]:theirs[key] + 16] if key in theirs else bytes(16)
        data[pos:pos + 16] = regs
    return data


def test_previous_round_snapshot_still_restores(env):
    """fuzz/corpus/snapshot-1vcpu.bin holds the sections of a snapshot made
    by the round before this one (config, test device and transport in their
    older versions). With its memory image left zero, the restore itself is
    accepted - the guest then has no code and triple-faults (10) - where an
    unreadable file would be refused (7)."""
    corpus = os.path.join(os.path.dirname(__file__), "..", "..", "fuzz", "corpus")
    with open(os.path.join(corpus, "snapshot-1vcpu.bin"), "rb") as f:
        data = f.read()
    h = HEADER.unpack_from(data, 0)
    # It was saved on a host with AVX-512 and more: give its vCPU this host's
    # CPUID (from a snapshot made here), so what is tested is the format.
    vm = env.start("cpuid", "--cpus", "1")
    here = os.path.join(env.dir, "here.kvmh")
    save(vm, here)
    assert vm.wait_exit(20) == 0
    with open(here, "rb") as f:
        data = reseal(with_cpuid_of(bytearray(data[:h[5]]), f.read()))
    path = os.path.join(env.dir, "old.kvmh")
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(h[5] + h[6])
    p = env.run("run", "--console", "none", "--restore", path, timeout=60)
    assert p.returncode == 10 and "triple fault" in p.stderr, (p.returncode, p.stderr[-500:])


def test_kill9_during_save(env):
    for delay in (0.05, 0.3, 0.6, 2.0):
        vm = memcheck_vm(env, f"k{int(delay * 100)}", 128, 1)
        path = os.path.join(env.dir, f"k{int(delay * 100)}.kvmh")
        t = threading.Thread(target=lambda: vm.ctl("save", path))
        t.start()
        time.sleep(delay)
        vm.proc.send_signal(signal.SIGKILL)
        vm.proc.wait()
        t.join()
        if os.path.exists(path):  # complete, or not there at all
            vm2 = restored(env, f"k{int(delay * 100)}", path)
            assert vm2.ctl("quit").returncode == 0
        else:
            p = env.run("run", "--console", "none", "--restore", path)
            assert p.returncode == 7


if __name__ == "__main__":
    main([test_save_restore_memory_and_clock, test_keep_running_twice_and_repinned,
          test_restore_while_cpu_offline, test_disk_workload_across_restore, test_bad_files,
          test_cpu_features_checked, test_previous_round_snapshot_still_restores,
          test_kill9_during_save])
