#!/usr/bin/env python3
"""Writes the fuzz_jt808 seed corpus from tests/unit/jt808_vectors.h.

Each seed is one byte choosing the read split, then the stream: every vector alone, the
sub-packages together, and a few streams mixing frames, shared delimiters and noise.
Run from the repository root: python3 tests/fuzz/jt808_corpus.py"""
import os
import re

SRC = "tests/unit/jt808_vectors.h"
OUT = "tests/fuzz/corpus/jt808"

text = open(SRC).read()
table = text[text.index("jt808_vectors[] = {"):]
table = table[:table.index("\n};")]
table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
vectors = {}
for m in re.finditer(r'\{\s*"([^"]+)",((?:\s*"[0-9A-Fa-f ]*")+)\s*,', table):
    vectors[m.group(1)] = bytes.fromhex("".join(re.findall(r'"([^"]*)"', m.group(2))).replace(" ", ""))

os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    os.remove(os.path.join(OUT, name))


def seed(name, stream, split=None):
    at = len(stream) // 2 if split is None else split
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([at % 256]) + stream)


for name, wire in vectors.items():
    seed(name, wire)
seed("combo_subpkg", vectors["subpkg_1"] + vectors["subpkg_2"], 7)
seed("combo_subpkg_rev", vectors["subpkg_2"] + vectors["subpkg_1"], 200)
shared = vectors["hb_2013"] + vectors["reg_2019"][1:] + vectors["auth_2019"][1:] + vectors["loc_sc_items"][1:]
seed("combo_shared", shared, 33)
noisy = b"AT+CSQ\r\n" + vectors["bad_cs_esc"] + b"\r\nOK\r\n" + vectors["batch_hy"] + vectors["bad_escape"] + vectors["loc_2019_adas"]
seed("combo_noisy", noisy, 101)


def frame(msg_id, body, is_2019=False, phone="013800138000", flow=1):
    """header + body + checksum, escaped, delimited"""
    attr = len(body) | (0x4000 if is_2019 else 0)
    raw = msg_id.to_bytes(2, "big") + attr.to_bytes(2, "big")
    if is_2019:
        raw += b"\x01" + bytes.fromhex(phone.rjust(20, "0"))
    else:
        raw += bytes.fromhex(phone.rjust(12, "0"))
    raw += flow.to_bytes(2, "big") + body
    x = 0
    for c in raw:
        x ^= c
    raw += bytes([x])
    esc = raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + esc + b"\x7e"


# 0x0702 bodies of SmallChi/JT808 JT808_0x0702Test.cs (2013, 2019) and our 2011 layout
drivers = {
    "drv_removed": ("02180816091616", False),
    "drv_readfail": ("0118081609161601", False),
    "drv_2013": ("0118081609161600056B6F696B6571776531323334353661616100000000000000000671776572747820180816", False),
    "drv_2019": ("0119120111111100056B6F696B65717765313233343536616161000000000000000006717765727478201912013132333435363738393031323334353637000000", True),
    "drv_2011": ("04c0eecbc4" + "3131303130313139393030333037313233340000" + "4331323334353637383930" + "00" * 29 + "0cb1b1bea9cad0bdbbcda8ceaf", False),
}
for name, (body, v19) in drivers.items():
    seed(name, frame(0x0702, bytes.fromhex(body), v19))
# traccar's OBD report holds a raw 7E (traccar feeds it unframed): on the wire it splits in two
seed("tc_obd_raw7e", bytes.fromhex(
    "7e0200008e01917159043700b300000000800000030158990606ca0fd700040000000021112911170501"
    "0400000000cc14383938363037423831303230393031363239363830010d8001aa810213888202008583"
    "01148401aa8502189b8601338702007e8801338901148a0200998b113132333435363738394142434445"
    "4647488c04000200a88d0200828e0114a00b50353338662c5530323966037e"))
print(len(os.listdir(OUT)), "seeds in", OUT)
