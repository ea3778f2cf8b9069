"""The control socket survives malformed, oversized, unknown and abandoned
requests; the VM keeps running through all of them."""
import os
import queue
import shutil
import socket
import stat
import subprocess
import threading
import time

from kvmtest import KVMHOST, SLOWDOWN, advancing, main, read_line, wait_for
import json


def raw(vm, data, timeout=5):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(vm.sock)
        s.sendall(data)
        return json.loads(read_line(s))


def test_socket_mode(env):
    vm = env.start("m")
    assert stat.S_IMODE(os.stat(vm.sock).st_mode) == 0o600


def test_malformed_requests(env):
    vm = env.start("bad")
    for data in [b"hello\n", b"{\n", b"[]\n", b"{}\n", b'{"cmd": 1}\n', b'{"cmd":"x"}\n',
                 b'{"cmd":"status"} trailing\n', b'{"cmd":"status","args":7}\n',
                 b"\x00\xff\xfe\n", b"[" * 10000 + b"\n"]:
        r = raw(vm, data)
        assert r["ok"] is False and r["error"], (data[:40], r)
    r = raw(vm, b'{"cmd":"fly","id":3}\n')
    assert r == {"ok": False, "id": 3, "error": "unknown command 'fly'"}
    # Strict JSON, and nothing a reply would echo that is not valid UTF-8
    # (raw() parses the reply: an invalid one would fail right there).
    for data, why in [(b'{"cmd":"status\\u0000"}\n', "NUL"),
                      (b"{'cmd':'status'}\n", "malformed"),
                      (b'{"cmd":"status",}\n', "malformed"),
                      (b'{"cmd":"st\xffatus"}\n', "malformed"),
                      (b"null\n", "must be a JSON object")]:
        r = raw(vm, data)
        assert r["ok"] is False and why in r["error"], (data, r)
    # 81 bytes of UTF-8: quoted back cut at 64, which falls inside a character.
    r = raw(vm, ('{"cmd":"a' + "\u00e9" * 40 + '"}\n').encode())
    assert r["ok"] is False and r["error"].startswith("unknown command"), r
    assert advancing(vm)


def test_oversized_request(env):
    vm = env.start("big")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(vm.sock)
        try:
            s.sendall(b"x" * 200000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = json.loads(read_line(s))
        assert r["ok"] is False and "too long" in r["error"]
    assert vm.status()["state"] == "running"


def test_idle_and_vanishing_clients(env):
    vm = env.start("idle")
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(5)]
    for s in idle:
        s.connect(vm.sock)  # connect and never send
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(vm.sock)
    half.sendall(b'{"cmd":"sta')  # disconnect mid-request
    half.close()
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    gone.connect(vm.sock)
    gone.sendall(b'{"cmd":"status"}\n')
    gone.close()  # never reads its reply
    # Others are served all the while, and the guest runs.
    for _ in range(5):
        assert vm.status()["state"] == "running"
    assert advancing(vm)
    for s in idle:
        s.close()


def test_idle_client_dropped_subscriber_kept(env):
    env.env["KVMHOST_CLIENT_IDLE_MS"] = "300"  # 30 s unless told otherwise
    vm = env.start("drop")
    with socket.socket(socket.AF_UNIX) as idle, socket.socket(socket.AF_UNIX) as sub:
        idle.settimeout(5)
        sub.settimeout(5)
        idle.connect(vm.sock)
        sub.connect(vm.sock)
        sub.sendall(b'{"cmd":"subscribe"}\n')
        f = sub.makefile("r")
        assert json.loads(f.readline())["ok"]
        t = time.monotonic()
        assert idle.recv(100) == b""  # the silent client is hung up on...
        assert 0.2 < time.monotonic() - t < 4
        time.sleep(0.5)
        vm.request({"cmd": "pause"})  # ...the subscriber still gets events
        assert json.loads(f.readline())["event"] == "paused"


def test_several_requests_one_connection(env):
    vm = env.start("multi")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(vm.sock)
        s.sendall(b'{"cmd":"pause","id":1}\n{"cmd":"status","id":2}\n{"cmd":"resume","id":3}\n')
        f = s.makefile("r")
        replies = [json.loads(f.readline()) for _ in range(3)]
    assert [r["id"] for r in replies] == [1, 2, 3]
    assert replies[1]["result"]["state"] == "paused"
    assert replies[2]["result"]["state"] == "running"


