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
print(len(os.listdir(OUT)), "seeds in", OUT)
