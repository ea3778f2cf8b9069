"""Host sleep through the real systemd-logind on a private bus (and a fake
logind where a fault must be injected: signals bursting, an inhibitor
refused): VMs are quiesced before the host sleeps (inhibitor released only
then) and resumed after it wakes, with guest time and disk data intact. The
VM is frozen with the cgroup freezer between the two signals, as the kernel
does. Never writes /sys/power."""
import os
import signal
import subprocess
import time

from kvmtest import KVMHOST, advancing, main, wait_for
from reallogind import sleep_why, sleep_why_logged, with_real_logind
from sleephelp import Freezer, with_logind


def hb(vm):
    return [v["heartbeats"] for v in vm.status()["vcpus"]]


def test_sleep_wake_cycle(env):
    real = with_real_logind(env)
    vm = env.start("s1", "--cpus", "2", "--disk", env.image("sleep.img", 8 << 20),
                   "--heartbeat-us", "2000")
    wait_for(lambda: real.sleep_inhibitors() == [sleep_why("s1")], 10, what="logind to list it")
    assert vm.status()["host_sleep"]["logind"] is True
    real.hold_jobs()  # suspend.target "runs" until we end it: the host sleeps
    real.busctl("call", "Suspend", "b", "false")
    prepared, start, sig = real.expect_prepare()
    assert (prepared, start) == ("PrepareForSleep", True)
    unit, t_start, _ = real.expect_start()
    assert unit == "suspend.target"
    st = vm.status()
    assert st["state"] == "host-sleep"
    assert all(v["state"] == "paused" for v in st["vcpus"])
    last = st["host_sleep"]["last"]
    # Released only once every vCPU was parked and the disk flushed; logind
    # asked for suspend.target only after that.
    assert last["signal_ns"] <= last["parked_ns"] <= last["flushed_ns"] <= last["released_ns"]
    assert sig <= t_start and last["released_ns"] <= t_start, (sig, last, t_start)
    assert st["disks"][0]["host_flushes"] == 1
    assert abs(last["at"] - time.time()) < 60  # when, in wall-clock time
    assert real.sleep_inhibitors() == []
    frozen = hb(vm)
    fz = Freezer(vm.proc.pid)
    try:
        fz.freeze()
        time.sleep(1.5)  # the host "sleeps"
        fz.thaw()
        assert hb(vm) == frozen, "a vCPU ran while the host was asleep"
        before = [v["guest_stopped_seen"] for v in vm.status()["vcpus"]]
        real.hold_jobs(False)  # the job ends: logind sends PrepareForSleep(false)
        assert real.expect_prepare()[:2] == ("PrepareForSleep", False)
        wait_for(lambda: advancing(vm, 0.2), 5, what="heartbeats after the wake")
    finally:
        fz.close()
    wait_for(lambda: real.sleep_inhibitors() == [sleep_why("s1")], 10, what="a new inhibitor")
    st = vm.status()
    assert st["state"] == "running" and st["host_sleep"]["inhibitor"]
    # The guest says it saw PVCLOCK_GUEST_STOPPED after the wake, and its
    # time never went backwards; kvmclock moved on by the real sleep.
    wait_for(lambda: all(v["guest_stopped_seen"] > b
                         for v, b in zip(vm.status()["vcpus"], before)), 5,
             what="every vCPU to report GUEST_STOPPED")
    assert all(v["clock_backwards"] == 0 for v in vm.status()["vcpus"])
    assert st["host_sleep"]["last"]["slept_s"] >= 1.5
    assert st["host_sleep"]["sleeps"] == 1
    # The guest's own wall clock (boot wall clock + kvmclock) agrees with the
    # host's after the sleep: the 1.5 s asleep were not lost.
    reports = vm.status()  # a report follows GUEST_STOPPED at once
    time.sleep(0.3)
    off = vm.status()["wallclock_offset_ms"]
    assert off is not None and abs(off) < 1000, (off, reports["wallclock_offset_ms"])


