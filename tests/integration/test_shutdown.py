"""Managed save: on PrepareForShutdown(true) a VM saves itself into the state
directory and only then releases its "shutdown" delay inhibitor; the next
`run --name NAME` continues that guest. Driven by the fake logind on a
private bus (the real-logind harness is still to come, see issue 12)."""
import json
import os
import subprocess
import time

from diskcheck import verify_image
from kvmtest import KVMHOST, main, wait_for
from reallogind import with_real_logind
from realupower import RealUPower
from sleephelp import with_logind


def saved_file(env, name):
    return os.path.join(env.statedir, f"{name}.kvmh")


def listed(env):
    p = env.run("list", "--all", "--json", check=True)
    return {v["name"]: v["state"] for v in json.loads(p.stdout)}


def holds_inhibitor(real, *names, verb="save"):
    """True once logind lists exactly these VMs' shutdown delay inhibitors."""
    wanted = sorted(f"{verb} VM {n} before the host shuts down" for n in names)
    return sorted(i[2] for i in real.inhibitors()
                  if i[:2] == ("shutdown", "kvmhost") and i[3] == "delay") == wanted


def power_off(env, real, vm):
    """The host goes down through logind: the VM saves and lets go, and only
    then does logind ask for poweroff.target; the VM ends 0."""
    real.busctl("call", "PowerOff", "b", "false")
    unit, _, started_at = real.expect_start()
    assert unit == "poweroff.target"
    assert vm.wait_exit(20) == 0, vm.stderr()
    # Complete and renamed in place before logind went on.
    assert os.stat(saved_file(env, vm.name)).st_mtime_ns <= started_at
    assert not os.path.exists(saved_file(env, vm.name) + ".tmp")


def test_save_at_shutdown_and_continue(env):
    real = with_real_logind(env)
    vm = env.start("keep", "--cpus", "2", "--heartbeat-us", "2000")
    wait_for(lambda: holds_inhibitor(real, "keep"), 10, what="logind to list the inhibitor")
    st = vm.status()["host_shutdown"]
    assert st["policy"] == "save" and st["logind"] is True and st["inhibitor"] is True
    assert st["path"] == saved_file(env, "keep")
    wait_for(lambda: min(vm.heartbeats()) > 20, 10, what="heartbeats")
    before = vm.heartbeats()
    power_off(env, real, vm)
    assert "saved to" in vm.stderr()
    assert listed(env) == {"keep": "saved"}
    # The same command (other guest settings ignored) continues the guest.
    vm2 = env.start("keep", "--cpus", "1", "--heartbeat-us", "2000")
    assert "continuing from its managed save" in vm2.stderr()
    st = vm2.status()
    assert len(st["vcpus"]) == 2
    assert all(h >= b for h, b in zip(vm2.heartbeats(), before)), (vm2.heartbeats(), before)
    wait_for(lambda: not os.path.exists(saved_file(env, "keep")), 5,
             what="the spent managed save to go")
    assert listed(env)["keep"] == "running"
    # Saved at the next shutdown again.
    wait_for(lambda: holds_inhibitor(real, "keep"), 10, what="logind to list it again")
    power_off(env, real, vm2)


def test_discard(env):
    real = with_real_logind(env)
    vm = env.start("old", "--cpus", "1", "--heartbeat-us", "2000")
    wait_for(lambda: holds_inhibitor(real, "old"), 10, what="logind to list the inhibitor")
    # Far enough on that a fresh boot, however slow to start, is well behind.
    wait_for(lambda: vm.heartbeats()[0] > 2000, 30, what="heartbeats")
    saved = vm.heartbeats()[0]
    power_off(env, real, vm)
    # --discard-saved boots afresh: the guest's counter starts again.
    vm2 = env.start("old", "--cpus", "1", "--heartbeat-us", "2000", "--discard-saved")
    assert vm2.heartbeats()[0] < saved, (vm2.heartbeats(), saved)
    assert not os.path.exists(saved_file(env, "old"))
    wait_for(lambda: holds_inhibitor(real, "old"), 10, what="logind to list it again")
    power_off(env, real, vm2)
    # `kvmhost discard NAME` removes it; a second time there is nothing.
    p = env.run("discard", "old")
    assert p.returncode == 0 and not os.path.exists(saved_file(env, "old")), p.stderr
    p = env.run("discard", "old")
    assert p.returncode != 0 and "no saved VM named 'old'" in p.stderr
    assert env.run("discard", "../etc").returncode == 2


