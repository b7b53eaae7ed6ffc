#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_jt808_session from fuzz_jt808's (tests/fuzz/corpus/jt808/,
real frames from other implementations; see jt808_corpus.py): each stream alone, and sessions
that register, authenticate and then send positions, batches, driver cards, sub-packages and
heartbeats. fuzz_jt808 inputs start with one control byte, fuzz_jt808_session inputs with two
(see its header comment). Run from anywhere: python3 tests/fuzz/jt808_session_corpus.py."""
import os

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, 'corpus', 'jt808')
dst = os.path.join(here, 'corpus', 'jt808_session')
os.makedirs(dst, exist_ok=True)

def stream(name):
    with open(os.path.join(src, name), 'rb') as f:
        return f.read()[1:]

def write(name, ctrl, data):
    with open(os.path.join(dst, name), 'wb') as f:
        f.write(bytes(ctrl) + data)

for name in sorted(os.listdir(src)):
    write(name, [0, 0], stream(name))
SESSIONS = {
    'sess_2013': ['reg_2013', 'auth_2013', 'hb_2013', 'loc_sc', 'batch_sc', 'drv_2013', 'logout'],
    'sess_2019': ['reg_2019', 'auth_2019', 'hb_2019', 'loc_2019_hy', 'batch_2019', 'drv_2019'],
    'sess_2011': ['reg_2011', 'auth_2013', 'loc_go', 'batch_go', 'drv_2011', 'drv_removed'],
    'sess_subpkg': ['auth_2013', 'subpkg_1', 'subpkg_2', 'loc_tc_fuel'],
    'sess_before_auth': ['loc_sc', 'batch_sc', 'hb_2013', 'auth_2013', 'loc_sc'],
}

# Coherent sessions of one terminal (phone 013800138000, 2013 layout), built here so that the
# positions come from the terminal that authenticated: register, authenticate with the code the
# fake backend issues, then positions, a batch, a driver card and heartbeats.
PHONE = bytes.fromhex('013800138000')
CODE = b'0123456789abcdef'  # fake_backend.c's registration answer

def frame(msg_id, body, flow):
    raw = msg_id.to_bytes(2, 'big') + len(body).to_bytes(2, 'big') + PHONE + flow.to_bytes(2, 'big') + body
    cs = 0
    for b in raw:
        cs ^= b
    raw += bytes([cs])
    esc = raw.replace(b'\x7d', b'\x7d\x01').replace(b'\x7e', b'\x7d\x02')
    return b'\x7e' + esc + b'\x7e'

def bcd_time(y, mo, d, h, mi, s):
    return bytes(int(str(v % 100).zfill(2), 16) for v in (y, mo, d, h, mi, s))

def location(sec, alarm=0, speed=600, heading=90, lat=39904200, lon=116407400):
    return (alarm.to_bytes(4, 'big') + (3).to_bytes(4, 'big') + lat.to_bytes(4, 'big') +
            lon.to_bytes(4, 'big') + (50).to_bytes(2, 'big') + speed.to_bytes(2, 'big') +
            heading.to_bytes(2, 'big') + bcd_time(26, 1, 1, 8, 0, sec))

def register():
    plate = '冀A12345'.encode('gbk')
    return (bytes([0, 13, 1, 0]) + b'MAKER' + b'MODEL'.ljust(20, b'\0') + b'DEV0001' + bytes([2]) +
            plate)

def batch(*locs):
    b = len(locs).to_bytes(2, 'big') + bytes([0])
    for l in locs:
        b += len(l).to_bytes(2, 'big') + l
    return b

def driver():
    name = '张三'.encode('gbk')
    return (bytes([1]) + bcd_time(26, 1, 1, 7, 59, 0) + bytes([0, len(name)]) + name +
            b'QUAL00000000000000001' [:20] + bytes([4]) + b'DEPT' + bytes([0x20, 0x30, 0x12, 0x31]))

own = {
    'own_reg_auth_loc': frame(0x0100, register(), 1) + frame(0x0102, CODE, 2) +
                        frame(0x0200, location(0), 3) + frame(0x0002, b'', 4) +
                        frame(0x0200, location(1, alarm=1), 5),
    'own_auth_batch_driver': frame(0x0102, CODE, 1) + frame(0x0704, batch(location(2), location(3)), 2) +
                             frame(0x0702, driver(), 3) + frame(0x0200, location(4), 4),
    'own_loc_before_auth': frame(0x0200, location(0), 1) + frame(0x0102, CODE, 2) +
                           frame(0x0200, location(0), 3) + frame(0x0200, location(0, alarm=1), 4),
    'own_bad_fix': frame(0x0102, CODE, 1) + frame(0x0200, location(5, heading=400, lat=95000000), 2),
}
for name, data in own.items():
    write(name, [0, 0], data)
    write(name + '_bytewise', [0, 1], data)
    write(name + '_refused', [1, 0], data)

for name, parts in SESSIONS.items():
    data = b''.join(stream(p) for p in parts)
    write(name, [0, 0], data)
    write(name + '_bytewise', [0, 1], data)
    write(name + '_refused', [1, 7], data)
    write(name + '_down_shutdown', [2 | 3 << 2, 0], data)
