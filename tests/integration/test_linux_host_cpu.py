"""A Linux guest with 4 vCPUs across a host CPU going offline and coming back
(test_linux_e2e.py's guest and judgement): vCPUs 1 and 3 are pinned to host
CPU 1; while it is offline kvmhost moves them to CPU 0, when it is back it
pins them there again, and the guest's disk workload goes on throughout with
its clock kept, its disk clean and verified after its own power-off.

It needs a second host CPU. Where this machine has no KVM, this file boots a
test host of its own with two CPUs on multi-threaded TCG and runs itself
inside: single-threaded TCG with a second CPU delivers interrupts twice and
stalls Linux, which is why the other Linux tests run in a one-CPU test host
(DEVELOPERS.md). Multi-threaded TCG now and then panics the test host's own
kernel (QEMU's guests too): a run that ends that way, and only that way, is
run once more."""
from hotplug import Offline, affinity, require_hotplug
from kvmtest import IN_TESTHOST, SINGLE_TCG, SLOWDOWN, main, skip, wait_for
from test_linux_e2e import boot, power_off, step
from testhost import native_kvm, rerun_in_a_test_host


def test_host_cpu_offline_with_4_vcpus(env):
    """vCPUs 1 and 3 pinned to host CPU 1, which goes offline and comes back."""
    if SINGLE_TCG:
        skip("a Linux guest across a host CPU going offline needs a second test-host CPU, "
             "which single-threaded TCG makes stall Linux (DEVELOPERS.md): run this file "
             "from outside a test host, or with tools/testhost --tcg-threads multi")
    require_hotplug(1)
    vm, disk, _ = boot(env, "hp", "--cpu-pin", "0=0,1=1,2=0,3=1", cpus=4)
    clock = {}
    past = step(vm, "boot", 0, clock)

    def pins():
        st = vm.status()
        return [affinity(vm.proc.pid, v["tid"]) for v in st["vcpus"]]
    assert pins() == ["0", "1", "0", "1"]
    with Offline(1) as off:
        wait_for(lambda: pins() == ["0", "0", "0", "0"], 10 * SLOWDOWN,
                 what="vCPUs 1 and 3 off host CPU 1")
        past = step(vm, "host CPU 1 offline", past, clock)
        off.online()
    wait_for(lambda: pins() == ["0", "1", "0", "1"], 10 * SLOWDOWN, what="the pins back")
    past = step(vm, "host CPU 1 back", past, clock)
    power_off(vm, disk)


if __name__ == "__main__":
    if not IN_TESTHOST and not native_kvm():
        rerun_in_a_test_host(__file__, "linux-host-cpu", "--cpus", "2", tcg="multi",
                             host_deaths_allowed=1)
    main([test_host_cpu_offline_with_4_vcpus])