def test_unnamed_vm_saves_as_vm_pid(env):
    logind = with_logind(env)
    p = subprocess.Popen([KVMHOST, "run", "--console", "none", "--heartbeat-us", "2000"],
                         env=env.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    name = f"vm-{p.pid}"
    try:
        logind.expect("inhibit", what="shutdown")
        time.sleep(0.3)  # some heartbeats to keep
        logind.send("shutdown")
        logind.expect("released", what="shutdown")
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    assert listed(env) == {name: "saved"}
    vm = env.start(name, "--cpus", "1")  # `run --name vm-PID` continues it
    assert "continuing from its managed save" in vm.stderr()
    assert len(vm.status()["vcpus"]) == 2 and min(vm.heartbeats()) > 0


def test_unfinished_save_is_never_used(env):
    with_logind(env)
    os.makedirs(env.statedir, exist_ok=True)
    tmp = saved_file(env, "half") + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"KVMHSNAP" + b"\0" * 100)
    vm = env.start("half", "--cpus", "1")
    assert "did not complete" in vm.stderr()
    assert not os.path.exists(tmp) and "restored" not in vm.stderr()


def test_corrupt_save_is_refused_and_kept(env):
    with_logind(env)
    os.makedirs(env.statedir, exist_ok=True)
    path = saved_file(env, "bad")
    with open(path, "wb") as f:
        f.write(b"not a snapshot at all" * 10)
    p = env.run("run", "--name", "bad", "--console", "none", timeout=20)
    assert p.returncode == 7, p.stderr  # a bad snapshot
    assert "its managed save" in p.stderr and "kvmhost discard bad" in p.stderr, p.stderr
    assert os.path.exists(path)  # kept for the user to look at or discard
    assert listed(env) == {"bad": "saved"}
    vm = env.start("bad", "--cpus", "1", "--discard-saved")
    assert not os.path.exists(path) and vm.status()["state"] == "running"


def test_poweroff_and_ignore_policies(env):
    real = with_real_logind(env)
    k = os.environ["KVMHOST_PWRBTN_KERNEL"]
    off = env.start("off", "--kernel", k, "--cpus", "1", "--on-host-shutdown", "poweroff",
                    heartbeats=False)
    ign = env.start("ign", "--cpus", "1", "--on-host-shutdown", "ignore")
    # Only one: "ign" holds none.
    wait_for(lambda: holds_inhibitor(real, "off", verb="power off"), 10, what="the inhibitor")
    wait_for(lambda: "pwrbtn: ready" in off.console_text(), 20, what="the kernel")
    real.busctl("call", "PowerOff", "b", "false")
    unit = real.expect_start()[0]  # only once the guest has powered off
    assert unit == "poweroff.target"
    assert off.wait_exit(20) == 0
    assert "pwrbtn: pressed" in off.console_text()
    assert ign.status()["state"] == "running"
    assert ign.status()["host_shutdown"]["policy"] == "ignore"
    saves = os.listdir(env.statedir) if os.path.isdir(env.statedir) else []
    assert saves == [], saves  # neither policy saves anything


def test_save_time_against_the_delay(env):
    # A logind that waits 5 ms: no 256 MiB VM saves in that.
    logind = with_logind(env, delay_us=5000)
    vm = env.start("big", "--cpus", "1", "--memory", "256")
    wait_for(lambda: vm.status()["managed_save"]["delay_from_logind"], 5, what="the delay")
    ms = vm.status()["managed_save"]
    assert ms["delay_ms"] == 5.0 and ms["rate_mib_s"] > 0 and ms["fits"] is False, ms
    assert abs(ms["estimate_ms"] - 256 / ms["rate_mib_s"] * 1000) < 1, ms
    wait_for(lambda: "more than the 5 ms logind waits" in vm.stderr(), 5, what="the warning")
    # logind's default 5 s: 64 MiB fits wherever a disk writes 13 MiB/s.
    logind2 = with_logind(env)
    small = env.start("small", "--cpus", "1")
    wait_for(lambda: small.status()["managed_save"]["delay_from_logind"], 5, what="the delay")
    ms = small.status()["managed_save"]
    assert ms["delay_ms"] == 5000.0 and ms["fits"] is True, ms
    assert "logind waits" not in small.stderr()
    # A save replaces the estimate with what it really took.
    logind2.expect("inhibit", what="shutdown")
    wait_for(lambda: small.status()["host_shutdown"]["inhibitor"], 5, what="the inhibitor")
    logind2.send("shutdown")
    assert small.wait_exit(20) == 0
    assert logind.quiet("released", 0.2, what="shutdown")  # the first bus saw nothing


