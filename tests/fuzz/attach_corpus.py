#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_attach (tests/fuzz/corpus/attach/): uploads of terminal
013800138000 (online in the target) built from the bodies SmallChi/JTActiveSafety's tests assert
(src/JT808.Protocol.Extensions.JTActiveSafety.Test/JT808_0x1210_Test.cs, JT808_0x1211_Test.cs),
with data frames (src/JTActiveSafety.Protocol.Test/JTActiveSafetySerializerTest.cs layout), a lost
piece, resends, names that try to leave the directory and claims beyond the target's limits.
Inputs start with two control bytes (see fuzz_attach.c). Run from anywhere."""
import os

here = os.path.dirname(os.path.abspath(__file__))
dst = os.path.join(here, 'corpus', 'attach')
os.makedirs(dst, exist_ok=True)
PHONE = bytes.fromhex('013800138000')

def frame(msg_id, body, flow):
    raw = msg_id.to_bytes(2, 'big') + len(body).to_bytes(2, 'big') + PHONE + flow.to_bytes(2, 'big') + body
    cs = 0
    for b in raw:
        cs ^= b
    raw += bytes([cs])
    return b'\x7e' + raw.replace(b'\x7d', b'\x7d\x01').replace(b'\x7e', b'\x7d\x02') + b'\x7e'

ALARM = b'4444444' + bytes.fromhex('191210183100') + bytes([3, 2, 1])
UNIQUE = b'1' * 32

def listing(files):
    b = b'4444444' + ALARM + UNIQUE + bytes([0, len(files)])
    for name, size in files:
        b += bytes([len(name)]) + name + size.to_bytes(4, 'big')
    return b

def info(name, size, typ=0):
    return bytes([len(name)]) + name + bytes([typ]) + size.to_bytes(4, 'big')

def data(name, off, payload, left_pad=False):
    n = name.rjust(50, b'\0') if left_pad else name.ljust(50, b'\0')
    return b'\x30\x31\x63\x64' + n + off.to_bytes(4, 'big') + len(payload).to_bytes(4, 'big') + payload

def write(name, ctrl, stream):
    with open(os.path.join(dst, name), 'wb') as f:
        f.write(bytes(ctrl) + stream)

A, B = b'00_65_6501_0_x.jpg', b'02_65_6501_1_x.mp4'
body = bytes(range(256)) * 4
full = (frame(0x1210, listing([(A, 1024), (B, 600)]), 1) + frame(0x1211, info(A, 1024), 2) +
        data(A, 0, body[:512]) + data(A, 512, body[512:]) + frame(0x1212, info(A, 1024), 3) +
        frame(0x1211, info(B, 600, 2), 4) + data(B, 0, body[:600], True) + frame(0x1212, info(B, 600, 2), 5))
write('upload', [0, 0], full)
write('upload_split', [0, 7], full)
write('upload_db_down', [1, 0], full)
lost = (frame(0x1210, listing([(A, 1024)]), 1) + frame(0x1211, info(A, 1024), 2) + data(A, 0, body[:300]) +
        data(A, 600, body[600:]) + frame(0x1212, info(A, 1024), 3) + data(A, 300, body[300:600]) +
        frame(0x1212, info(A, 1024), 4))
write('lost_piece', [0, 0], lost)
write('lost_piece_split', [0, 61], lost)
write('vector_1210', [0, 0], frame(0x1210, bytes.fromhex(
    '3434343434343434343434343434191210183100030201' + '31' * 32 + '00020866696C656E616D65000000090966696C656E616D65310000000A'), 1)
    + frame(0x1211, bytes.fromhex('0866696C656E616D650000000009'), 2) + data(b'filename', 0, b'123456789'))
evil = b'../../etc/x.jpg'
write('traversal', [0, 0], frame(0x1210, listing([(evil, 10)]), 1) + frame(0x1210, listing([(A, 10)]), 2) +
      frame(0x1211, info(A, 10), 3) + data(evil, 0, b'0123456789'))
write('too_big', [0, 0], frame(0x1210, listing([(A, 5000)]), 1) + frame(0x1210, listing([(A, 10)] * 5), 2))
write('outside', [0, 0], frame(0x1210, listing([(A, 10)]), 1) + frame(0x1211, info(A, 10), 2) + data(A, 5, b'0123456789'))
write('before_list', [0, 0], data(A, 0, b'abc') + frame(0x1211, info(A, 10), 1))
