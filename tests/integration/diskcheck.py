"""Reads the built-in guest's disk pattern back from the host: every 4 KiB
block is (magic, block number, generation, ..., checksum)."""
import struct

MAGIC = 0x2174736F686D766B  # "kvmhost!"
MASK = (1 << 64) - 1


def block_ok(data, block, gen):
    w = struct.unpack("<512Q", data)
    s = 0
    for x in w[:511]:
        s = (s * 31 + x) & MASK
    return w[0] == MAGIC and w[1] == block and w[2] == gen and w[511] == s


def verify_image(path, blocks, gen):
    """Returns the block numbers among the first `blocks` that are not intact."""
    bad = []
    with open(path, "rb") as f:
        for b in range(blocks):
            data = f.read(4096)
            if len(data) != 4096 or not block_ok(data, b, gen):
                bad.append(b)
    return bad
