#!/usr/bin/env python3
"""Writes the fuzz_jt809_session seed corpus: byte 0 the mode (bits 4-6 the fake's login
decision: 0 accepted, 1-6 refusals and a silent database, 7 accepted with keys; bits 2-3 how
the server closes), byte 1 the read size (0: all at once), then a stream of JT/T 809 frames
from a subordinate platform of access code 0x00010F3B, plain: 0x1001 login, 0x1005 heartbeat,
0x1200 positions (0x1202, 0x1203), 0x1300/0x1301 answer, 0x1400/0x1402 alarm, 0x1003 logout,
and garbage. Run from the repository root: python3 tests/fuzz/jt809_session_corpus.py"""
import os
import struct

OUT = "tests/fuzz/corpus/jt809_session"
CENTER = 0x00010F3B


def crc16(b):
    c = 0xFFFF
    for x in b:
        c ^= x << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def frame(msg_id, body, v19=0, sn=1):
    hl = 30 if v19 else 22
    n = 1 + hl + len(body) + 2 + 1
    raw = (struct.pack(">IIHI", n, sn, msg_id, CENTER) + b"\x01\x00\x00" + b"\x00" + bytes(4) +
           (struct.pack(">Q", 1700000000) if v19 else b"") + body)
    raw += struct.pack(">H", crc16(raw))
    esc = raw.replace(b"\x5a", b"\x5a\x02").replace(b"\x5b", b"\x5a\x01")
    esc = esc.replace(b"\x5e", b"\x5e\x02").replace(b"\x5d", b"\x5e\x01")
    return b"\x5b" + esc + b"\x5d"


def login(v19=0):
    ip = b"127.0.0.1".ljust(32, b"\0")
    body = struct.pack(">I", 81) + b"pw19".ljust(8, b"\0")
    if v19:
        body += struct.pack(">I", CENTER)
    return frame(0x1001, body + ip + struct.pack(">H", 9000), v19)


PLATE = "苏A80901".encode("gbk").ljust(21, b"\0")


def gnss(lon=118796877, lat=32060255):
    return (bytes([0, 7, 12]) + struct.pack(">H", 2026) + bytes([10, 20, 30]) +
            struct.pack(">IIHHIHHII", lon, lat, 60, 58, 123456, 90, 12, 3, 0))


def exg(data_type, data):
    return frame(0x1200, PLATE + b"\x02" + struct.pack(">HI", data_type, len(data)) + data)


def answer():
    data = (b"\x00" + b"ent1".ljust(12, b"\0") + struct.pack(">I", 7) +
            struct.pack(">I", 4) + b"yes.")
    return frame(0x1300, struct.pack(">HI", 0x1301, len(data)) + data)


def alarm():
    data = (b"\x01" + struct.pack(">HQI", 0x0001, 1765000000, 9) + struct.pack(">I", 5) + b"speed")
    return frame(0x1400, PLATE + b"\x02" + struct.pack(">HI", 0x1402, len(data)) + data)


HB = frame(0x1005, b"")
BYE = frame(0x1003, struct.pack(">I", 81) + b"pw19".ljust(8, b"\0"))

os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    os.remove(os.path.join(OUT, name))


def seed(name, mode, split, stream):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([mode, split]) + stream)


full = (login() + HB + exg(0x1202, gnss()) + exg(0x1203, b"\x02" + gnss() + gnss(lon=118800000)) +
        answer() + alarm() + BYE)
# The login is decided at the loop turn after the read that holds it; what comes in the same
# read is "before login" (as on a real link): most seeds read the login alone.
L11, L19 = len(login()), len(login(1))
seed("session_2011", 0x00, L11, full)
seed("session_2011_split", 0x00, 7, full)
seed("session_2011_keys", 0x70, L11, full)
seed("session_2019", 0x04, L19, login(1) + frame(0x1005, b"", 1) + frame(0x1003, b"", 1))
for code in range(1, 7):
    seed("refused_%d" % code, code << 4, L11, login() + HB)
seed("before_login", 0x00, 0, HB + exg(0x1202, gnss()) + login())
seed("garbage", 0x0c, 3, b"\x5b\x00\x01\x5d" + login() + b"AT\r\n\x5a\x5b\x5e" + HB)
seed("relogin", 0x08, L11, login() + login() + HB)
print(len(os.listdir(OUT)), "seeds in", OUT)
