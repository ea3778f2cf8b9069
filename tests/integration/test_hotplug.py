"""Running VMs survive host CPUs going offline, and get their pinning back
when the CPUs return - on a real host CPU hotplug of cpu1."""
import json
import os
import socket
import subprocess
import time

from hotplug import Offline, affinity, cpu_list, online_cpus, require_hotplug, set_online
from kvmtest import IN_TESTHOST, KVMHOST, SLOWDOWN, advancing, main, skip, wait_for

CPU = 1


def vcpu_affinities(vm):
    st = vm.status()
    return [affinity(st["pid"], v["tid"]) for v in st["vcpus"]]


def test_migrate_two_vms(env):
    a = env.start("a", "--cpus", "2", "--cpu-pin", "0=1,1=0")
    b = env.start("b", "--cpus", "1", "--cpu-pin", "0=1")
    assert vcpu_affinities(a) == ["1", "0"] and vcpu_affinities(b) == ["1"]
    with Offline(CPU) as off:
        # Deliberately re-pinned to the fallback: A's other pinned CPU, B's only online CPU.
        wait_for(lambda: vcpu_affinities(a) == ["0", "0"] and vcpu_affinities(b) == ["0"], 5,
                 what="vCPUs moved off cpu1")
        for vm in (a, b):
            v0 = vm.status()["vcpus"][0]
            assert v0["displaced"] is True and v0["desired"] == [1] and v0["pinned"] == [0], v0
            assert advancing(vm), f"{vm.name} stopped while cpu1 was offline"
        t = off.online()
        # Pinning comes back within 100 ms of the CPU coming back.
        while not (vcpu_affinities(a) == ["1", "0"] and vcpu_affinities(b) == ["1"]):
            assert time.monotonic() - t < 0.1 * SLOWDOWN, (vcpu_affinities(a),
                                                          vcpu_affinities(b))
            time.sleep(0.001)
    for vm in (a, b):
        st = vm.status()
        assert all(not v["displaced"] for v in st["vcpus"]), st
        assert st["host_cpus"]["moves"] >= 1 and st["host_cpus"]["restores"] >= 1
        assert advancing(vm)
        assert all(v["clock_backwards"] == 0 for v in st["vcpus"])
    assert "moved to host CPU 0" in a.stderr() and "pinned to host CPU 1 again" in a.stderr()


def test_pause_policy(env):
    vm = env.start("dedicated", "--cpus", "2", "--cpu-pin", "0=1,1=0", "--on-cpu-offline",
                   "pause")
    with Offline(CPU) as off:
        wait_for(lambda: vm.status()["vcpus"][0]["state"] == "paused", 5,
                 what="vCPU 0 to park")
        frozen = vm.heartbeats()[0]
        for _ in range(5):
            time.sleep(0.1)
            hb = vm.heartbeats()
            assert hb[0] == frozen, "vCPU 0 ran while its only CPU was offline"
        assert advancing_one(vm, 1), "vCPU 1 (on cpu0) must keep running"
        assert vm.status()["state"] == "running"  # the VM is not user-paused
        assert vm.status()["vcpus"][0]["displaced"] is True
        off.online()
        wait_for(lambda: vm.status()["vcpus"][0]["state"] == "running", 2,
                 what="vCPU 0 to resume")
    wait_for(lambda: advancing(vm, 0.1), 5, what="both vCPUs advancing")
    assert vcpu_affinities(vm) == ["1", "0"]


def advancing_one(vm, i, interval=0.3):
    a = vm.heartbeats()[i]
    time.sleep(interval)
    return vm.heartbeats()[i] > a


def test_events_to_subscribers(env):
    vm = env.start("ev", "--cpus", "1", "--cpu-pin", "0=1")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(vm.sock)
        s.sendall(b'{"cmd":"subscribe"}\n')
        f = s.makefile("r")
        assert json.loads(f.readline())["ok"]
        with Offline(CPU) as off:
            got = []
            while "vcpu-moved" not in got:
                got.append(json.loads(f.readline())["event"])
            off.online()
            while "vcpu-restored" not in got:
                got.append(json.loads(f.readline())["event"])
    assert "host-cpu" in got, got


def test_vmm_threads_follow_vmm_cpus(env):
    vm = env.start("vmmcpus", "--cpus", "1", "--vmm-cpus", "1")
    pid = vm.proc.pid
    assert affinity(pid, pid) == "1"
    assert affinity(pid, vm.status()["vcpus"][0]["tid"]) != "1"  # vCPUs do not inherit it
    with Offline(CPU) as off:
        # Every CPU left (an earlier test may have hot-added one to the test host).
        wait_for(lambda: cpu_list(affinity(pid, pid)) == online_cpus(), 5,
                 what="the VMM thread to move")
        off.online()
        wait_for(lambda: affinity(pid, pid) == "1", 2, what="the VMM thread back on cpu1")
    assert advancing(vm)


