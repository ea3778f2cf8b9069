"""The sandbox, seen from outside: every thread of a running VM is under a
seccomp filter (`Seccomp: 2` in /proc), with no_new_privs; `--user` drops to
that user (uid, gid, no capabilities) and the control socket still takes
root and that user only; an ordinary user in a group that may open KVM runs
a VM with a disk, and is told what is off; `--sandbox off` says so loudly."""
import grp
import os
import shutil
import stat
import subprocess
import time

from kvmtest import KVMHOST, main, require_root, skip, wait_for

NOBODY = 65534


# KVM's own kernel thread for the VM (NX huge page recovery), in the VM's
# thread group since Linux 6.x: kernel code only, with the creator's
# credentials of the moment it was made. Not a thread of ours.
KERNEL_THREADS = ("kvm-nx-lpage-re",)


def task_status(pid):
    """{tid: {field: value}} from /proc/PID/task/*/status, ours only."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = {}
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            fields["comm"] = f.read().strip()
        if fields["comm"] not in KERNEL_THREADS:
            out[tid] = fields
    return out


def all_filtered(pid, min_threads):
    tasks = task_status(pid)
    assert len(tasks) >= min_threads, tasks.keys()
    for tid, t in tasks.items():
        assert t["Seccomp"] == "2", (tid, t["comm"], t["Seccomp"])
        assert t["NoNewPrivs"] == "1", (tid, t["comm"])
    return tasks


def test_every_thread_filtered(env):
    disk = env.image("d.img", 8 << 20)
    vm = env.start("sb", "--cpus", "3", "--disk", disk)
    tasks = all_filtered(vm.proc.pid, 4)
    assert sum(t["comm"].startswith("vcpu") for t in tasks.values()) == 3
    # What the filters let through still works: pause, status, save.
    assert vm.ctl("pause").returncode == 0 and vm.ctl("resume").returncode == 0
    p = vm.ctl("save", os.path.join(env.dir, "sb.kvmh"), "--keep-running")
    assert p.returncode == 0, p.stderr
    assert vm.ctl("quit").returncode == 0 and vm.wait_exit() == 0
    assert "sandbox" not in vm.stderr()


def test_linux_guest_filtered(env):
    kernel = os.environ.get("KVMHOST_PWRBTN_KERNEL")
    if not kernel or not os.path.exists(kernel):
        skip("the synthetic Linux-protocol kernel was not built")
    vm = env.start("lx", "--cpus", "2", "--kernel", kernel, heartbeats=False)
    time.sleep(1)
    all_filtered(vm.proc.pid, 3)
    assert vm.ctl("poweroff").returncode == 0
    vm.wait_exit(20)
    assert "sandbox" not in vm.stderr()


def test_sandbox_off_says_so(env):
    vm = env.start("off", "--sandbox", "off")
    for t in task_status(vm.proc.pid).values():
        assert t["Seccomp"] == "0"
    assert "--sandbox off: NO seccomp filter" in vm.stderr()
    p = env.run("run", "--sandbox", "maybe")
    assert p.returncode == 2 and "--sandbox" in p.stderr


def as_user(uid, gid, groups, *cmd, env=None):
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                           f"--groups={','.join(map(str, groups))}", "--inh-caps=-all", *cmd],
                          capture_output=True, text=True, env=env, timeout=30)


def open_dirs(env):
    """The test's directories, reachable by another user."""
    for d in (env.dir, env.rundir, env.statedir):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)


def test_user_drops_privileges(env):
    require_root()
    open_dirs(env)
    disk = env.image("u.img", 8 << 20)
    vm = env.start("usr", "--user", "nobody", "--disk", disk)
    tasks = all_filtered(vm.proc.pid, 3)
    for t in tasks.values():
        assert t["Uid"].split() == [str(NOBODY)] * 4, t["Uid"]
        assert t["Gid"].split()[0] == str(NOBODY), t["Gid"]
        assert int(t["CapEff"], 16) == 0 and int(t["CapPrm"], 16) == 0, t["CapEff"]
    assert "runs as nobody" in vm.stderr()
    # Root and nobody may control it; another user may not.
    assert vm.ctl("status").returncode == 0
    p = as_user(NOBODY, NOBODY, [NOBODY], KVMHOST, "ctl", "usr", "pause", env=env.env)
    assert p.returncode == 0, p.stderr
    p = as_user(NOBODY - 1, NOBODY - 1, [NOBODY - 1], KVMHOST, "ctl", "usr", "resume",
                env=env.env)
    assert p.returncode != 0 and "permission denied" in p.stderr, p.stderr
    assert vm.status()["state"] == "paused"
    assert vm.ctl("resume").returncode == 0
    p = env.run("run", "--user", "no-such-user-here")
    assert p.returncode == 2 and "no such user" in p.stderr