# UPower's Device.State and WarningLevel values.
CHARGING, DISCHARGING = 1, 2
NONE, LOW, CRITICAL, ACTION = 1, 3, 4, 5


def test_low_battery(env):
    bus = with_logind(env, upower=True)
    a = env.start("bat-a", "--cpus", "1", "--heartbeat-us", "2000")
    b = env.start("bat-b", "--cpus", "1", "--on-low-battery", "ignore")
    wait_for(lambda: a.status()["battery"]["upower"], 5, what="UPower to be watched")
    assert a.status()["battery"]["state"] == "charging"
    assert b.status()["battery"] == dict(b.status()["battery"], policy="ignore", upower=False)
    # Nothing while charging, nor while discharging above the level.
    for state, level in ((CHARGING, CRITICAL), (DISCHARGING, LOW), (DISCHARGING, NONE)):
        bus.send(f"battery {state} {level}")
        bus.expect("battery")
        wait_for(lambda: a.status()["battery"]["warning_level"] != "unknown", 5, what="levels")
    wait_for(lambda: a.status()["battery"]["state"] == "discharging", 5, what="the state")
    assert a.proc.poll() is None and not os.path.exists(saved_file(env, "bat-a"))
    before = a.heartbeats()
    bus.send(f"battery {DISCHARGING} {CRITICAL}")
    assert a.wait_exit(20) == 0, a.stderr()
    assert "the battery is discharging at warning level critical" in a.stderr()
    assert os.path.exists(saved_file(env, "bat-a"))
    assert b.proc.poll() is None and b.status()["state"] == "running"
    assert not os.path.exists(saved_file(env, "bat-b"))
    # Back on the charger: the same command continues the guest.
    bus.send(f"battery {CHARGING} {NONE}")
    a2 = env.start("bat-a", "--cpus", "1", "--heartbeat-us", "2000")
    assert a2.heartbeats()[0] >= before[0]
    # At "action", the level UPower itself acts at, it saves as well.
    bus.send(f"battery {DISCHARGING} {ACTION}")
    assert a2.wait_exit(20) == 0, a2.stderr()
    assert "warning level action" in a2.stderr()


def test_low_battery_through_the_real_upower(env):
    with_logind(env)  # the bus; upowerd's CriticalPowerAction call would go to it
    # kvmhost first, upowerd after it (as when upowerd starts late or
    # restarts): kvmhost asks for its state when its name appears. (Started
    # the other way round, kvmhost asked before upowerd had taken its name
    # in the test host and then waited for a change that never came.)
    vm = env.start("laptop", "--cpus", "1", "--heartbeat-us", "2000")
    assert not vm.status()["battery"]["upower"]
    upower = RealUPower(env.env, env.dir)
    env.cleanups.append(upower.close)
    wait_for(lambda: vm.status()["battery"]["upower"], 10, what="UPower to be watched")

    def battery():
        return vm.status()["battery"]
    wait_for(lambda: battery()["state"] == "discharging", 10, what="the battery at 50 %",
             interval=0.1)
    assert battery()["warning_level"] == "none"
    # 4 % is critical (Debian's UPower.conf: PercentageCritical=5), but charging.
    upower.level(4, "Charging")
    wait_for(lambda: battery()["state"] == "charging", 10, what="charging")
    upower.level(10, "Discharging")  # low, not critical
    wait_for(lambda: battery()["warning_level"] == "low", 10, what="warning level low",
             interval=0.1)
    assert vm.proc.poll() is None and not os.path.exists(saved_file(env, "laptop"))
    before = vm.heartbeats()
    upower.level(4, "Discharging")
    assert vm.wait_exit(20) == 0, vm.stderr() + upower.log()[-2000:]
    assert "the battery is discharging at warning level critical" in vm.stderr()
    assert os.path.exists(saved_file(env, "laptop"))
    upower.level(80, "Charging")
    vm = env.start("laptop", "--cpus", "1", "--heartbeat-us", "2000")
    assert vm.heartbeats()[0] >= before[0]


