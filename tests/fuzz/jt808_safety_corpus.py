#!/usr/bin/env python3
"""Writes the fuzz_jt808_safety seed corpus from tests/unit/test_jt808_safety.c.

Each seed is one byte choosing the item id (0x62 + (byte & 7)), then the item's value; the same
bytes are also walked as a 0x0200 body, so seeds of whole bodies are written too (id byte 0).
Run from the repository root: python3 tests/fuzz/jt808_safety_corpus.py"""
import os
import re

SRC = "tests/unit/test_jt808_safety.c"
OUT = "tests/fuzz/corpus/jt808_safety"

text = open(SRC).read()
fix = re.search(r'#define FIX_HEX "([0-9A-F]+)"', text).group(1)
bodies = {}
for m in re.finditer(r'static const char (\w+)\[\] = FIX_HEX((?:\s*"[0-9A-F]*")+);', text):
    bodies[m.group(1)] = bytes.fromhex(fix + "".join(re.findall(r'"([0-9A-F]*)"', m.group(2))))

os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    if not name.startswith("regress_"):  # inputs that once failed stay as regression seeds
        os.remove(os.path.join(OUT, name))


def seed(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


for name, body in bodies.items():
    item_id, n = body[28], body[29]
    seed(name + "_item", bytes([item_id - 0x62]) + body[30:30 + n])
    seed(name + "_body", bytes([0]) + body)
# Two items in one body, and an item followed by a vendor item.
seed("two_items_body", bytes([0]) + bodies["adas_su"] + bodies["dsm_yue"][28:])
seed("vendor_after_body", bytes([0]) + bodies["tpms_su"] + bytes.fromhex("e103010203"))
print(len(os.listdir(OUT)), "seeds in", OUT)