def test_user_paused_stays_paused(env):
    real = with_real_logind(env)
    a = env.start("awake", "--cpus", "1")
    b = env.start("napping", "--cpus", "1")
    both = sorted([sleep_why("awake"), sleep_why("napping")])
    wait_for(lambda: real.sleep_inhibitors() == both, 10, what="both inhibitors")
    assert b.ctl("pause").returncode == 0
    real.busctl("call", "Suspend", "b", "false")
    assert real.expect_start()[0] == "suspend.target"  # both released; the stub wakes at once
    wait_for(lambda: real.sleep_inhibitors() == both, 10, what="new inhibitors after the wake")
    assert a.status()["host_sleep"]["sleeps"] == 1 and b.status()["host_sleep"]["sleeps"] == 1
    assert wait_for(lambda: advancing(a, 0.2), 5, what="A to run")
    frozen = hb(b)
    time.sleep(0.3)
    assert hb(b) == frozen and b.status()["state"] == "paused"
    assert b.ctl("resume").returncode == 0
    assert wait_for(lambda: advancing(b, 0.2), 5, what="B to run after its user resumes it")


def test_signals_collapse(env):
    logind = with_logind(env)
    vm = env.start("burst", "--cpus", "1")
    logind.expect("inhibit")
    # A wake with no sleep before it: harmless, no second inhibitor.
    logind.send("wake-only")
    logind.expect("signal")
    assert logind.quiet("inhibit", 0.5)
    assert advancing(vm)
    # true, false, true queued up: only the last counts. kvmhost is stopped
    # while they are sent, so all three are waiting in its socket, as when
    # they arrive while it is busy.
    os.kill(vm.proc.pid, signal.SIGSTOP)
    try:
        logind.send("burst")
        for _ in range(3):
            logind.expect("signal")
        time.sleep(0.2)  # the bus daemon passes them on
    finally:
        os.kill(vm.proc.pid, signal.SIGCONT)
    logind.expect("released")
    wait_for(lambda: vm.status()["host_sleep"]["asleep"], 5, what="the VM asleep")
    assert vm.status()["host_sleep"]["sleeps"] == 1
    logind.send("wake")
    logind.expect("inhibit")
    assert wait_for(lambda: advancing(vm, 0.2), 5, what="heartbeats")


def test_ignore_policy(env):
    real = with_real_logind(env)
    vm = env.start("ign", "--cpus", "1", "--on-host-sleep", "ignore")
    other = env.start("held", "--cpus", "1")
    wait_for(lambda: real.sleep_inhibitors() == [sleep_why("held")], 10,
             what="only held's inhibitor")
    real.busctl("call", "Suspend", "b", "false")
    assert real.expect_start()[0] == "suspend.target"
    wait_for(lambda: other.status()["host_sleep"]["sleeps"] == 1, 10, what="held to sleep")
    assert advancing(vm) and vm.status()["host_sleep"]["policy"] == "ignore"
    assert vm.status()["host_sleep"]["sleeps"] == 0


def test_inhibitor_refused(env):
    logind = with_logind(env)
    logind.send("deny")
    time.sleep(0.1)
    vm = env.start("denied", "--cpus", "1")
    said = "host sleep: logind refused the inhibitor"
    wait_for(lambda: said in vm.stderr(), 5, what="the warning")
    assert vm.stderr().count(said) == 1
    assert vm.status()["host_sleep"]["inhibitor"] is False
    assert advancing(vm)


def test_hung_and_restarted_logind(env):
    logind = with_logind(env)
    logind.send("mute")  # Inhibit calls hang
    time.sleep(0.1)
    vm = env.start("patient", "--cpus", "1")  # boots and answers all the same
    st = vm.status()
    assert st["host_sleep"]["inhibitor"] is False and st["host_shutdown"]["inhibitor"] is False
    # PrepareForSleep still quiesces the VM; there is just no inhibitor to let go.
    logind.send("sleep")
    wait_for(lambda: vm.status()["state"] == "host-sleep", 5, what="the VM quiesced")
    logind.send("wake")
    wait_for(lambda: advancing(vm, 0.2), 5, what="heartbeats after the wake")
    # A new logind has none of the old one's inhibitors: kvmhost asks it again.
    logind.restart()
    logind.expect("inhibit")
    logind.expect("inhibit", what="shutdown")
    wait_for(lambda: vm.status()["host_sleep"]["inhibitor"] and
             vm.status()["host_shutdown"]["inhibitor"], 5, what="both inhibitors")
    assert "logind (re)started: asking it for the sleep inhibitor again" in vm.stderr()
    logind.send("sleep")
    logind.expect("released")  # the new logind is waited for properly
    assert vm.status()["state"] == "host-sleep"
    logind.send("wake")
    logind.expect("inhibit")
    wait_for(lambda: advancing(vm, 0.2), 5, what="heartbeats after the second wake")


