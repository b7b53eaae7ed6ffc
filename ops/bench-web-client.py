#!/usr/bin/env python3
"""ops/bench's clients of `haulwatch web` (standard library only): they measure from outside, in a
process of their own, never the load generator's.

    python3 ops/bench-web-client.py latency --port P --token T --track TID [--requests N]
                                            [--limit L] [--expect-vehicles V] [--while-pid PID]
        One keep-alive HTTP/1.1 connection (Authorization: Bearer T), alternating one walk of
        GET /api/v1/vehicles?limit=L through every page (next_cursor until null) with as many
        GET /api/v1/vehicles/TID/track (the last 24 h) as the walk had pages, until N page
        requests and N track requests were made, or, with --while-pid, as soon as PID has
        exited (so that every request was made while that load ran). A request's time runs from
        sending it to the last byte of its answer (the JSON is parsed after, for the cursor and
        the checks). Prints one line per kind:
          vehicles_page n=.. p50_ms=.. p99_ms=.. max_ms=.. bytes=..
          vehicles_walk n=.. p50_ms=.. p99_ms=.. items=..   (a whole walk: every vehicle)
          track n=.. p50_ms=.. p99_ms=.. max_ms=.. fixes=.. bytes=..
        Exits 1 on any answer but 200, or a walk that does not hold --expect-vehicles items.

    python3 ops/bench-web-client.py ready --port P
        Waits until GET /readyz answers 200 (30 s at most).

    python3 ops/bench-web-client.py sse --port P --token T --clients N [--expect FILE]
        N connections to GET /api/v1/stream. Prints "ready" once every one has its 200, then
        reads them all (one thread, selectors, receive buffers of 1 MiB, one round of reads per
        --read-interval-ms, default 50, so that events arriving together cost one recv per
        stream) until SIGTERM or SIGINT,
        keeping the bytes without parsing them, after which it reads on until 1 s passes without
        data (what was sent is received). Then it checks: every stream dechunked, its
        `event: positions` batches parsed (one parse per distinct body: streams with the same
        SHA-256 received the same bytes), each vehicle's newest ts_ms compared with FILE's
        ("terminal_id ts_ms" lines: what the daemon last published, read from Redis by the bench
        after the run; FILE is read only after the stop signal). Prints:
          sse clients=N events=.. bytes=.. min_events=.. max_events=.. batches=..
              min_positions=.. max_positions=.. distinct_streams=.. expected_vehicles=..
              min_latest_ok=.. closed=.. client_cpu_s=.. check_cpu_s=..
        (events: SSE events received (positions batches, violations, resets), in all and per
        client the fewest and most; batches: `event: positions` events of a client at most;
        positions: vehicle positions in them, per client; min_latest_ok: of FILE's vehicles, how
        many had exactly FILE's ts_ms as their newest position, for the worst client; closed:
        streams the server ended, e.g. a client dropped as slow; client_cpu_s: this process's CPU
        time while reading; check_cpu_s: the check's, after the run).
"""
import argparse
import hashlib
import http.client
import json
import selectors
import signal
import socket
import sys
import time
import urllib.parse
from datetime import datetime, timedelta, timezone


