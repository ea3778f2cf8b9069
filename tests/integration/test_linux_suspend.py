"""A Linux guest through a real suspend to RAM of its host: the test host
really sleeps (echo mem, woken by QEMU's system_wakeup), then goes through the
kernel's pm_test=core, with the guest's disk workload running; its passes go
on, its clock is kept, its disk verifies (test_linux_e2e.py's guest).

Run from outside a test host, this file boots one that can sleep, with one
CPU (single-threaded TCG with two delivers interrupts twice and stalls Linux:
DEVELOPERS.md), and runs itself inside it."""
from kvmtest import IN_TESTHOST, SLOWDOWN, main, wait_for
from test_linux_e2e import boot, power_off, step
from testhost import relay, require_suspendable, rerun_in_a_suspendable_test_host, suspend_to_ram


def test_real_suspend_to_ram(env):
    require_suspendable()
    vm, disk, _ = boot(env, "s3")
    clock = {}
    past = step(vm, "boot", 0, clock)
    for n, pm_test in enumerate((None, "core"), 1):
        suspend_to_ram(relay(), 3.0, pm_test)
        wait_for(lambda: vm.status()["host_sleep"]["sleeps"] >= n, 10 * SLOWDOWN,
                 what="kvmhost to notice the sleep")
        past = step(vm, f"a real suspend (pm_test={pm_test or 'none'})", past, clock)
    power_off(vm, disk)


if __name__ == "__main__":
    if not IN_TESTHOST:
        rerun_in_a_suspendable_test_host(__file__, "linux-suspend", cpus=1)
    main([test_real_suspend_to_ram])
