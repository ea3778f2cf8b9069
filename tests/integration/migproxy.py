"""A man in the middle for migration tests: relays a source's stream to a
real destination over Unix sockets, optionally slowed down, cut after some
bytes, or with the source's HELLO rewritten (another version, a CPU feature
this host lacks), so the real destination's checks are what is tested."""
import os
import socket
import struct
import threading
import time

HDR = struct.Struct("<IIQ")  # struct mig_msg_hdr
MIG_HELLO = 1


def hello_fields(payload):
    """Offsets in a HELLO payload: version, then the CPUID blob."""
    config_len = struct.unpack_from("<I", payload, 72)[0]
    cpuid_off = 76 + config_len + 4
    return 8, cpuid_off


def set_version(payload, version):
    p = bytearray(payload)
    struct.pack_into("<I", p, 8, version)
    return bytes(p)


def add_cpuid_bit(payload, leaf, reg, bit):
    """Gives the guest's CPUID (struct kvm_cpuid2) a feature bit; returns
    None if the bit is already there."""
    p = bytearray(payload)
    _, off = hello_fields(p)
    nent = struct.unpack_from("<I", p, off)[0]
    for e in range(nent):
        base = off + 8 + e * 40
        fn, idx = struct.unpack_from("<II", p, base)
        if fn == leaf and idx == 0:
            pos = base + 12 + reg * 4
            v = struct.unpack_from("<I", p, pos)[0]
            if v & (1 << bit):
                return None
            struct.pack_into("<I", p, pos, v | (1 << bit))
            return bytes(p)
    return None


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class Proxy:
    def __init__(self, listen_path, target_path, rate=None, cut_after=None, rewrite=None):
        self.listen_path, self.target_path = listen_path, target_path
        self.rate, self.cut_after, self.rewrite = rate, cut_after, rewrite
        self.forwarded = 0
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(listen_path)
        self.lsock.listen(1)
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            src, _ = self.lsock.accept()
        except OSError:
            return
        dst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dst.connect(self.target_path)
        self.conns = [src, dst]
        back = threading.Thread(target=self._pump, args=(dst, src, False), daemon=True)
        back.start()
        try:
            if self.rewrite:
                h = recv_exact(src, HDR.size)
                typ, _, n = HDR.unpack(h)
                payload = self.rewrite(recv_exact(src, n))
                dst.sendall(HDR.pack(typ, 0, len(payload)) + payload)
            self._pump(src, dst, True)
        except OSError:
            pass
        self.close()

    def _pump(self, a, b, forward):
        t0 = time.monotonic()
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
                if not forward:
                    continue
                self.forwarded += len(data)
                if self.cut_after is not None and self.forwarded >= self.cut_after:
                    break
                ahead = self.forwarded / self.rate - (time.monotonic() - t0) if self.rate else 0
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        for s in self.conns + [self.lsock]:
            try:
                s.close()
            except OSError:
                pass
        try:
            os.unlink(self.listen_path)
        except OSError:
            pass