def test_no_logind_and_hooks(env):
    env.env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={env.dir}/no-such-bus"
    img = env.image("sleep.img", 8 << 20)
    a = env.start("h1", "--cpus", "2", "--disk", img)
    b = env.start("h2", "--cpus", "1")
    assert a.stderr().count("host sleep: no system bus") == 1
    assert advancing(a)
    # What a systemd-sleep / pm-utils hook does, for every VM at once.
    r = env.run("ctl", "--all", "host-sleep", "prepare", check=True)
    assert "h1: host-sleep prepare done" in r.stdout and "h2" in r.stdout
    for vm in (a, b):
        assert vm.status()["state"] == "host-sleep"
    assert a.status()["disks"][0]["host_flushes"] == 1
    frozen = hb(a)
    time.sleep(0.3)
    assert hb(a) == frozen
    before = [v["guest_stopped_seen"] for v in a.status()["vcpus"]]
    env.run("ctl", "--all", "host-sleep", "resume", check=True)
    assert wait_for(lambda: advancing(a, 0.2) and advancing(b, 0.2), 5, what="both running")
    wait_for(lambda: all(v["guest_stopped_seen"] > x
                         for v, x in zip(a.status()["vcpus"], before)), 5,
             what="GUEST_STOPPED after the hook's resume")
    p = env.run("ctl", "h1", "host-sleep", "nap")
    assert p.returncode == 2 and "prepare or resume" in p.stderr
    # The shipped systemd-sleep hook does the same.
    hook = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "systemd-sleep",
                        "kvmhost")
    path_env = dict(env.env, PATH=os.path.dirname(os.path.abspath(KVMHOST)) + ":" +
                    os.environ["PATH"])
    subprocess.run([hook, "pre", "suspend"], env=path_env, check=True, capture_output=True)
    assert a.status()["state"] == "host-sleep" and b.status()["state"] == "host-sleep"
    subprocess.run([hook, "post", "suspend"], env=path_env, check=True, capture_output=True)
    assert a.status()["state"] == "running" and b.status()["state"] == "running"


def test_sleep_wake_through_the_real_logind(env):
    real = with_real_logind(env)
    a = env.start("ra", "--cpus", "2", "--disk", env.image("sleep.img", 8 << 20),
                  "--heartbeat-us", "2000")
    b = env.start("rb", "--cpus", "1")
    names = ("ra", "rb")
    wanted = sorted(sleep_why(n) for n in names)
    wait_for(lambda: real.sleep_inhibitors() == wanted, 10, what="logind to list both inhibitors")
    before = [v["guest_stopped_seen"] for v in a.status()["vcpus"]]
    real.busctl("call", "Suspend", "b", "false")
    unit = real.expect_start()[0]
    assert unit == "suspend.target"
    # The stub's JobRemoved ends the "sleep": logind sends PrepareForSleep(false).
    for vm in (a, b):
        wait_for(lambda: vm.status()["host_sleep"]["sleeps"] == 1 and
                 vm.status()["state"] == "running", 10, what=f"{vm.name} to wake")
    assert a.status()["disks"][0]["host_flushes"] == 1
    wait_for(lambda: real.sleep_inhibitors() == wanted, 10, what="new inhibitors after the wake")
    wait_for(lambda: all(v["guest_stopped_seen"] > x
                         for v, x in zip(a.status()["vcpus"], before)), 5,
             what="the guest to see PVCLOCK_GUEST_STOPPED")
    assert advancing(a) and advancing(b)
    real.released_before_start(names, sleep_why_logged)


if __name__ == "__main__":
    main([test_sleep_wake_cycle, test_user_paused_stays_paused, test_signals_collapse,
          test_ignore_policy, test_inhibitor_refused, test_hung_and_restarted_logind,
          test_no_logind_and_hooks,
          test_sleep_wake_through_the_real_logind])