def test_poweroff_through_the_real_logind(env):
    real = with_real_logind(env)
    img = env.image("work.img", 32 << 20)
    blocks = 256
    work_args = ("--disk", img, "--guest-mode", "disk", "--disk-blocks", str(blocks),
                 "--disk-flush-every", "32", "--disk-generation", "3", "--print-every", "0")
    work = env.start("work", *work_args, heartbeats=False)
    count = env.start("count", "--cpus", "2", "--heartbeat-us", "2000")
    paused = env.start("paused", "--cpus", "1")
    assert paused.ctl("pause").returncode == 0
    names = ("work", "count", "paused")
    wait_for(lambda: holds_inhibitor(real, *names), 10,
             what="logind to list three shutdown inhibitors")
    assert all(v.status()["managed_save"]["delay_from_logind"] for v in (work, count, paused))
    wait_for(lambda: work.status()["guest_disk"]["flushed_blocks"] >= 32, 60, interval=0.02,
             what="the disk workload to be under way")
    before, frozen = count.heartbeats(), paused.heartbeats()
    real.busctl("call", "PowerOff", "b", "false")
    unit, _, started_at = real.expect_start()
    assert unit == "poweroff.target"
    for vm in (work, count, paused):
        assert vm.wait_exit(30) == 0, vm.stderr()
        assert os.stat(saved_file(env, vm.name)).st_mtime_ns <= started_at
    # logind's own log: every kvmhost inhibitor released before StartUnit.
    real.released_before_start(names, lambda n: f"save VM {n} before the host shuts down)")
    # The same three commands continue all three guests.
    work = env.start("work", *work_args, heartbeats=False)
    count = env.start("count", "--cpus", "2", "--heartbeat-us", "2000")
    paused = env.start("paused", "--cpus", "1")
    assert all(h >= b for h, b in zip(count.heartbeats(), before))
    wait_for(lambda: all(h > b for h, b in zip(count.heartbeats(), before)), 10,
             what="the counters to go on")
    assert paused.status()["state"] == "paused" and paused.heartbeats() == frozen
    wait_for(lambda: work.status()["guest_disk"]["done"], 120, interval=0.1,
             what="the disk workload to finish")
    g = work.status()["guest_disk"]
    assert g["errors"] == 0 and g["verified_blocks"] == blocks, g
    assert verify_image(img, blocks, 3) == []


def test_too_big_for_the_delay(env):
    # logind waits 10 ms; 512 MiB of tagged memory takes far longer to save.
    real = with_real_logind(env, delay_s="10ms")
    mib = 512
    vm = env.start("huge", "--cpus", "1", "--memory", str(mib + 32), "--guest-mode", "memcheck",
                   "--memcheck-mib", str(mib), "--print-every", "0",
                   heartbeats=False)  # it beats once its memory is tagged
    wait_for(lambda: vm.status()["guest_memcheck"]["pages"] == mib * 256, 60, interval=0.1,
             what="the guest to tag its memory")
    wait_for(lambda: "more than the 10 ms logind waits" in vm.stderr(), 10, what="the warning")
    assert vm.status()["managed_save"]["fits"] is False
    real.busctl("call", "PowerOff", "b", "false")
    unit = real.expect_start()[0]
    assert unit == "poweroff.target"
    # logind went on without it; the save it began (slow: TCG, ASan) is what
    # the host going down ends.
    wait_for(lambda: os.path.exists(saved_file(env, "huge") + ".tmp"), 10,
             what="the save to begin")
    vm.proc.kill()
    vm.wait_exit(10)
    assert "inhibitor timeout is reached" in real.log()
    assert not os.path.exists(saved_file(env, "huge"))
    assert os.path.exists(saved_file(env, "huge") + ".tmp")
    # The next run says so and boots afresh: the partial file is never used.
    vm = env.start("huge", "--cpus", "1")
    assert "did not complete" in vm.stderr() and "managed save" in vm.stderr()
    assert "continuing" not in vm.stderr()
    assert not os.path.exists(saved_file(env, "huge") + ".tmp")


if __name__ == "__main__":
    main([test_save_at_shutdown_and_continue, test_discard, test_unnamed_vm_saves_as_vm_pid,
          test_unfinished_save_is_never_used,
          test_corrupt_save_is_refused_and_kept, test_poweroff_and_ignore_policies,
          test_low_battery, test_save_time_against_the_delay,
          test_poweroff_through_the_real_logind, test_too_big_for_the_delay,
          test_low_battery_through_the_real_upower])