def test_pin_to_offline_cpu_at_start(env):
    with Offline(CPU) as off:
        vm = env.start("late", "--cpus", "2", "--cpu-pin", "0=1,1=0")
        assert "host CPU 1 is offline" in vm.stderr()
        assert vcpu_affinities(vm) == ["0", "0"]
        assert vm.status()["vcpus"][0]["displaced"] is True
        assert advancing(vm)
        off.online()
        wait_for(lambda: vcpu_affinities(vm) == ["1", "0"], 2, what="the pin to apply")


def test_cpuset_gets_cpu_back(env):
    root = "/sys/fs/cgroup/cpuset"
    if not os.path.exists(f"{root}/cpuset.cpus"):
        from kvmtest import skip
        skip("no cgroup v1 cpuset hierarchy here")
    cg = f"{root}/kvmhost-test-{os.getpid()}"
    os.mkdir(cg)
    try:
        with open(f"{cg}/cpuset.cpus", "w") as f:
            f.write("0-1")
        with open(f"{root}/cpuset.mems") as f:
            mems = f.read().strip()
        with open(f"{cg}/cpuset.mems", "w") as f:
            f.write(mems)
        # The VMM starts inside the cpuset, as a libvirt-style manager would put it.
        script = f'echo $$ > {cg}/cgroup.procs && exec "$@"'
        vm = env.start("cs", "--cpus", "2", "--cpu-pin", "0=1,1=0")
        vm.kill()
        env.vms.remove(vm)
        from kvmtest import VM
        vm = VM(env, "cs", ["--cpus", "2", "--cpu-pin", "0=1,1=0"])
        vm.proc.kill()
        vm.proc.wait()
        vm.proc = subprocess.Popen(["sh", "-c", script, "sh", KVMHOST, "run", "--name", "cs",
                                    "--console", vm.console, "--cpus", "2", "--cpu-pin",
                                    "0=1,1=0"], env=env.env, stderr=vm._stderr,
                                   stdout=subprocess.DEVNULL)
        env.vms.append(vm)
        vm.wait_ready()
        assert vm.status()["host_cpus"]["cpuset"].endswith(os.path.basename(cg))
        with Offline(CPU) as off:
            wait_for(lambda: vcpu_affinities(vm) == ["0", "0"], 5, what="vCPU 0 to move")
            off.online()
            wait_for(lambda: open(f"{cg}/cpuset.cpus").read().strip() == "0-1", 2,
                     what="the cpuset to get cpu1 back")
            wait_for(lambda: vcpu_affinities(vm) == ["1", "0"], 2, what="the pin back")
        assert advancing(vm)
    finally:
        for vm in env.vms:
            vm.kill()
        with open(f"{root}/cgroup.procs", "a"):
            pass
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.05)


def test_cpu_hot_added_to_the_test_host(env):
    """A CPU the host did not have when the VM started (QMP device_add on the
    test host's QEMU): the VM can be pinned to it once it is online, and the
    pin follows it offline and back."""
    if not IN_TESTHOST:
        skip("hot-adding a CPU needs the throwaway test host (tools/testhost)")
    import testhost
    vm = env.start("hot", "--cpus", "2", "--cpu-pin", "0=1,1=0")
    new = testhost.add_cpu(testhost.relay())
    set_online(new, True)
    assert vm.ctl("pin", f"0={new}").returncode == 0
    wait_for(lambda: vcpu_affinities(vm) == [str(new), "0"], 5, what=f"vCPU 0 on cpu{new}")
    with Offline(new) as off:
        wait_for(lambda: vcpu_affinities(vm)[0] != str(new), 5, what=f"vCPU 0 off cpu{new}")
        assert vm.status()["vcpus"][0]["displaced"] is True
        assert advancing(vm)
        off.online()
        wait_for(lambda: vcpu_affinities(vm) == [str(new), "0"], 5, what="the pin back")
    st = vm.status()
    assert not st["vcpus"][0]["displaced"] and st["vcpus"][0]["desired"] == [new], st
    assert advancing(vm)
    assert all(v["clock_backwards"] == 0 for v in st["vcpus"])


if __name__ == "__main__":
    main(setup=lambda: require_hotplug(CPU), tests=[test_migrate_two_vms, test_pause_policy, test_events_to_subscribers,
          test_vmm_threads_follow_vmm_cpus, test_pin_to_offline_cpu_at_start,
          test_cpuset_gets_cpu_back, test_cpu_hot_added_to_the_test_host])
