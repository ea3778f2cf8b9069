"""Running VMs survive a real suspend to RAM of their host. The host is the
throwaway test host (tools/testhost --suspendable: its root on virtio-blk,
which can sleep, where 9p cannot); it sleeps for real - `echo mem >
/sys/power/state`, woken by QEMU's system_wakeup - directly, in the kernel's
pm_test=core mode, and through the real systemd-logind. Every VM comes back
with its time, pinning, pause and disk data intact.

Run from outside a test host, this file boots one and runs itself inside it
(so it runs natively, never in the shared test hosts of the `kvm` suite)."""
import time

from diskcheck import verify_image
from kvmtest import IN_TESTHOST, SLOWDOWN, advancing, main, note_irqs_if_off, wait_for
from hotplug import affinity
from reallogind import sleep_why, sleep_why_logged, with_real_logind
from testhost import (relay, require_suspendable, rerun_in_a_suspendable_test_host, suspend_to_ram,
                      wake_when_asleep)

PINNED_CPU = 1
DISK_BLOCKS = 4096
ASLEEP_S = 3.0
# The test host's kernel measures a sleep with its CMOS clock, which counts
# whole seconds: what it adds to CLOCK_BOOTTIME may be up to 1 s short.
SLEPT_AT_LEAST_S = ASLEEP_S - 1


def boottime():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def start_disk_workload(env, name, gen):
    img = env.image(f"{name}.img", 32 << 20)
    vm = env.start(name, "--cpus", "2", "--disk", img, "--guest-mode", "disk", "--disk-blocks",
                   str(DISK_BLOCKS), "--disk-request-kib", "4", "--disk-flush-every", "64",
                   "--disk-generation", str(gen), "--print-every", "0", heartbeats=False)
    return vm, img


def check_disk_workload(vm, img, gen):
    """The workload ends with every block written, flushed and read back
    intact - by the guest, and again from the host."""
    wait_for(lambda: vm.status()["guest_disk"]["done"], 300, interval=0.2,
             what=f"{vm.name}'s disk workload")
    g = vm.status()["guest_disk"]
    assert g["errors"] == 0 and g["verified_blocks"] == DISK_BLOCKS, g
    assert vm.status()["disks"][0]["errors"] == 0
    vm.kill()
    assert verify_image(img, DISK_BLOCKS, gen) == []


def check_time(vm, wall=True):
    """The guest's own reports: its clock never ran backwards, and its wall
    clock (boot wall clock + kvmclock) is within 1 s of the host's (a disk
    workload reports no wall clock)."""
    st = vm.status()
    assert all(v["clock_backwards"] == 0 for v in st["vcpus"]), st["vcpus"]
    note_irqs_if_off(st)  # single-threaded TCG's double delivery (see below)
    if not wall:
        return
    off = st["wallclock_offset_ms"]
    assert off is not None and abs(off) < 1000, off


def test_suspend_to_ram(env):
    """echo mem, then the kernel's pm_test=core: a disk workload, a
    user-paused VM and a VM pinned to CPU 1 all come through."""
    require_suspendable()
    disky, img = start_disk_workload(env, "disky", 11)
    paused = env.start("paused", "--cpus", "1")
    pinned = env.start("pinned", "--cpus", "1", "--cpu-pin", f"0={PINNED_CPU}")
    assert paused.ctl("pause").returncode == 0
    tid = pinned.status()["vcpus"][0]["tid"]
    assert affinity(pinned.status()["pid"], tid) == str(PINNED_CPU)
    frozen = paused.heartbeats()
    for pm_test in (None, "core"):
        before = boottime()
        suspend_to_ram(relay(), ASLEEP_S, pm_test)
        slept = boottime() - before
        if pm_test is None:
            assert slept >= SLEPT_AT_LEAST_S, slept
        with open("/sys/devices/system/cpu/cpu1/online") as f:
            assert f.read().strip() == "1"
        # kvmhost noticed the sleep after the fact (no logind here).
        for vm in (pinned, disky):
            wait_for(lambda: vm.status()["host_sleep"]["sleeps"] >= 1, 10,
                     what=f"{vm.name} to notice the sleep")
        wait_for(lambda: advancing(pinned, 0.2), 10, what="the pinned VM to run")
        assert affinity(pinned.status()["pid"], tid) == str(PINNED_CPU)
        assert not pinned.status()["vcpus"][0]["displaced"]
        check_time(pinned)
        check_time(disky, wall=False)
        assert paused.status()["state"] == "paused" and paused.heartbeats() == frozen
    assert "host wake noticed after the fact" in pinned.stderr()
    check_disk_workload(disky, img, 11)
    assert paused.ctl("resume").returncode == 0
    wait_for(lambda: advancing(paused, 0.2), 10, what="the paused VM to run once resumed")


def test_suspend_through_the_real_logind(env):
    """logind's Suspend -> kvmhost quiesces and releases its inhibitor ->
    the stub systemd's StartUnit(suspend.target) does the real echo mem ->
    wake -> PrepareForSleep(false) -> the VMs go on. Ten times."""
    require_suspendable()
    real = with_real_logind(env, suspend_cmd="echo mem > /sys/power/state")
    disky, img = start_disk_workload(env, "chained", 12)
    beat = env.start("beat", "--cpus", "2", "--cpu-pin", f"1={PINNED_CPU}")
    wanted = sorted(sleep_why(n) for n in ("chained", "beat"))
    for cycle in range(1, 11):
        wait_for(lambda: real.sleep_inhibitors() == wanted, 10,
                 what=f"both inhibitors (cycle {cycle})")
        wake_when_asleep(relay(), ASLEEP_S)
        real.busctl("call", "Suspend", "b", "false")
        assert real.expect_prepare()[:2] == ("PrepareForSleep", True)
        assert real.expect_start()[0] == "suspend.target"
        assert real.expect_suspended(120 * SLOWDOWN) == 0, f"echo mem failed (cycle {cycle})"
        assert relay().qmp("query-status")["status"] == "running"
        assert real.expect_prepare()[:2] == ("PrepareForSleep", False)
        for vm in (disky, beat):
            wait_for(lambda: vm.status()["state"] == "running" and
                     vm.status()["host_sleep"]["sleeps"] == cycle, 10,
                     what=f"{vm.name} to wake (cycle {cycle})")
            last = vm.status()["host_sleep"]["last"]
            assert last["slept_s"] >= SLEPT_AT_LEAST_S, last
            check_time(vm, wall=vm is beat)
        assert disky.status()["guest_disk"]["errors"] == 0
        assert wait_for(lambda: advancing(beat, 0.2), 10, what="heartbeats after the wake")
        assert affinity(beat.status()["pid"], beat.status()["vcpus"][1]["tid"]) == \
            str(PINNED_CPU)
    real.released_before_start(("chained", "beat"), sleep_why_logged)
    assert disky.status()["disks"][0]["host_flushes"] == 10
    check_disk_workload(disky, img, 12)


if __name__ == "__main__":
    if not IN_TESTHOST:
        # Single-threaded TCG: with multi-threaded TCG a built-in guest was
        # seen triple-faulting after a real S3 (once, 2026-12-05, not yet
        # understood); single-threaded it passed every run, but with two CPUs
        # it delivers an interrupt twice now and then (DEVELOPERS.md), so
        # check_time cannot require guest_irqs_if_off to be 0 here.
        rerun_in_a_suspendable_test_host(__file__, "suspend")
    main([test_suspend_to_ram, test_suspend_through_the_real_logind])
