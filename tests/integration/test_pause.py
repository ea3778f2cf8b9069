"""Pause parks every vCPU: heartbeats stop for the whole pause; resume brings
them back, and the guest reports it saw PVCLOCK_GUEST_STOPPED."""
import time

from kvmtest import advancing, main, wait_for


def test_pause_resume(env):
    vm = env.start("p", "--cpus", "4", "--heartbeat-us", "2000")
    r = vm.ctl("pause")
    assert r.returncode == 0 and "paused" in r.stdout, r
    st = vm.status()
    assert st["state"] == "paused"
    assert all(v["state"] == "paused" for v in st["vcpus"])
    frozen = [v["heartbeats"] for v in st["vcpus"]]
    # Sample through the whole pause: not a single heartbeat may land.
    for _ in range(10):
        time.sleep(0.1)
        assert vm.heartbeats() == frozen
    assert vm.ctl("resume").returncode == 0
    st = vm.status()
    assert st["state"] == "running"
    assert wait_for(lambda: advancing(vm, 0.2), 5, what="heartbeats after resume")
    # KVMCLOCK_CTRL at the pause: each vCPU's guest saw GUEST_STOPPED once.
    wait_for(lambda: all(v["guest_stopped_seen"] >= 1 for v in vm.status()["vcpus"]), 5,
             what="every vCPU to report PVCLOCK_GUEST_STOPPED")
    assert all(v["clock_backwards"] == 0 for v in vm.status()["vcpus"])


def test_pause_twice_resume_twice(env):
    vm = env.start("pp", "--cpus", "2")
    assert vm.request({"cmd": "pause"})["result"]["state"] == "paused"
    assert vm.request({"cmd": "pause"})["result"]["state"] == "paused"
    frozen = vm.heartbeats()
    time.sleep(0.2)
    assert vm.heartbeats() == frozen
    assert vm.request({"cmd": "resume"})["result"]["state"] == "running"
    assert vm.request({"cmd": "resume"})["result"]["state"] == "running"
    assert advancing(vm)


def test_many_pause_cycles(env):
    vm = env.start("cyc", "--cpus", "4", "--heartbeat-us", "1000")
    for _ in range(30):
        vm.request({"cmd": "pause"})
        a = vm.heartbeats()
        b = vm.heartbeats()
        assert a == b
        vm.request({"cmd": "resume"})
    assert wait_for(lambda: advancing(vm, 0.1), 5, what="heartbeats after the cycles")
    assert all(v["clock_backwards"] == 0 for v in vm.status()["vcpus"])


def test_quit_while_paused(env):
    vm = env.start("qp", "--cpus", "2")
    vm.ctl("pause")
    assert vm.ctl("quit").returncode == 0
    assert vm.wait_exit() == 0


if __name__ == "__main__":
    main([test_pause_resume, test_pause_twice_resume_twice, test_many_pause_cycles,
          test_quit_while_paused])
