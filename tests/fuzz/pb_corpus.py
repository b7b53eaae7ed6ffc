#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_pb_frame and fuzz_pb_session from hand-encoded protobuf
(proto/haulwatch.proto): Hello, Report (valid, out-of-range and out-of-order fixes), Heartbeat,
a Hello pipelined with a Report, oversize and malformed length prefixes. Run from the repository
root: python3 tests/fuzz/pb_corpus.py (the files are committed; rerun after a protocol change).

fuzz_pb_frame inputs are one control byte then the stream; fuzz_pb_session inputs are two control
bytes (authentication outcome, read size) then the stream (see each target's header comment)."""
import os

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def zz(v):  # sint32
    return (v << 1) ^ (v >> 31)

def key(field, wt):
    return varint(field << 3 | wt)

def f_varint(field, v):
    return key(field, 0) + varint(v)

def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b

def fix(seq, t=1767225600000, lat=39904200, lon=116407400, speed=600, heading=90, driver=None, **kw):
    b = f_varint(1, seq) + f_varint(2, t) + f_varint(3, zz(lat)) + f_varint(4, zz(lon))
    b += f_varint(5, speed) + f_varint(6, heading) + f_varint(7, zz(kw.get('alt', 50)))
    b += f_varint(8, kw.get('alarm', 0)) + f_varint(9, kw.get('status', 3)) + f_varint(10, 12345)
    if driver is not None:
        b += f_bytes(11, driver)
    return b

def hello(tid='TRUCK0001', token='0123456789abcdef0123456789abcdef', ver='seed/1'):
    return f_bytes(1, f_bytes(1, tid) + f_bytes(2, token) + f_bytes(3, ver))

def report(*fixes):
    return f_bytes(2, b''.join(f_bytes(1, f) for f in fixes))

def heartbeat(ms=1767225600000):
    return f_bytes(3, f_varint(1, ms))

def frame(msg):
    return varint(len(msg)) + msg

STREAMS = {
    'hello': frame(hello()),
    'hello_report': frame(hello()) + frame(report(fix(1), fix(2, t=1767225601000))),
    'hello_report_hb': frame(hello()) + frame(report(fix(1))) + frame(heartbeat()) +
                       frame(report(fix(2, driver='D123456'), fix(3, heading=359))),
    'report_first': frame(report(fix(1))),
    'hb_first': frame(heartbeat()),
    'hello_twice': frame(hello()) + frame(hello()),
    'bad_heading': frame(hello()) + frame(report(fix(1, heading=400))),
    'bad_time': frame(hello()) + frame(report(fix(1, t=100))),
    'bad_lat': frame(hello()) + frame(report(fix(1, lat=91000000))),
    'seq_zero': frame(hello()) + frame(report(fix(0))),
    'seq_down': frame(hello()) + frame(report(fix(5), fix(4))),
    'driver_utf8': frame(hello()) + frame(report(fix(1, driver='司机A'))),
    'driver_bad_utf8': frame(hello()) + frame(report(fix(1, driver=b'\xff\xfe'))),
    'driver_long': frame(hello()) + frame(report(fix(1, driver='D' * 40))),
    'empty_report': frame(hello()) + frame(report()),
    'empty_msg': frame(b''),
    'bad_tid': frame(hello(tid='bad id!')),
    'no_token': frame(hello(token='')),
    'garbage': frame(b'\xff\xff\xff'),
    'oversize_prefix': varint(1 << 20) + b'\x0a',
    'long_prefix': b'\xff' * 11,
    'partial': frame(hello())[:7],
}

def write(dirname, prefix, streams):
    os.makedirs(dirname, exist_ok=True)
    for name, data in streams.items():
        with open(os.path.join(dirname, name), 'wb') as f:
            f.write(prefix + data)

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
# fuzz_pb_frame: byte 0 = max_frame 64 KiB (3), split in the middle (32 << 2)
write(os.path.join(root, 'pb_frame'), bytes([3 | 32 << 2]), STREAMS)
# fuzz_pb_session: accept, whole reads; one stream also as 1-byte reads and refused
write(os.path.join(root, 'pb_session'), bytes([0, 0]), STREAMS)
write(os.path.join(root, 'pb_session'), b'', {
    'hello_report_bytewise': bytes([0, 1]) + STREAMS['hello_report'],
    'hello_refused': bytes([2, 0]) + STREAMS['hello_report'],
    'hello_unavailable': bytes([3, 5]) + STREAMS['hello_report'],
})
