"""Bad input gets a clear error and a distinct exit status, never a crash."""
import os
import shutil
import subprocess

from kvmtest import KVMHOST, main, skip


def expect(env, args, code, needle):
    p = env.run(*args)
    assert p.returncode == code, (args, p.returncode, p.stderr)
    assert needle in p.stderr, (args, p.stderr)
    assert "Sanitizer" not in p.stderr and "Segmentation" not in p.stderr


def test_bad_options(env):
    expect(env, ["run", "--cpus", "0"], 2, "out of range")
    expect(env, ["run", "--cpus", "many"], 2, "not a number")
    expect(env, ["run", "--cpus", "300", "--console", "none"], 2, "at most")
    expect(env, ["run", "--memory", "0"], 2, "out of range")
    expect(env, ["run", "--memory", "lots"], 2, "not a number")
    expect(env, ["run", "--memory", "99999999999"], 2, "out of range")
    expect(env, ["run", "--memory", "1000000", "--console", "none"], 2, "more than this host")
    expect(env, ["run", "--frobnicate"], 2, "unknown option")
    expect(env, ["run", "--name", "a/b"], 2, "not a valid name")
    expect(env, ["run", "--cpu-pin", "0=4096"], 2, "not a host CPU list")
    expect(env, ["run", "--cpu-pin", "0=1000"], 2, "does not exist")
    expect(env, ["run", "--cpus", "1", "--cpu-pin", "1=0"], 2, "does not exist")
    expect(env, ["run", "--console", "/nonexistent-dir/x"], 2, "No such file")
    expect(env, ["run", "--device", "gpu"], 2, "no device kind 'gpu' (there are: rng)")
    expect(env, ["run", "--device", "rng,fast", "--console", "none"], 2, "takes no options")
    expect(env, ["nonsense"], 2, "unknown command")
    expect(env, ["ctl"], 2, "usage")
    expect(env, ["ctl", "x", "dance"], 2, "unknown command")
    expect(env, ["ctl", "nosuchvm", "status"], 1, "no VM named 'nosuchvm'")
    expect(env, ["list", "--yaml"], 2, "unknown argument")


def stub_sysfs(env, online):
    # A fake sysfs where CPUs 0-1 exist and only `online` are online.
    root = os.path.join(env.dir, "sysfs")
    os.makedirs(root, exist_ok=True)
    for f, v in {"present": "0-1", "online": online, "possible": "0-1"}.items():
        with open(os.path.join(root, f), "w") as fh:
            fh.write(v + "\n")
    env.env["KVMHOST_SYSFS_CPU"] = root


def test_pin_to_missing_cpu_in_stub_sysfs(env):
    stub_sysfs(env, "0")
    p = env.run("run", "--cpu-pin", "0=5", "--console", "none")
    assert p.returncode == 2 and "host CPU 5 does not exist" in p.stderr, p.stderr


def test_pin_to_offline_cpu_follows_policy(env):
    # CPU 1 exists but is offline (says the stub): a warning, not an error;
    # the vCPU runs on the fallback and shows as displaced.
    stub_sysfs(env, "0")
    vm = env.start("stub", "--cpus", "2", "--cpu-pin", "0=1,1=0")
    assert "host CPU 1 is offline" in vm.stderr()
    v = vm.status()["vcpus"]
    assert v[0]["displaced"] is True and v[0]["desired"] == [1] and v[0]["pinned"] == [0], v
    assert v[1]["displaced"] is False and v[1]["pinned"] == [0]
    assert vm.status()["host_cpus"]["hotplug"] is False  # a stub tree cannot hotplug


def test_name_in_use(env):
    env.start("dup")
    p = env.run("run", "--name", "dup", "--console", "none", timeout=10)
    assert p.returncode == 4, p
    assert "already running" in p.stderr
    assert [v["name"] for v in env.list()] == ["dup"]


def test_no_permission_for_kvm(env):
    if os.geteuid() != 0:
        skip("needs root to drop to another user")
    runuser = shutil.which("setpriv")
    if not runuser:
        skip("setpriv not installed")
    os.chmod(env.dir, 0o777)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", KVMHOST,
                        "run", "--console", "none"],
                       env=dict(env.env, KVMHOST_RUNDIR=os.path.join(env.dir, "nobody")),
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 3, p
    assert "no permission to open /dev/kvm" in p.stderr


def test_missing_kvm(env):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip("needs root and unshare for a private /dev")
    # A mount namespace whose /dev has no kvm node.
    script = f"mount -t tmpfs none /dev && exec {KVMHOST} run --console none"
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       env=env.env, capture_output=True, text=True, timeout=10)
    assert p.returncode == 3, p
    assert "/dev/kvm does not exist" in p.stderr


def test_fifos_and_option_limits(env):
    # A FIFO where a file belongs is refused at once, never waited on.
    fifo = os.path.join(env.dir, "fifo")
    os.mkfifo(fifo)
    k = os.environ["KVMHOST_PWRBTN_KERNEL"]
    for args, code in ((["--kernel", fifo], 6), (["--kernel", k, "--initrd", fifo], 6),
                       (["--disk", fifo], 5), (["--disk", fifo + ",ro"], 5)):
        p = env.run("run", "--console", "none", *args, timeout=10)
        assert p.returncode == code and "not a regular file" in p.stderr, (args, p.stderr)
    expect(env, ["run", "--vmm-cpus", "99"], 2, "host CPU 99 does not exist")
    # The kernel says how long a command line may be: too long is a kernel
    # that cannot be booted (6), as README says.
    expect(env, ["run", "--console", "none", "--kernel", k, "--cmdline", "x" * 5000], 6,
           "too long")
    # More vCPUs than host CPUs is overcommit, which VMMs allow: it runs.
    vm = env.start("over", "--cpus", "3")
    assert len(vm.status()["vcpus"]) == 3
    # More than KVM (or the built-in guest's 256) allows is a usage error.
    expect(env, ["run", "--console", "none", "--cpus", "300"], 2, "at most")


def test_help_matches_readme(env):
    # One usage text: what --help prints is README's usage block, line for line.
    p = env.run("--help")
    assert p.returncode == 0, p.stderr
    usage = p.stdout.split("usage:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme) as f:
        text = f.read()
    block = text.split("## Using it", 1)[1].split("```", 2)[1]
    lines = [l for l in block.splitlines()[1:] if l.strip()]  # after the fence's language
    assert lines == usage, "\n".join(["README:"] + lines + ["--help:"] + usage)
    for option in ("--guest-mode", "ring0-bench", "ctl NAME pin", "--disk-generation"):
        assert option in p.stdout, option
    # `run --help` prints the same.
    assert env.run("run", "--help").stdout == p.stdout


if __name__ == "__main__":
    main([test_bad_options, test_help_matches_readme, test_fifos_and_option_limits, test_pin_to_missing_cpu_in_stub_sysfs,
          test_pin_to_offline_cpu_follows_policy, test_name_in_use,
          test_no_permission_for_kvm, test_missing_kvm])
