"""virtio-blk with the built-in guest: it writes numbered, checksummed
blocks, flushes, reads them back and verifies; the host checks the image."""
import os
import signal
import subprocess

from diskcheck import verify_image
from kvmtest import main, skip, wait_for


def guest_disk(vm):
    return vm.status()["guest_disk"]


def run_workload(env, name, blocks, kib, gen, extra=()):
    img = env.image(f"{name}.img", 16 << 20)
    vm = env.start(name, "--disk", f"{img},id={name}", "--guest-mode", "disk", "--disk-blocks",
                   str(blocks), "--disk-request-kib", str(kib), "--disk-generation", str(gen),
                   "--print-every", "0", *extra, heartbeats=False)
    wait_for(lambda: guest_disk(vm)["done"], 120, interval=0.1, what="the guest's disk workload")
    return vm, img


def test_write_flush_verify_64k(env):
    vm, img = run_workload(env, "big", 512, 64, 7)  # 2 MiB in 64 KiB requests
    g = guest_disk(vm)
    assert g["errors"] == 0 and g["verified_blocks"] == 512 and g["flushed_blocks"] == 512, g
    d = vm.status()["disks"][0]
    assert d["writes"] == 32 and d["reads"] == 32 and d["flushes"] >= 1 and d["errors"] == 0, d
    assert d["id"] == "big" and d["capacity_sectors"] == 16 * 2048
    # Every request completed by interrupt: KVM_IRQ_LINE -> in-kernel IOAPIC -> the
    # guest's handler, one per request (GET_ID included).
    assert g["interrupts"] == d["reads"] + d["writes"] + d["flushes"] + 1, (g, d)
    assert "virtio-blk: 32768 sectors" in vm.console_text() and ", id big" in vm.console_text()
    vm.kill()
    assert verify_image(img, 512, 7) == []  # every block, checked from the host
    assert verify_image(img, 512, 8) == list(range(512))  # and the check can fail


def test_write_flush_verify_4k(env):
    vm, img = run_workload(env, "small", 96, 4, 3)
    g = guest_disk(vm)
    assert g["errors"] == 0 and g["verified_blocks"] == 96, g
    assert vm.status()["disks"][0]["writes"] == 96
    vm.kill()
    assert verify_image(img, 96, 3) == []


def test_kill9_after_flush(env):
    img = env.image("crash.img", 64 << 20)
    vm = env.start("crash", "--disk", img, "--guest-mode", "disk", "--disk-blocks", "8192",
                   "--disk-request-kib", "4", "--disk-flush-every", "16", "--disk-generation",
                   "11", "--print-every", "0", heartbeats=False)
    flushed = wait_for(lambda: guest_disk(vm)["flushed_blocks"] >= 48 and
                       guest_disk(vm)["flushed_blocks"], 60, interval=0.005,
                       what="guest-acknowledged flushes")
    os.kill(vm.proc.pid, signal.SIGKILL)
    vm.proc.wait()
    # Everything the guest was told is durable is in the file.
    assert verify_image(img, flushed, 11) == [], flushed
    assert flushed < 8192


def test_two_vms_one_image(env):
    img = env.image("shared.img", 16 << 20)
    env.start("first", "--disk", img)
    p = env.run("run", "--name", "second", "--disk", img, "--console", "none", timeout=10)
    assert p.returncode == 5 and "in use by another VM" in p.stderr, p
    p = env.run("run", "--name", "third", "--disk", img + ",ro", "--console", "none",
                timeout=10)
    assert p.returncode == 5 and "in use by another VM" in p.stderr, p
    assert [v["name"] for v in env.list()] == ["first"]


def test_read_only_disks_share(env):
    img = env.image("ro.img", 16 << 20)
    a = env.start("ro1", "--disk", img + ",ro")
    b = env.start("ro2", "--disk", img + ",ro")
    assert a.status()["disks"][0]["ro"] and b.status()["disks"][0]["ro"]


def test_read_only_disk_refuses_writes(env):
    img = env.image("rowrite.img", 16 << 20)
    vm = env.start("rw-on-ro", "--disk", img + ",ro", "--guest-mode", "disk", "--disk-blocks",
                   "8", "--print-every", "0", heartbeats=False)
    wait_for(lambda: guest_disk(vm)["done"], 60, interval=0.1, what="the workload")
    assert guest_disk(vm)["errors"] > 0
    assert vm.status()["disks"][0]["errors"] >= 8
    with open(img, "rb") as f:
        assert f.read(8 * 4096) == bytes(8 * 4096)  # nothing was written


def test_bad_disks(env):
    def expect(args, needle):
        p = env.run("run", "--console", "none", *args, timeout=10)
        assert p.returncode == 5, (args, p.returncode, p.stderr)
        assert needle in p.stderr, (args, p.stderr)

    expect(["--disk", os.path.join(env.dir, "missing.img")], "No such file")
    expect(["--disk", env.dir], "is a directory")
    tiny = os.path.join(env.dir, "tiny.img")
    with open(tiny, "wb") as f:
        f.write(b"x" * 100)
    expect(["--disk", tiny], "smaller than one 512-byte sector")
    p = env.run("run", "--disk", "x.img,bogus", "--console", "none")
    assert p.returncode == 2 and "unknown disk option" in p.stderr, p.stderr


def test_read_only_file_needs_ro(env):
    if os.geteuid() != 0:
        skip("needs root for chattr +i (root can write any mode-0444 file)")
    img = env.image("immutable.img", 16 << 20)
    if subprocess.run(["chattr", "+i", img], capture_output=True).returncode != 0:
        skip("chattr +i is not supported on this filesystem")
    try:
        p = env.run("run", "--disk", img, "--console", "none", timeout=10)
        assert p.returncode == 5 and "add ,ro" in p.stderr, p
        vm = env.start("immut", "--disk", img + ",ro")
        assert vm.status()["disks"][0]["ro"]
        vm.kill()
    finally:
        subprocess.run(["chattr", "-i", img])


if __name__ == "__main__":
    main([test_write_flush_verify_64k, test_write_flush_verify_4k, test_kill9_after_flush,
          test_two_vms_one_image, test_read_only_disks_share, test_read_only_disk_refuses_writes,
          test_bad_disks, test_read_only_file_needs_ro])
