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
for name, parts in SESSIONS.items():
    data = b''.join(stream(p) for p in parts)
    write(name, [0, 0], data)
    write(name + '_bytewise', [0, 1], data)
    write(name + '_refused', [1, 7], data)
    write(name + '_down_shutdown', [2 | 3 << 2, 0], data)
