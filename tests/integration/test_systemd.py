"""What a systemd set-up and a user at a shell get: READY=1 and STOPPING=1
through sd_notify, a unit that systemd-analyze accepts, a man page that
names every option --help does, and bash completion of VM names."""
import os
import re
import shutil
import socket
import subprocess

from kvmtest import KVMHOST, main, skip

SRC = os.path.join(os.path.dirname(__file__), "..", "..")


def test_notify_ready_and_stopping(env):
    path = os.path.join(env.dir, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    env.env["NOTIFY_SOCKET"] = path
    vm = env.start("notified")
    msg = s.recv(4096).decode()
    assert "READY=1" in msg and f"MAINPID={vm.proc.pid}" in msg, msg
    assert vm.status()["state"] == "running"  # READY came with the socket listening
    assert vm.ctl("quit").returncode == 0
    msg = s.recv(4096).decode()
    assert "STOPPING=1" in msg, msg
    assert vm.wait_exit() == 0
    s.close()


def test_unit_verifies(env):
    if not shutil.which("systemd-analyze"):
        skip("systemd-analyze is not installed")
    with open(os.path.join(SRC, "contrib", "systemd", "kvmhost@.service")) as f:
        unit = f.read()
    bindir = os.path.dirname(os.path.abspath(KVMHOST))
    good = os.path.join(env.dir, "kvmhost@vm1.service")
    with open(good, "w") as f:
        f.write(unit.replace("@BINDIR@", bindir))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", good], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Type=notify" in unit and "ExecStop=" in unit
    # The check can fail: the same unit pointing at no binary does.
    bad = os.path.join(env.dir, "kvmhost@vm2.service")
    with open(bad, "w") as f:
        f.write(unit.replace("@BINDIR@", "/nonexistent"))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", bad], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode != 0


def test_man_page_names_every_option(env):
    page = os.path.join(os.path.dirname(os.path.abspath(KVMHOST)), "kvmhost.1")
    if not os.path.exists(page):
        skip("scdoc is not installed: no man page was built")
    with open(page) as f:
        man = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "")
    options = set(re.findall(r"--[a-z][a-z0-9-]+", env.run("--help").stdout))
    missing = sorted(o for o in options if o not in man)
    assert not missing, missing
    assert man.startswith(".\\\"") or ".TH" in man


def test_bash_completion(env):
    if not shutil.which("bash"):
        skip("no bash")
    env.start("web-1")
    env.start("db")
    script = os.path.join(SRC, "contrib", "bash-completion", "kvmhost")

    def complete(*words):
        line = " ".join(words)
        cmd = (f"source {script}; COMP_WORDS=({line} ''); COMP_CWORD={len(words)}; "
               "_kvmhost; printf '%s\\n' \"${COMPREPLY[@]}\"")
        p = subprocess.run(["bash", "-c", cmd], env=env.env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return set(p.stdout.split())

    assert {"run", "ctl", "list"} <= complete("kvmhost")
    assert complete("kvmhost", "ctl") == {"--all", "web-1", "db"}
    assert "save" in complete("kvmhost", "ctl", "db")
    assert {"--restore", "--cpu-pin", "--on-host-shutdown"} <= complete("kvmhost", "run")
    # `discard` offers the managed saves in the state directory.
    os.makedirs(env.statedir, exist_ok=True)
    open(os.path.join(env.statedir, "old.kvmh"), "wb").close()
    assert complete("kvmhost", "discard") == {"old"}


if __name__ == "__main__":
    main([test_notify_ready_and_stopping, test_unit_verifies, test_man_page_names_every_option,
          test_bash_completion])
