#!/usr/bin/env python3
"""Writes the fuzz_jt809 seed corpus from tests/unit/jt809_vectors.h.

Each seed is two bytes (read split; mode: bit 0 the 2019 edition, bits 1-2 the cipher
constants 0 SmallChi's, 1 GuoJian001's, bit 3 strict), then the stream: every vector alone with
its edition and cipher, and a few streams mixing frames and noise.
Run from the repository root: python3 tests/fuzz/jt809_corpus.py"""
import os
import re

SRC = "tests/unit/jt809_vectors.h"
OUT = "tests/fuzz/corpus/jt809"

text = open(SRC).read()
table = text[text.index("jt809_vectors[] = {"):]
table = table[:table.index("\n};")]
table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
vectors = {}
for m in re.finditer(r'\{"([^"]+)",((?:\s*"[0-9A-Fa-f ]*")+),\s*SC\s*"[^"]*",\s*(\d),\s*(C_\w+)', table):
    wire = bytes.fromhex("".join(re.findall(r'"([^"]*)"', m.group(2))).replace(" ", ""))
    mode = int(m.group(3)) | ({"C_NONE": 0, "C_SC": 0, "C_GJ": 1}[m.group(4)] << 1)
    vectors[m.group(1)] = (wire, mode)

os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    os.remove(os.path.join(OUT, name))


def seed(name, stream, mode, split=None):
    at = len(stream) // 2 if split is None else split
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([at % 256, mode]) + stream)


for name, (wire, mode) in vectors.items():
    seed(name, wire, mode)
    seed(name + "_strict", wire, mode | 8, 5)
gj = b"".join(w for n, (w, m) in vectors.items() if n.startswith("gj_"))
seed("combo_gj", b"\x5d\x00" + gj + b"\x5b\x00\x00", 1 | 2, 77)
sc11 = b"".join(w for n, (w, m) in vectors.items() if not n.startswith("gj_") and m == 0)
seed("combo_2011", b"AT\r\n" + sc11, 0, 31)


# The slave link's answers (for the slave state machine the target also drives): built here,
# plain, for access code 0x00010F3B in both editions: 0x9002 ok, 0x9006, 0x1007, 0x9002 refused,
# 0x9004.
def crc16(b):
    c = 0xFFFF
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def frame(msg_id, body, v19, sn):
    hl = 30 if v19 else 22
    n = 1 + hl + len(body) + 2 + 1
    raw = (n.to_bytes(4, "big") + sn.to_bytes(4, "big") + msg_id.to_bytes(2, "big") +
           (0x00010F3B).to_bytes(4, "big") + b"\x01\x00\x00" + b"\x00" + bytes(4) +
           ((1700000000).to_bytes(8, "big") if v19 else b"") + body)
    raw += crc16(raw).to_bytes(2, "big")
    esc = raw.replace(b"\x5a", b"\x5a\x02").replace(b"\x5b", b"\x5a\x01")
    esc = esc.replace(b"\x5e", b"\x5e\x02").replace(b"\x5d", b"\x5e\x01")
    return b"\x5b" + esc + b"\x5d"


for v19 in (0, 1):
    up = (frame(0x9002, b"\x00", v19, 1) + frame(0x9006, b"", v19, 2) +
          frame(0x1007, b"\x00", v19, 3) + frame(0x9004, b"", v19, 4))
    seed("slave_up_%d" % v19, up, v19, 40)
    seed("slave_refused_%d" % v19, frame(0x9002, b"\x01", v19, 1) + frame(0x9006, b"", v19, 2),
         v19)
print(len(os.listdir(OUT)), "seeds in", OUT)
