"""Linux guests: the boot path with tiny synthetic kernels (console, input,
escape, terminal, reset), the real Debian cloud kernel up to its banner
through host-side decompression, and a full busybox boot where ring 0 is
native (it measures first, and skips where ring 0 is emulated)."""
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time

from kernels import (ACPI_POWEROFF, CF9_RESET, HALT, I8042_RESET, INIT_MARKER, SIPI,
                     busybox_initramfs, debian_kernel, debian_modules, elf_kernel, out_str,
                     ring0_ns_per_iteration)
from linuxguest import ctl
from nettest import NetNS
from kvmtest import KVMHOST, SINGLE_TCG, main, skip, wait_for

# A kernel that echoes what arrives on the UART: poll LSR, read RBR, write THR.
ECHO = (b"\x66\xba\xfd\x03"  # mov dx, 0x3fd
        b"\xec\xa8\x01\x74\xfb"  # 1: in al, dx; test al, 1; jz 1b
        b"\x66\xba\xf8\x03\xec\xee"  # mov dx, 0x3f8; in al, dx; out dx, al
        b"\xeb\xeb")  # jmp back to mov dx, 0x3fd


def test_synthetic_kernel_console(env):
    k = elf_kernel(os.path.join(env.dir, "hello"), out_str("hello from a tiny kernel\n") + HALT)
    vm = env.start("tiny", "--kernel", k, "--cpus", "2", heartbeats=False)
    wait_for(lambda: "hello from a tiny kernel" in vm.console_text(), 10, what="kernel output")
    assert "vmlinux (ELF, entered in 64-bit mode)" in vm.stderr()
    regs = vm.request({"cmd": "regs"})["result"]
    # The boot protocol's entry state: __BOOT_CS, rsi = the zero page.
    assert regs[0]["cs"] == "0x10" and regs[0]["rsi"] == "0x7000", regs[0]
    assert vm.status()["vcpus"][1]["state"] == "running"  # the AP waits for SIPI in KVM_RUN
    assert vm.ctl("quit").returncode == 0
    assert vm.wait_exit() == 0


def test_no_test_device_for_linux(env):
    # The built-in guest's test device is its own: a kernel that reads its
    # configuration port finds nothing there, and status has none of its reports.
    probe = b"\x66\xba\x1c\x05\xed"  # mov dx, 0x51c (TESTDEV_CONFIG); in eax, dx
    k = elf_kernel(os.path.join(env.dir, "probe"), probe + out_str("probed\n") + HALT)
    vm = env.start("probe", "--kernel", k, "--cpus", "1", heartbeats=False)
    wait_for(lambda: "probed" in vm.console_text(), 10, what="kernel output")
    st = vm.status()
    assert st["unhandled_pio"] >= 1, st
    assert not {"guest_disk", "guest_net", "guest_memcheck"} & set(st), sorted(st)
    assert "heartbeats" not in st["vcpus"][0], st["vcpus"][0]
    assert vm.ctl("quit").returncode == 0
    assert vm.wait_exit() == 0


def test_ap_started_by_init_sipi(env):
    # The AP's thread waits in KVM_RUN until the BSP's INIT/SIPI; then it runs
    # real-mode code at the SIPI vector, as a Linux AP's trampoline would.
    k = elf_kernel(os.path.join(env.dir, "sipi"), SIPI)
    vm = env.start("sipi", "--kernel", k, "--cpus", "2", heartbeats=False)
    wait_for(lambda: "AP up" in vm.console_text(), 30, what="the AP's output")
    assert vm.console_text().index("BSP sends SIPI") < vm.console_text().index("AP up")
    regs = vm.request({"cmd": "regs"})["result"]
    assert regs[1]["cs"] == "0x800", regs[1]  # real mode, CS = vector << 8
    assert vm.ctl("quit").returncode == 0


def echoed(p, line):
    """Writes `line` to the VM's stdin and waits for the guest to echo it."""
    p.stdin.write(line)
    p.stdin.flush()
    got = b""
    deadline = time.monotonic() + 20
    while line.strip() not in got and time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            got += os.read(p.stdout.fileno(), 4096)
    assert line.strip() in got, got


