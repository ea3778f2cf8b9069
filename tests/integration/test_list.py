"""The host-wide VM list: every running VM, its vCPUs, and no dead ones."""
import os
import signal

from kvmtest import main, wait_for


def test_three_vms(env):
    counts = {"a": 1, "b": 2, "c": 3}
    vms = {n: env.start(n, "--cpus", str(c)) for n, c in counts.items()}
    listed = {v["name"]: v for v in env.list()}
    assert set(listed) == set(counts)
    for n, c in counts.items():
        v = listed[n]
        assert v["pid"] == vms[n].proc.pid
        assert v["state"] == "running"
        assert len(v["vcpus"]) == c
        for vc in v["vcpus"]:
            assert vc["tid"] > 0 and vc["host_cpu"] >= 0 and vc["heartbeats"] > 0
            assert os.path.exists(f"/proc/{vms[n].proc.pid}/task/{vc['tid']}")
    human = env.run("list", check=True).stdout
    for n in counts:
        assert n in human


def test_pinning_shown(env):
    vm = env.start("pin", "--cpus", "2", "--cpu-pin", "0=0,1=1")
    v = env.list()[0]["vcpus"]
    assert v[0]["pinned"] == [0] and v[0]["desired"] == [0]
    assert v[1]["pinned"] == [1]
    # It is the thread's real affinity, read by the kernel, not our copy.
    with open(f"/proc/{vm.proc.pid}/task/{v[1]['tid']}/status") as f:
        allowed = [ln for ln in f if ln.startswith("Cpus_allowed_list")][0]
    assert allowed.split()[-1] == "1"


def test_ctl_pin(env):
    vm = env.start("repin", "--cpus", "2")
    tid = vm.status()["vcpus"][0]["tid"]
    r = vm.ctl("pin", "0=1")
    assert r.returncode == 0, r.stderr
    with open(f"/proc/{vm.proc.pid}/task/{tid}/status") as f:
        assert "Cpus_allowed_list:\t1\n" in f.read()
    assert vm.status()["vcpus"][0]["desired"] == [1]
    assert vm.ctl("pin", "0=0").returncode == 0
    assert vm.status()["vcpus"][0]["pinned"] == [0]
    for bad, msg in [("0=999", "host CPU 999 does not exist"),
                     ("0=4000", "'4000' is not a host CPU list"), ("7=0", "vCPU 7 does not exist"),
                     ("x", "expected VCPU=HOSTCPU")]:
        r = vm.ctl("pin", bad)
        assert r.returncode == 1 and msg in r.stderr, (bad, r.stderr)
    assert vm.status()["vcpus"][0]["pinned"] == [0]


def test_stale_socket_removed(env):
    a = env.start("alive")
    dead = env.start("dead")
    os.kill(dead.proc.pid, signal.SIGKILL)
    dead.proc.wait()
    assert os.path.exists(dead.sock)  # a SIGKILLed VM leaves its socket
    names = [v["name"] for v in env.list()]
    assert names == ["alive"], names
    assert not os.path.exists(dead.sock)
    assert not os.path.exists(os.path.join(env.rundir, "dead.lock"))
    assert a.proc.poll() is None
    # The name is free again.
    env.start("dead")
    assert sorted(v["name"] for v in env.list()) == ["alive", "dead"]


def test_empty(env):
    assert env.list() == []
    assert "no VMs running" in env.run("list", check=True).stdout


def test_custom_socket_is_listed(env):
    path = os.path.join(env.dir, "custom.sock")
    vm = env.start("cust", "--socket", path, wait=False)
    wait_for(lambda: os.path.exists(path), 10, what="the custom socket")
    vm.sock = path
    vm.wait_ready()
    assert [v["name"] for v in env.list()] == ["cust"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


if __name__ == "__main__":
    main([test_three_vms, test_pinning_shown, test_ctl_pin, test_stale_socket_removed, test_empty,
          test_custom_socket_is_listed])