def test_ctl_events_cli(env):
    vm = env.start("evcli")
    p = subprocess.Popen([KVMHOST, "ctl", "evcli", "events"], env=env.env,
                         stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(l)["event"]) for l in p.stdout],
                     daemon=True).start()

    def pause_resume():
        vm.request({"cmd": "pause"})
        vm.request({"cmd": "resume"})

    def quiet():  # nothing more arrives for a while
        time.sleep(0.3 * SLOWDOWN)
        seen = not lines.empty()
        while not lines.empty():
            lines.get()
        return not seen
    try:
        # Subscribed once its events arrive (starting it takes seconds in the test host).
        wait_for(lambda: pause_resume() or not quiet(), 10, what="the client to subscribe")
        wait_for(quiet, 10, what="the events to stop")
        pause_resume()
        got = [lines.get(timeout=10 * SLOWDOWN) for _ in range(2)]
        assert got == ["paused", "resumed"], got
        vm.ctl("quit")
        assert p.wait(10) == 0  # ends with the VM
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_install_puts_the_sleep_hook_in_place(env):
    build = os.path.dirname(os.path.abspath(KVMHOST))
    dest = os.path.join(env.dir, "root")
    r = subprocess.run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild",
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    hooks = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
             if d.endswith("lib/systemd/system-sleep")]
    assert len(hooks) == 1 and os.access(hooks[0], os.X_OK), hooks
    bins = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs if f == "kvmhost"
            and d.endswith("bin")]
    assert bins, "kvmhost not installed"
    installed = {os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest)
                 for f in fs}
    unit = [p for p in installed if p.endswith("lib/systemd/system/kvmhost@.service")]
    assert unit, sorted(installed)
    with open(os.path.join(dest, unit[0])) as f:  # points at the installed binary
        assert "ExecStart=" + os.path.join("/", os.path.relpath(bins[0], dest)) in f.read()
    assert any(p.endswith("bash-completion/completions/kvmhost") for p in installed)
    if shutil.which("scdoc"):
        assert any(p.endswith("man1/kvmhost.1") for p in installed), sorted(installed)


def test_regs_broadcast(env):
    # A broadcast request: every vCPU reads its own registers on its thread.
    vm = env.start("regs", "--cpus", "3")
    for paused in (False, True):
        if paused:
            vm.request({"cmd": "pause"})
        r = vm.request({"cmd": "regs"})
        assert r["ok"], r
        regs = r["result"]
        assert [x["index"] for x in regs] == [0, 1, 2]
        rsps = [int(x["rsp"], 16) for x in regs]
        for x in regs:
            assert 0x100000 <= int(x["rip"], 16) < 0x110000, x
            assert x["cr3"] == "0x9000" and x["efer"] == "0x500", x
        # Each vCPU runs on its own 4 KiB guest stack, one after the other
        # (page-aligned, so rsp - 1 falls in the stack's own page).
        pages = [(r - 1) // 0x1000 for r in rsps]
        assert pages == [pages[0], pages[0] + 1, pages[0] + 2], [hex(r) for r in rsps]
    vm.request({"cmd": "resume"})
    assert advancing(vm)


def test_events(env):
    vm = env.start("ev")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(vm.sock)
        s.sendall(b'{"cmd":"subscribe"}\n')
        f = s.makefile("r")
        assert json.loads(f.readline())["ok"]
        vm.request({"cmd": "pause"})
        vm.request({"cmd": "resume"})
        evs = [json.loads(f.readline())["event"] for _ in range(2)]
    assert evs == ["paused", "resumed"]
    time.sleep(0.05)


if __name__ == "__main__":
    main([test_socket_mode, test_malformed_requests, test_oversized_request,
          test_idle_and_vanishing_clients, test_idle_client_dropped_subscriber_kept,
          test_several_requests_one_connection, test_ctl_events_cli,
          test_install_puts_the_sleep_hook_in_place, test_regs_broadcast, test_events])