def test_ordinary_user_in_a_kvm_group(env):
    require_root()
    if not shutil.which("setpriv") or not shutil.which("groupadd"):
        skip("setpriv or groupadd missing")
    group = f"kvmhost-test-{os.getpid()}"
    subprocess.run(["groupadd", group], check=True)
    env.cleanups.append(lambda: subprocess.run(["groupdel", group]))
    gid = grp.getgrnam(group).gr_gid
    open_dirs(env)
    # A node for the same device, group-owned by the group, 0660: as udev
    # makes /dev/kvm root:kvm.
    node = os.path.join(env.dir, "kvm")
    os.mknod(node, 0o660 | stat.S_IFCHR, os.stat("/dev/kvm").st_rdev)
    os.chown(node, 0, gid)
    os.chmod(node, 0o660)
    disk = env.image("o.img", 32 << 20, owner=NOBODY)
    uenv = dict(env.env, KVMHOST_KVM_DEVICE=node)
    log = os.path.join(env.dir, "user.log")
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", f"--groups={gid}",
           "--inh-caps=-all", KVMHOST, "run", "--name", "plain", "--console", "none",
           "--disk", disk, "--guest-mode", "disk", "--disk-blocks", "64", "--print-every", "0"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=uenv, stdout=f, stderr=subprocess.STDOUT)
    try:
        def ask(*args):
            return as_user(NOBODY, NOBODY, [gid], KVMHOST, "ctl", "plain", *args, env=uenv)
        wait_for(lambda: proc.poll() is not None or ask("status").returncode == 0, 15,
                 what="the VM to answer its user")
        assert proc.poll() is None, open(log).read()
        all_filtered(proc.pid, 2)
        p = ask("status", "--json")
        assert p.returncode == 0, p.stderr
        wait_for(lambda: '"done":true' in ask("status", "--json").stdout.replace(" ", ""), 60,
                 what="the disk workload")
        assert '"errors":0' in ask("status", "--json").stdout.replace(" ", "")
        assert ask("pause").returncode == 0 and ask("resume").returncode == 0
        text = open(log).read()
        assert "cpuset repair is off" in text and "runs as uid 65534" in text, text
        # Without the group it is refused, saying why.
        p = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                            "--clear-groups", KVMHOST, "run", "--console", "none"],
                           env=uenv, capture_output=True, text=True, timeout=30)
        assert p.returncode == 3 and f"no permission to open {node}" in p.stderr, p.stderr
        assert ask("quit").returncode == 0
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "fuzz", "corpus")


def ended_cleanly(vm, code):
    """Up, or ended saying why - never by the sandbox, never by a signal."""
    text = vm.stderr()
    assert code is None or code in (0, 10, 11), (code, text)
    assert "sandbox:" not in text, text


def test_hostile_guests_under_the_sandbox(env):
    disk = env.image("h.img", 8 << 20)
    # Wild port and MMIO accesses: the VM goes on beating.
    vm = env.start("wild", "--guest-mode", "wild-io", "--disk", disk)
    before = vm.heartbeats()
    wait_for(lambda: all(h > b for h, b in zip(vm.heartbeats(), before)), 10, what="beats")
    all_filtered(vm.proc.pid, 3)
    assert vm.ctl("quit").returncode == 0 and vm.wait_exit() == 0
    ended_cleanly(vm, 0)
    # What the virtio-blk fuzz target found, replayed by the guest itself
    # through KVM and the MMIO bus into the sandboxed VMM: every 6th input.
    inputs = sorted(os.listdir(os.path.join(CORPUS, "virtio_blk")))[::6]
    assert len(inputs) >= 20
    replay_inputs(env, "virtio_blk", inputs, ("--disk", disk))


def replay_inputs(env, corpus, inputs, device, prefix=()):
    """Each fuzz input in turn, replayed by the guest (`virtio-replay`)
    against the device `device` adds: the VM stays up or ends saying why."""
    for i, name in enumerate(inputs):
        vm = env.start(f"r{i}", "--memory", "64", *[a.format(i=i) for a in device],
                       "--guest-mode", "virtio-replay", "--guest-blob",
                       os.path.join(CORPUS, corpus, name), wait=False, prefix=prefix)

        def done():
            if vm.proc.poll() is not None:
                return True
            try:
                return vm.status()["guest_replayed_ops"] is not None
            except OSError:
                return False
        wait_for(done, 20, what=f"{name} to be replayed")
        if vm.proc.poll() is None:
            assert vm.status()["state"] == "running"
            assert vm.ctl("quit").returncode == 0
        ended_cleanly(vm, vm.wait_exit())


def test_hostile_control_requests_under_the_sandbox(env):
    """The control protocol's fuzz seeds, and mutations of them, sent to a
    sandboxed VM: it answers or hangs up, and stays up."""
    import random
    import socket
    vm = env.start("ctl")
    seeds = []
    for name in sorted(os.listdir(os.path.join(CORPUS, "protocol"))):
        if name == "save.json":
            continue  # a save ends the VM, as it should
        with open(os.path.join(CORPUS, "protocol", name), "rb") as f:
            seeds.append(f.read().strip())
    rng = random.Random(7)
    for i in range(300):
        line = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(4)):
            if line:
                line[rng.randrange(len(line))] = rng.randrange(256)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(vm.sock)
            s.sendall(bytes(line).replace(b"\n", b" ") + b"\n")
            try:
                s.recv(65536)
            except OSError:
                pass
    assert vm.status()["state"] in ("running", "paused", "host-sleep"), vm.status()["state"]
    assert vm.ctl("quit").returncode == 0 and vm.wait_exit() == 0
    ended_cleanly(vm, 0)


if __name__ == "__main__":
    main([test_every_thread_filtered, test_linux_guest_filtered, test_sandbox_off_says_so,
          test_user_drops_privileges, test_ordinary_user_in_a_kvm_group,
          test_hostile_guests_under_the_sandbox, test_hostile_control_requests_under_the_sandbox])