def fail(msg):
    print("bench-web-client: error: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def pct(xs, p):
    """Nearest-rank percentile of xs (ms)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def latency(a):
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
    hdrs = {"Authorization": "Bearer " + a.token}
    now = datetime.now(timezone.utc)
    frm = urllib.parse.quote((now - timedelta(days=1, minutes=1)).isoformat(timespec="seconds"))
    to = urllib.parse.quote((now + timedelta(minutes=1)).isoformat(timespec="seconds"))
    track_path = "/api/v1/vehicles/%s/track?from=%s&to=%s" % (urllib.parse.quote(a.track), frm, to)

    def get(path):
        t0 = time.perf_counter()
        c.request("GET", path, headers=hdrs)
        r = c.getresponse()
        body = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            fail("GET %s answered %d: %r" % (path, r.status, body[:200]))
        return ms, body

    pages, walks, tracks = [], [], []
    page_bytes = track_bytes = 0
    items = fixes = None
    running = lambda: a.while_pid is None or alive(a.while_pid)
    while (len(pages) < a.requests or len(tracks) < a.requests) and running():
        cursor, walk_ms, n_items, n_pages = None, 0.0, 0, 0
        while True:
            path = "/api/v1/vehicles?limit=%d" % a.limit
            if cursor:
                path += "&cursor=" + urllib.parse.quote(cursor)
            ms, body = get(path)
            pages.append(ms)
            page_bytes += len(body)
            walk_ms += ms
            n_pages += 1
            doc = json.loads(body)
            n_items += len(doc["items"])
            cursor = doc["next_cursor"]
            if not cursor or not running():
                break
        if not cursor:  # a whole walk
            walks.append(walk_ms)
            if a.expect_vehicles is not None and n_items != a.expect_vehicles:
                fail("a walk of the vehicle list held %d vehicles, expected %d" % (n_items, a.expect_vehicles))
            items = n_items
        for _ in range(n_pages):
            if not running():
                break
            ms, body = get(track_path)
            tracks.append(ms)
            track_bytes += len(body)
            doc = json.loads(body)
            fixes = doc["total"]
            if len(doc["items"]) != fixes or doc.get("thin", 1) != 1:
                fail("the track answered %d of %d fixes (thin %s)" % (len(doc["items"]), fixes, doc.get("thin")))
    c.close()
    print("vehicles_page n=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f bytes=%d"
          % (len(pages), pct(pages, 50), pct(pages, 99), max(pages or [0]), page_bytes // max(1, len(pages))))
    print("vehicles_walk n=%d p50_ms=%.1f p99_ms=%.1f items=%s"
          % (len(walks), pct(walks, 50), pct(walks, 99), items))
    print("track n=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f fixes=%s bytes=%d"
          % (len(tracks), pct(tracks, 50), pct(tracks, 99), max(tracks or [0]), fixes,
             track_bytes // max(1, len(tracks))))


def ready(a):
    """Waits up to 30 s until GET /readyz answers 200 (the database and Redis are connected)."""
    end = time.monotonic() + 30
    while True:
        status = None
        try:
            c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=5)
            c.request("GET", "/readyz")
            status = c.getresponse().status
            c.close()
        except OSError:
            pass
        if status == 200:
            return
        if time.monotonic() > end:
            fail("/readyz still answers %s after 30 s" % status)
        time.sleep(0.1)


def dechunk(raw):
    """The body of a chunked HTTP/1.1 response (raw: every byte received, head included); a chunk
    still arriving at the end is left out."""
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return b""
    i += 4
    parts = []
    while i < len(raw):
        j = raw.find(b"\r\n", i)
        if j < 0:
            break
        size = int(raw[i:j], 16)
        if size == 0 or j + 2 + size > len(raw):
            break
        parts.append(raw[j + 2:j + 2 + size])
        i = j + 2 + size + 2
    return b"".join(parts)


def latest_of(body):
    """terminal id -> (newest ts_ms, positions received), and the batch count, from an SSE body of
    `event: positions` batches ([[tid, ts_ms, lat, lon, speed_kmh, heading], ...])."""
    last, batches = {}, 0
    for frame in body.split(b"\n\n"):
        if b"\nevent: positions\n" not in frame and not frame.startswith(b"event: positions\n"):
            continue
        batches += 1
        data = frame[frame.index(b"\ndata: ") + 7:]
        for p in json.loads(data):
            if len(p) != 6 or not isinstance(p[0], str):
                fail("a position not of the form [tid, ts_ms, lat, lon, speed_kmh, heading]: %r" % (p,))
            ts, n = last.get(p[0], (None, 0))
            last[p[0]] = (p[1] if ts is None or (p[1] is not None and p[1] > ts) else ts, n + 1)
    return last, batches


def sse(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    req = ("GET /api/v1/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
           "Accept: text/event-stream\r\n\r\n" % a.token).encode()
    socks, bufs = [], []
    for i in range(a.clients):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.sendall(req)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                fail("stream %d closed before its headers" % i)
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            fail("stream %d answered %r" % (i, status))
        s.setblocking(False)
        socks.append(s)
        bufs.append([head])
    print("ready", flush=True)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    # While the run lasts, only read and keep the bytes (one recv of up to 1 MiB per wake-up, no
    # parsing): the check below runs once the run is over, outside what the bench measures.
    total_bytes, closed = 0, 0
    idle_since = None  # after the stop signal: read on until 1 s passes without data
    last_round = 0.0
    while closed < len(socks):
        if stop and idle_since is None:
            idle_since = time.monotonic()
        if idle_since is not None and time.monotonic() - idle_since > 1.0:
            break
        # At most one round of reads per --read-interval-ms: what arrived meanwhile (a batch, a
        # burst of violations) waits in the socket buffer and is taken by one recv per stream,
        # instead of one wake-up and one recv per event and stream.
        pause = last_round + a.read_interval_ms / 1000.0 - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        last_round = time.monotonic()
        for key, _ in sel.select(timeout=0.2):
            idle_since = time.monotonic() if stop else None
            i = key.data
            try:
                chunk = key.fileobj.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(key.fileobj)
                closed += 1
                continue
            total_bytes += len(chunk)
            bufs[i].append(chunk)
    for s in socks:
        s.close()
    run_cpu = time.process_time()

    # The check: each client's stream, dechunked; clients whose bodies are identical (same
    # digest) received the same batches, so one parse stands for all of them.
    expect = {}
    if a.expect:
        with open(a.expect) as f:
            for line in f:
                tid, ts = line.split()
                expect[tid] = int(ts)
    parsed = {}
    ev, pos, bat, ok = [], [], [], []
    for b in bufs:
        body = dechunk(b"".join(b))
        ev.append(body.count(b"\nevent: "))
        d = hashlib.sha256(body).digest()
        if d not in parsed:
            last, batches = latest_of(body)
            good = sum(1 for tid, ts in expect.items() if last.get(tid, (None, 0))[0] == ts)
            parsed[d] = (sum(n for _, n in last.values()), batches, good)
        n, batches, good = parsed[d]
        pos.append(n)
        bat.append(batches)
        ok.append(good)
    print("sse clients=%d events=%d bytes=%d min_events=%d max_events=%d batches=%d "
          "min_positions=%d max_positions=%d distinct_streams=%d expected_vehicles=%d "
          "min_latest_ok=%d closed=%d client_cpu_s=%.1f check_cpu_s=%.1f"
          % (len(socks), sum(ev), total_bytes, min(ev), max(ev), max(bat), min(pos), max(pos),
             len(parsed), len(expect), min(ok), closed, run_cpu, time.process_time() - run_cpu),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--port", type=int, required=True)
    lat.add_argument("--token", required=True)
    lat.add_argument("--track", required=True)
    lat.add_argument("--requests", type=int, default=300)
    lat.add_argument("--limit", type=int, default=1000)
    lat.add_argument("--expect-vehicles", type=int)
    lat.add_argument("--while-pid", type=int)
    r = sub.add_parser("ready")
    r.add_argument("--port", type=int, required=True)
    s = sub.add_parser("sse")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--clients", type=int, default=100)
    s.add_argument("--expect", help="file of 'terminal_id ts_ms' lines, read after the stop signal")
    s.add_argument("--read-interval-ms", type=int, default=50)
    a = ap.parse_args()
    {"latency": latency, "sse": sse, "ready": ready}[a.cmd](a)


if __name__ == "__main__":
    main()
