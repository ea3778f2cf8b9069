"""Boot the built-in guest on 1, 2 and 4 vCPUs; every vCPU's guest-reported
heartbeats advance, its clock never goes backwards, and poweroff ends it."""
import re
import time

from kvmtest import advancing, main, note_irqs_if_off, wait_for


def boot(env, n):
    vm = env.start(f"boot{n}", "--cpus", str(n), "--print-every", "20")
    st = vm.status()
    assert st["state"] == "running"
    assert len(st["vcpus"]) == n
    assert [v["index"] for v in st["vcpus"]] == list(range(n))
    assert wait_for(lambda: advancing(vm), 5, what="heartbeats to advance")
    # Every vCPU thread is a real, distinct thread that last ran on a real CPU.
    tids = {v["tid"] for v in st["vcpus"]}
    assert len(tids) == n and all(t > 0 for t in tids)
    assert all(v["host_cpu"] >= 0 for v in st["vcpus"])
    # The guest's own console: a banner and per-vCPU heartbeat lines.
    wait_for(lambda: all(f"vcpu {i}: heartbeat" in vm.console_text() for i in range(n)), 10,
             what="a heartbeat line from every vCPU")
    assert f"kvmhost built-in guest: {n} vCPUs" in vm.console_text()
    assert all(v["clock_backwards"] == 0 for v in vm.status()["vcpus"])
    # An interrupt that arrives while the guest has interrupts off: never on
    # a correct host; single-threaded TCG does it (DEVELOPERS.md).
    note_irqs_if_off(vm.status())
    r = vm.ctl("poweroff")
    assert r.returncode == 0, r.stderr
    assert vm.wait_exit() == 0, vm.stderr()
    assert "guest powered off" in vm.stderr()
    assert re.search(r"vcpu \d+: power off after \d+ heartbeats", vm.console_text())


def test_boot_1(env):
    boot(env, 1)


def test_boot_2(env):
    boot(env, 2)


def test_boot_4(env):
    boot(env, 4)


def test_boot_race(env):
    # Many vCPUs with a fast timer booting at once: they share the guest's
    # IDT, and one rewriting a gate under another one's interrupt was a
    # triple fault. Boot repeatedly; every vCPU must come up and run.
    for i in range(6):
        vm = env.start(f"race{i}", "--cpus", "8", "--heartbeat-us", "300", "--print-every", "0")
        before = vm.heartbeats()
        wait_for(lambda: all(b > a for a, b in zip(before, vm.heartbeats())), 2,
                 what="every vCPU to beat again")
        vm.kill()
        assert vm.proc.returncode == 0, vm.stderr()


def test_default_name_and_sigterm(env):
    # No --name: the VM calls itself vm-PID and is listed so.
    import subprocess
    p = subprocess.Popen([__import__("kvmtest").KVMHOST, "run", "--console", "none"],
                         env=env.env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(v["name"] == f"vm-{p.pid}" for v in env.list()), 10,
                 what="the default-named VM in list")
        p.terminate()
        assert p.wait(10) == 0
        assert "stopped on request" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert env.list() == []


def test_memory_above_the_hole(env):
    # More than 3 GiB: RAM is split around the 32-bit MMIO hole into two
    # memory slots; KVM must take both, and the guest run.
    vm = env.start("big", "--cpus", "2", "--memory", "5000")
    assert vm.status()["memory_mib"] == 5000
    assert advancing(vm)


def test_ctrl_c_stops_cleanly(env):
    # Ctrl-C at the terminal is SIGINT to the VMM (the built-in guest does not
    # take console input, so the terminal is left alone).
    vm = env.start("ctrlc", "--cpus", "2")
    vm.proc.send_signal(__import__("signal").SIGINT)
    assert vm.wait_exit() == 0
    assert "Interrupt: stopping the VM" in vm.stderr() and "stopped on request" in vm.stderr()
    assert env.list() == []  # socket and lock gone


def test_console_reader_goes_away(env):
    # `kvmhost run | head`: when the reader leaves, the VM runs on (no SIGPIPE death).
    import subprocess
    p = subprocess.Popen([__import__("kvmtest").KVMHOST, "run", "--name", "piped", "--cpus", "1",
                          "--print-every", "5"], env=env.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.read(10)
        p.stdout.close()
        time.sleep(0.5)  # heartbeat lines keep coming, into a closed pipe
        assert p.poll() is None, p.stderr.read()
        r = env.run("ctl", "piped", "quit")
        assert r.returncode == 0
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_crash_dumps_registers(env):
    vm = env.start("crash", "--guest-mode", "crash", wait=False)
    code = vm.wait_exit()
    err = vm.stderr()
    assert code == 10, (code, err)
    assert "triple fault" in err
    assert re.search(r"rip [0-9a-f]{16}", err) and "cr3" in err


def test_hostile_io_is_contained(env):
    vm = env.start("wild", "--guest-mode", "wild-io")
    st = vm.status()
    # Unclaimed ports/MMIO were counted, not fatal, and the guest runs on.
    assert st["unhandled_pio"] >= 6 and st["unhandled_mmio"] >= 2, st
    assert advancing(vm)
    assert vm.proc.poll() is None
    # Each vCPU raised one software interrupt with interrupts off: the guest's
    # count of interrupts taken with IF clear sees exactly those.
    n = len(st["vcpus"])
    wait_for(lambda: vm.status()["guest_irqs_if_off"] >= n, 10,
             what=f"the guest to count {n} interrupts taken with IF clear")


def test_console_file(env):
    vm = env.start("cons", "--cpus", "1", "--print-every", "5")
    wait_for(lambda: "vcpu 0: heartbeat 10" in vm.console_text(), 10, what="console output")
    t = vm.console_text()
    assert t.startswith("kvmhost built-in guest: 1 vCPUs")
    time.sleep(0.1)


if __name__ == "__main__":
    main([test_boot_1, test_boot_2, test_boot_4, test_boot_race, test_default_name_and_sigterm, test_memory_above_the_hole,
          test_ctrl_c_stops_cleanly,
          test_console_reader_goes_away,
          test_crash_dumps_registers, test_hostile_io_is_contained, test_console_file])