def test_console_input(env):
    k = elf_kernel(os.path.join(env.dir, "echo"), ECHO)
    p = subprocess.Popen([KVMHOST, "run", "--name", "echo", "--kernel", k, "--cpus", "1"],
                         env=env.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        echoed(p, b"ping over the UART\n")
        # Ctrl-A x quits, even through a pipe.
        p.stdin.write(b"\x01x")
        p.stdin.flush()
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_terminal_raw_and_restored(env):
    k = elf_kernel(os.path.join(env.dir, "halt"), HALT)
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([KVMHOST, "run", "--name", "tty", "--kernel", k, "--cpus", "1"],
                         env=env.env, stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(os.path.join(env.rundir, "tty.sock")), 10,
                 what="the VM")
        wait_for(lambda: not (termios.tcgetattr(slave)[3] & termios.ICANON), 5,
                 what="raw mode")
        assert not termios.tcgetattr(slave)[3] & termios.ISIG  # Ctrl-C goes to the guest
        os.write(master, b"\x03")  # Ctrl-C: for the guest, not a signal
        time.sleep(0.3)
        assert p.poll() is None
        os.write(master, b"\x01x")
        assert p.wait(10) == 0
        assert termios.tcgetattr(slave) == before  # given back as it was
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def test_reset_paths(env):
    for name, code in (("i8042", I8042_RESET), ("cf9", CF9_RESET)):
        k = elf_kernel(os.path.join(env.dir, name), code)
        vm = env.start(name, "--kernel", k, wait=False)
        assert vm.wait_exit() == 12, vm.stderr()
        assert "guest rebooted" in vm.stderr()
    # --on-reboot restart: a fresh boot each time, same process and name.
    k = elf_kernel(os.path.join(env.dir, "loop"), out_str("booted\n") + I8042_RESET)
    vm = env.start("again", "--kernel", k, "--on-reboot", "restart", wait=False)
    wait_for(lambda: vm.stderr().count("restarting it") >= 3, 20, what="three restarts")
    assert vm.proc.poll() is None
    vm.proc.send_signal(signal.SIGTERM)
    assert vm.wait_exit() == 0


def test_acpi_poweroff(env):
    k = elf_kernel(os.path.join(env.dir, "off"), out_str("bye\n") + ACPI_POWEROFF)
    vm = env.start("off", "--kernel", k, wait=False)
    assert vm.wait_exit() == 0, vm.stderr()
    assert "guest powered off" in vm.stderr() and "bye" in vm.console_text()


def test_ctl_poweroff_presses_the_power_button(env):
    # `ctl poweroff` on a Linux guest is the ACPI power button: PWRBTN_STS
    # and the SCI, which the guest's handler answers by powering off.
    k = os.environ["KVMHOST_PWRBTN_KERNEL"]
    vm = env.start("button", "--kernel", k, "--cpus", "1", heartbeats=False)
    wait_for(lambda: "pwrbtn: ready" in vm.console_text(), 20, what="the kernel to enable PWRBTN_EN")
    time.sleep(0.2)
    assert "pressed" not in vm.console_text()  # nothing pressed it yet
    assert vm.ctl("poweroff").returncode == 0
    assert vm.wait_exit(20) == 0
    text = vm.console_text()
    assert "pwrbtn: pressed" in text, text
    assert "spurious" not in text
    # Pressed as soon as the VM answers, maybe before the guest enabled the
    # event: a press stays pending in PWRBTN_STS (unit-tested in test_acpi),
    # so it powers off either way.
    vm = env.start("button2", "--kernel", k, "--cpus", "1", heartbeats=False)
    assert vm.ctl("poweroff").returncode == 0
    assert vm.wait_exit(20) == 0
    assert "pwrbtn: pressed" in vm.console_text()


def test_synthetic_kernels_across_a_snapshot(env):
    # Interrupts: the power-button kernel's IDT, IOAPIC route and PWRBTN_EN
    # must all come back for the SCI to reach its handler.
    k = os.environ["KVMHOST_PWRBTN_KERNEL"]
    vm = env.start("pb", "--kernel", k, "--cpus", "1", heartbeats=False)
    wait_for(lambda: "pwrbtn: ready" in vm.console_text(), 20, what="the kernel to be ready")
    snap = os.path.join(env.dir, "pb.kvmh")
    assert vm.ctl("save", snap).returncode == 0 and vm.wait_exit(20) == 0
    vm = env.start("pb", "--restore", snap, heartbeats=False)
    assert vm.ctl("poweroff").returncode == 0
    assert vm.wait_exit(20) == 0
    assert "pwrbtn: pressed" in vm.console_text(), vm.console_text()
    # Serial input: the echo kernel, mid-loop, answers after a restore too.
    k = elf_kernel(os.path.join(env.dir, "echo"), ECHO)
    rundir = env.env["KVMHOST_RUNDIR"]
    snap = os.path.join(env.dir, "echo.kvmh")
    for args, line in ((["--kernel", k, "--cpus", "1"], b"before the save\n"),
                       (["--restore", snap], b"after the restore\n")):
        p = subprocess.Popen([KVMHOST, "run", "--name", "echo", *args], env=env.env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            wait_for(lambda: os.path.exists(os.path.join(rundir, "echo.sock")), 10,
                     what="the VM to listen")
            echoed(p, line)
            if args[0] == "--kernel":
                assert env.run("ctl", "echo", "save", snap).returncode == 0
            else:
                p.stdin.write(b"\x01x")
                p.stdin.flush()
            assert p.wait(20) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


# Single-threaded TCG, the test host's default, taking two or more CPUs in
# turn now and then delivers an interrupt twice into a nested guest, with
# interrupts off; Linux then stalls in early init (DEVELOPERS.md). With one
# CPU it does not, nor with multi-threaded TCG: tools/run-tests.sh runs these
# in a test host with one CPU; natively they run anywhere.
LINUX_STALLS_IN_TESTHOST = (
    "single-threaded TCG with more than one CPU delivers interrupts twice and stalls Linux "
    "in early init (DEVELOPERS.md); run in a test host with --cpus 1 or --tcg-threads multi")


def linux_to_user_space_here():
    if not SINGLE_TCG:
        return
    with open("/sys/devices/system/cpu/present") as f:
        if f.read().strip() != "0":
            skip(LINUX_STALLS_IN_TESTHOST)


def test_debian_kernel_across_a_snapshot(env):
    linux_to_user_space_here()
    # Saved early in its boot; restored, it prints what it had not yet
    # printed, up to its APs coming up. How far it got before the save
    # depends on the host (seconds to the banner where ring 0 is emulated,
    # past it in the test host).
    k = debian_kernel()
    vm = env.start("deb", "--kernel", k, "--memory", "256", "--cpus", "2",
                   "--cmdline", "earlyprintk=ttyS0 console=ttyS0", heartbeats=False)
    snap = os.path.join(env.dir, "deb.kvmh")
    assert vm.ctl("save", snap).returncode == 0 and vm.wait_exit(30) == 0
    before = vm.console_text()
    milestones = ("Linux version", "smpboot: Allowing 2 CPUs", "smp: Brought up 1 node, 2 CPUs")
    assert milestones[-1] not in before, before[-2000:]
    vm = env.start("deb", "--restore", snap, heartbeats=False)
    for m in milestones:
        if m not in before:
            wait_for(lambda: m in vm.console_text(), 300, interval=0.5,
                     what=f"'{m}' after the restore")
    assert vm.ctl("quit").returncode == 0


def test_bad_kernels(env):
    def expect(args, code, needle):
        p = env.run("run", "--console", "none", *args, timeout=60)
        assert p.returncode == code, (args, p.returncode, p.stderr)
        assert needle in p.stderr, (args, p.stderr)

    txt = os.path.join(env.dir, "notes.txt")
    with open(txt, "w") as f:
        f.write("not a kernel\n" * 100)
    expect(["--kernel", os.path.join(env.dir, "nope")], 6, "No such file")
    expect(["--kernel", txt], 6, "bad magic")
    expect(["--kernel", env.dir], 6, "not a regular file")
    elf = elf_kernel(os.path.join(env.dir, "e"), HALT)
    expect(["--kernel", elf, "--kernel-decompress", "guest"], 6, "needs a bzImage")
    expect(["--kernel", elf, "--initrd", os.path.join(env.dir, "none")], 6, "No such file")
    expect(["--initrd", txt], 2, "need --kernel")
    expect(["--kernel", elf, "--kernel-decompress", "maybe"], 2, "host or guest")
    expect(["--kernel", elf, "--cmdline", "x" * 5000], 6, "--cmdline: too long")
    big = elf_kernel(os.path.join(env.dir, "big"), b"\x90" * (20 << 20))
    expect(["--kernel", big, "--memory", "16"], 6, "does not fit in memory")


def test_debian_kernel_banner(env):
    k = debian_kernel()
    # A truncated copy of it is refused.
    cut = os.path.join(env.dir, "cut")
    with open(k, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(2 << 20))
    p = env.run("run", "--console", "none", "--kernel", cut)
    assert p.returncode == 6 and "truncated" in p.stderr, p.stderr
    # Decompressing itself, a truncated image would triple-fault: refused too.
    p = env.run("run", "--console", "none", "--kernel", cut, "--kernel-decompress", "guest")
    assert p.returncode == 6 and "promises" in p.stderr, p.stderr
    img = env.image("root.img", 8 << 20)
    # With a net too, inside a namespace of its own: it is on the command line.
    ns = NetNS(env, "lx")
    vm = env.start("debian", "--kernel", k, "--memory", "256", "--cpus", "2", "--disk", img,
                   "--net", "tap=kl0", "--cmdline", "earlyprintk=ttyS0 console=ttyS0",
                   heartbeats=False, prefix=ns.prefix)
    assert "decompressed by kvmhost" in vm.stderr()
    wait_for(lambda: "Linux version" in vm.console_text(), 120, interval=0.5,
             what="the Linux banner")
    ram_line = "BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable"
    wait_for(lambda: ram_line in vm.console_text(), 60, interval=0.5, what="the e820 map")
    text = vm.console_text()
    # The devices are in the DSDT, not on the command line: a kernel with
    # CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES would probe each twice.
    assert re.search(r"Command line: earlyprintk=ttyS0 console=ttyS0\r?\n", text), text[:2000]
    assert "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved" in text
    # Our ACPI tables: the kernel finds its two CPUs in the MADT (Debian's
    # kernels ignore MP tables) and the power-off path in FADT and DSDT.
    wait_for(lambda: "smpboot: Allowing" in vm.console_text(), 120, interval=0.5,
             what="the kernel's CPU count")
    text = vm.console_text()
    for table in ("RSDP", "XSDT", "FACP", "DSDT", "FACS", "APIC"):
        assert f"ACPI: {table} 0x" in text, table
    assert "Using ACPI (MADT) for SMP configuration" in text
    assert "smpboot: Allowing 2 CPUs" in text
    # The rest of kvmhost works with a Linux guest as with its own.
    assert vm.status()["state"] == "running"
    ctl(vm, "pause")
    assert vm.status()["state"] == "paused"
    ctl(vm, "resume")
    ctl(vm, "host-sleep", "prepare")
    st = vm.status()
    assert st["state"] == "host-sleep" and st["disks"][0]["host_flushes"] == 1
    ctl(vm, "host-sleep", "resume")
    last = max(os.sched_getaffinity(0))  # 0 where the test host has one CPU
    ctl(vm, "pin", f"0=0,1={last}")
    assert [v["pinned"] for v in vm.status()["vcpus"]] == [[0], [last]]
    size = len(vm.console_text())
    wait_for(lambda: len(vm.console_text()) > size, 60, interval=0.5,
             what="the kernel to go on printing after all that")
    assert vm.ctl("quit").returncode == 0
    assert vm.wait_exit() == 0
    # With ACPI off, the command line is where the kernel can learn of them.
    off = env.start("acpi-off", "--kernel", k, "--memory", "256", "--disk", img, "--net",
                    "tap=kl1", "--cmdline", "earlyprintk=ttyS0 acpi=off", heartbeats=False,
                    prefix=ns.prefix)
    wait_for(lambda: "Command line:" in off.console_text(), 120, interval=0.5,
             what="the kernel's command line")
    # The line may still be arriving: wait for its end, then check it whole.
    wait_for(lambda: "\n" in off.console_text().split("Command line:", 1)[1], 30,
             interval=0.2, what="the rest of the command line")
    line = off.console_text().split("Command line:", 1)[1].split("\n", 1)[0]
    assert line.strip() == ("earlyprintk=ttyS0 acpi=off virtio_mmio.device=4K@0xd0000000:5 "
                            "virtio_mmio.device=4K@0xd0008000:16"), line
    off.kill()


SILENT_S = 45


def boot_to_init(env, args, stdin=subprocess.PIPE):
    """Runs kvmhost with args until the initramfs prints INIT_MARKER;
    returns (process, console so far). A console silent for SILENT_S is a
    boot that stalled: said with its last line."""
    p = subprocess.Popen([KVMHOST, "run", *args], env=env.env, stdin=stdin,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got, last = b"", time.monotonic()
    while INIT_MARKER.encode() not in got and time.monotonic() - last < SILENT_S:
        if select.select([p.stdout], [], [], 1)[0]:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            got, last = got + chunk, time.monotonic()
    if INIT_MARKER.encode() in got:
        return p, got
    p.kill()
    p.wait()
    lines = got.decode(errors="replace").strip().splitlines()
    raise AssertionError(f"no /init (exit {p.returncode}); last line: {lines[-1:]}")


def test_full_boot_busybox(env):
    linux_to_user_space_here()
    per = ring0_ns_per_iteration(env)
    if per > 20:
        skip(f"guest ring 0 is emulated here ({per:.0f} ns per loop iteration; native is ~1): "
             "a full Linux boot would take hours")
    # Debian builds virtio_mmio, virtio_blk and the ACPI button driver as
    # modules: loaded from the initramfs, they must find the disk our DSDT
    # describes and the fixed power button our FADT does.
    mods = debian_modules(["button", "virtio_mmio", "virtio_blk"])
    cpio = busybox_initramfs(env.dir, "mount -t devtmpfs dev /dev\n"
                             "dmesg | grep -e 'Power Button' -e vda\n"
                             f"echo {INIT_MARKER}\nread line\necho \"got: $line\"\n"
                             "echo \"$line\" | dd of=/dev/vda bs=512 count=1 conv=sync,fsync\n"
                             "poweroff -f\n", modules=mods)
    img = env.image("vda.img", 1 << 20)
    p, got = boot_to_init(env, ["--name", "full", "--kernel", debian_kernel(), "--initrd", cpio,
                                "--memory", "512", "--cpus", "2", "--disk", img, "--cmdline",
                                "console=ttyS0 panic=-1"])
    try:
        assert b"LNXPWRBN" in got, got[-2000:]
        assert re.search(rb"virtio_blk virtio\d+: \[vda\]", got), got[-3000:]
        p.stdin.write(b"hello disk\n")
        p.stdin.flush()
        assert p.wait(60) == 0  # poweroff -f: ACPI S5 through PM1a
        with open(img, "rb") as f:
            assert f.read(11) == b"hello disk\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main([test_synthetic_kernel_console, test_no_test_device_for_linux, test_ap_started_by_init_sipi,
          test_console_input, test_terminal_raw_and_restored,
          test_reset_paths, test_acpi_poweroff, test_ctl_poweroff_presses_the_power_button,
          test_synthetic_kernels_across_a_snapshot, test_debian_kernel_across_a_snapshot,
          test_bad_kernels, test_debian_kernel_banner, test_full_boot_busybox])
