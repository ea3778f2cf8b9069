"""The real upowerd with a umockdev battery (tests/integration/upower_battery.py)
on a test's private bus. Its history files go to a tmpfs in its own mount
namespace: nothing of the host changes."""
import os
import shutil
import subprocess

from kvmtest import skip

UPOWERD = "/usr/libexec/upowerd"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upower_battery.py")
START = 'mount -t tmpfs tmpfs /var/lib/upower && exec umockdev-wrapper /usr/bin/python3 "$1"'


class RealUPower:
    def __init__(self, bus_env, workdir):
        if os.geteuid() != 0:
            skip("the real upowerd runs in a mount namespace: needs root")
        if not os.access(UPOWERD, os.X_OK) or not shutil.which("umockdev-wrapper"):
            skip("upowerd or umockdev is not installed (apt-get install upower umockdev "
                 "gir1.2-umockdev-1.0 python3-gi)")
        probe = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version("
                                "'UMockdev', '1.0'); from gi.repository import UMockdev"],
                               capture_output=True)
        if probe.returncode:
            skip("no UMockdev for /usr/bin/python3 (apt-get install gir1.2-umockdev-1.0)")
        if not os.path.isdir("/var/lib/upower"):  # the mount point, from Debian's package
            skip("no /var/lib/upower")
        self.log_path = os.path.join(workdir, "upowerd.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                          "sh", "-c", START, "sh", SCRIPT], env=bus_env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, text=True)
        assert self.proc.stdout.readline().strip() == "ready", self.log()

    def level(self, percent, status):
        self.proc.stdin.write(f"level {percent} {status}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().split()[:2] == ["level", str(percent)], self.log()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
