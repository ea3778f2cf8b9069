#!/usr/bin/env python3
"""Embeds a binary file as a C array: bin2c.py INPUT OUTPUT.c SYMBOL"""
import sys

data = open(sys.argv[1], "rb").read()
sym = sys.argv[3]
with open(sys.argv[2], "w") as f:
    f.write("#include <stddef.h>\n\n")
    f.write(f"const unsigned char {sym}[] __attribute__((aligned(16))) = {{\n")
    for i in range(0, len(data), 16):
        f.write("\t" + ", ".join(f"0x{b:02x}" for b in data[i : i + 16]) + ",\n")
    f.write("};\n")
    f.write(f"const size_t {sym}_size = {len(data)};\n")
