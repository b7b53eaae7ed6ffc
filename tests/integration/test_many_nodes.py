#!/usr/bin/env python3
"""Many nodes (README, "Many nodes"; docs/ownership.md): three `haulwatch serve` daemons sharing a
fresh database and a private Redis, with --ownership true --proxy-protocol true, behind the sample
HAProxy TCP front (ops/haproxy/haulwatch-tcp.cfg, send-proxy-v2, /readyz health checks), all on
loopback ports chosen here.

 1. PROXY v2: a connection straight to a daemon without the header is closed (and counted); one
    with a hand-made header claiming 203.0.113.9 and a wrong token is refused, and the refusal is
    recorded against 203.0.113.9 (auth_refusals), not against loopback.
 2. Six scripted fatigue trucks (haulwatch-sim --scenario tired:300, each with one 5 h drive
    whose 4 h limit is passed once) through the front. Mid-drive the daemon owning most of them
    is killed with SIGKILL: its trucks reconnect through HAProxy to the others, which claim them
    (epoch bumped in terminal_owner, saved rule state loaded, stored fixes replayed).
    Then: the simulator got an ack for every fix it generated (none lost), positions hold exactly
    the generated fixes once each (none stored twice), and every truck has exactly one
    fatigue_continuous episode, closed, of 300 minutes of driving (none lost, none doubled).

    test_many_nodes.py --haulwatch BIN --sim BIN --cfg FILE

Exits 77 (ctest SKIP) only when haproxy is not installed (ops/lib.sh HW_DEPS has it); any other
missing tool or HW_TEST_PG fails. Every process it starts is a child stopped by pid."""
import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

from hwproc import (  # the shared helpers, beside this file
    Fail, check, forget, free_port, run, spawn, stop, stop_all, wait_port)

DB = "hw_test_many_nodes"
TRUCKS = 6
DRIVE_MIN = 300


def log(msg):
    print("test_many_nodes: " + msg, flush=True)


class Pg:
    def __init__(self, psql, conninfo):
        self.psql, self.conninfo = psql, conninfo

    def rows(self, sql):
        out = run([self.psql, "-X", "-q", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", self.conninfo, "-c", sql])
        return [line.split("|") for line in out.splitlines() if line]

    def scalar(self, sql):
        r = self.rows(sql)
        return r[0][0] if r else None


def ready(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/readyz")
        status = c.getresponse().status
        c.close()
        return status == 200
    except OSError:
        return False


def wait_until(what, cond, timeout, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(step)
    raise Fail("%s: not within %.0f s" % (what, timeout))


def proxy_v2_tcp4(src_ip, src_port, dst_ip, dst_port):
    sig = bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
    body = socket.inet_aton(src_ip) + socket.inet_aton(dst_ip) + struct.pack(">HH", src_port, dst_port)
    return sig + bytes([0x21, 0x11]) + struct.pack(">H", len(body)) + body


def pb_string(field, s):
    b = s.encode()
    return bytes([field << 3 | 2, len(b)]) + b


def pb_hello_frame(terminal_id, token):
    hello = pb_string(1, terminal_id) + pb_string(2, token)
    msg = bytes([1 << 3 | 2, len(hello)]) + hello  # ClientMessage.hello
    return bytes([len(msg)]) + msg


def closed_by_peer(sock, timeout=5.0):
    """True once the daemon closes the connection (reads until EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--haulwatch", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--cfg", required=True)
    args = ap.parse_args()

    tools = {t: shutil.which(t) for t in ("haproxy", "redis-server", "psql")}
    if not tools["haproxy"]:
        log("SKIP: haproxy is not installed (ops/lib.sh HW_DEPS lists it)")
        return 77
    pg_admin = os.environ.get("HW_TEST_PG")
    check(pg_admin, "HW_TEST_PG is not set (./ops/test sets it): this test needs a PostgreSQL")
    missing = [t for t, p in tools.items() if not p]
    check(not missing, "missing tools: %s (ops/lib.sh HW_DEPS installs them)" % " ".join(missing))

    tmp = tempfile.mkdtemp(prefix="hw-test-many-nodes-")
    log("work dir %s" % tmp)
    ok = False
    try:
        body(args, pg_admin, tools, tmp)
        ok = True
    finally:
        stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log"):
                    with open(os.path.join(tmp, name), errors="replace") as f:
                        tail = f.read()[-4000:]
                    print("---- %s (last 4000 bytes)\n%s" % (name, tail), flush=True)
    return 0


def body(args, pg_admin, tools, tmp):
    run([tools["psql"], "-X", "-q", "-v", "ON_ERROR_STOP=1", pg_admin,
         "-c", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, "-c", "CREATE DATABASE %s" % DB])
    pg = "%s dbname=%s" % (pg_admin, DB)
    db = Pg(tools["psql"], pg)
    run([args.haulwatch, "migrate", "--pg", pg])
    # The trucks as registered heavy trucks (4 h continuous driving limit), bound to the ids the
    # simulator provisions (scn-tired-001..).
    csv = os.path.join(tmp, "registry.csv")
    with open(csv, "w") as f:
        f.write("plate,plate_colour,class,terminal_id,region,enterprise,permit_no,permit_expires,status\n")
        for i in range(1, TRUCKS + 1):
            f.write("苏A2%04d,yellow,heavy_truck,scn-tired-%03d,320100,南京测试物流有限公司,"
                    "苏交运管许可宁字3201000001%02d号,2029-12-31,active\n" % (i, i, i))
    run([args.haulwatch, "registry", "import", csv, "--pg", pg])
    redis_port = free_port()
    redis = spawn("redis", [tools["redis-server"], "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], os.path.join(tmp, "redis.log"))
    wait_port(redis_port, redis)

    names = ("node1", "node2", "node3")
    ports = {n: (free_port(), free_port(), free_port()) for n in names}  # protobuf, metrics, jt808
    nodes = {}
    for n in names:
        pb, metrics, _ = ports[n]
        nodes[n] = spawn(n, [args.haulwatch, "serve", "--listen", "127.0.0.1:%d" % pb,
                             "--metrics-listen", "127.0.0.1:%d" % metrics,
                             "--jt808-listen", "127.0.0.1:%d" % ports[n][2], "--pg", pg,
                             "--redis", "127.0.0.1:%d" % redis_port, "--ownership", "true",
                             "--proxy-protocol", "true", "--node-name", n, "--rule-save-ms", "500",
                             "--stats-interval-s", "0"],
                         os.path.join(tmp, n + ".log"))
    for n in names:
        wait_port(ports[n][0], nodes[n])
        wait_until("%s /readyz" % n, lambda: ready(ports[n][1]), 20)

    # --- 1. PROXY v2 on the daemon's own port
    pb1 = ports["node1"][0]
    with socket.create_connection(("127.0.0.1", pb1), timeout=5) as s:
        s.sendall(pb_hello_frame("nohdr1", "x"))
        check(closed_by_peer(s), "a connection without a PROXY v2 header was not closed")
    with socket.create_connection(("127.0.0.1", pb1), timeout=5) as s:
        s.sendall(proxy_v2_tcp4("203.0.113.9", 40001, "127.0.0.1", pb1) + pb_hello_frame("ghost1", "wrong"))
        check(closed_by_peer(s), "a wrong token behind a PROXY v2 header was not refused")
    wait_until("the refusal recorded against the header's address",
               lambda: db.scalar("SELECT count(*) FROM auth_refusals WHERE remote_addr LIKE '203.0.113.9%'") not in (None, "0"),
               10, 0.2)
    check(db.scalar("SELECT count(*) FROM auth_refusals WHERE remote_addr LIKE '127.0.0.1%'") == "0",
          "a refusal behind a PROXY v2 header was recorded against loopback")
    log("PROXY v2: no header -> closed; refusal recorded against 203.0.113.9")

    # --- 2. the front, the trucks, a node killed mid-drive
    front, front808 = free_port(), free_port()
    henv = dict(os.environ, HW_PB_BIND="127.0.0.1:%d" % front, HW_JT808_BIND="127.0.0.1:%d" % front808,
                HW_HAPROXY_LOG="stdout", HW_HAPROXY_MAXCONN="2000")
    for i, n in enumerate(names, 1):
        henv["HW_NODE%d_PB" % i] = "127.0.0.1:%d" % ports[n][0]
        henv["HW_NODE%d_JT808" % i] = "127.0.0.1:%d" % ports[n][2]
        henv["HW_NODE%d_METRICS" % i] = str(ports[n][1])
    run([tools["haproxy"], "-c", "-f", args.cfg], env=henv)
    hlog = os.path.join(tmp, "haproxy.log")
    haproxy = spawn("haproxy", [tools["haproxy"], "-f", args.cfg, "-db"], hlog, env=henv)
    wait_port(front, haproxy)

    simlog = os.path.join(tmp, "sim.log")
    sim = spawn("sim", [args.sim, "--server", "127.0.0.1:%d" % front, "--pg", pg,
                        "--scenario", "tired:%d" % DRIVE_MIN, "--trucks", str(TRUCKS),
                        "--interval-ms", "4", "--report-fixes", "1", "--window", "200"], simlog)
    # A truck sends about DRIVE_MIN * 6 + 210 fixes (10 s steps); kill when about 40 % are
    # stored: mid-drive, before the 4 h limit, so the episode opens on the node that takes over.
    expect_total = TRUCKS * (DRIVE_MIN * 6 + 200)
    wait_until("40 % of the fixes stored",
               lambda: int(db.scalar("SELECT count(*) FROM positions")) >= expect_total * 4 // 10, 60, 0.1)
    # A daemon with several workers claims as NODE/wN (one name per worker): grouped by node.
    owners = db.rows("SELECT split_part(owner, '/w', 1), count(*) FROM terminal_owner GROUP BY 1 "
                     "ORDER BY 2 DESC, 1")
    log("owners before the kill: %s" % owners)
    victim = owners[0][0]
    moved = [r[0] for r in db.rows("SELECT terminal_id FROM terminal_owner WHERE split_part(owner, '/w', 1) = '%s'" % victim)]
    check(len(moved) >= 1, "no truck on any node")
    stored_before = db.scalar("SELECT count(*) FROM positions")
    nodes[victim].send_signal(signal.SIGKILL)
    nodes[victim].wait()
    forget(nodes[victim])
    log("killed %s (SIGKILL) with %s fixes stored; its trucks: %s" % (victim, stored_before, moved))

    check(sim.wait(120) == 0, "the simulator failed (see sim.log)")
    forget(sim)
    with open(simlog, errors="replace") as f:
        summary = re.search(r"sim: trucks=(\d+) connected=(\d+) sent=(\d+) resent=(\d+) acked=(\d+) "
                            r"unacked=(\d+) .* reconnects=(\d+) refused=(\d+)", f.read())
    check(summary, "no summary line in sim.log")
    trucks, _, sent, resent, acked, unacked, reconnects, refused = map(int, summary.groups())
    log("sim: sent %d (+%d again), acked %d, unacked %d, reconnects %d" % (sent, resent, acked, unacked, reconnects))
    check(unacked == 0 and refused == 0, "fixes unacknowledged or logins refused")
    check(reconnects >= len(moved), "%d reconnects for %d trucks moved" % (reconnects, len(moved)))

    # The last rest closes every episode; the survivors write it within a flush.
    closed_sql = ("SELECT count(*) FROM violations WHERE kind = 'fatigue_continuous' "
                  "AND ended_at IS NOT NULL")
    wait_until("every episode closed", lambda: db.scalar(closed_sql) == str(TRUCKS), 30, 0.2)
    for n in names:
        if n != victim:
            check(stop(nodes[n]) == 0, "%s did not stop cleanly (see %s.log)" % (n, n))

    # --- the guarantees
    stored = int(db.scalar("SELECT count(*) FROM positions"))
    distinct = int(db.scalar("SELECT count(*) FROM (SELECT DISTINCT terminal_id, ts FROM positions) d"))
    check(stored == acked, "%d fixes acknowledged, %d stored" % (acked, stored))
    check(distinct == stored, "%d rows but %d distinct (terminal, time): stored twice" % (stored, distinct))
    per_truck = db.rows("SELECT terminal_id, count(*), min(measured), max(measured), "
                        "bool_and(ended_at IS NOT NULL) FROM violations "
                        "WHERE kind = 'fatigue_continuous' GROUP BY terminal_id ORDER BY 1")
    log("fatigue episodes per truck: %s" % per_truck)
    check(len(per_truck) == TRUCKS, "%d trucks with a fatigue episode, not %d" % (len(per_truck), TRUCKS))
    for tid, count, lo, hi, closed in per_truck:
        check(count == "1", "%s: %s fatigue episodes, not 1" % (tid, count))
        check(float(lo) == DRIVE_MIN * 60 and float(hi) == DRIVE_MIN * 60,
              "%s: episode of %s s of driving, not %d" % (tid, hi, DRIVE_MIN * 60))
        check(closed == "t", "%s: episode not closed" % tid)
    others = db.scalar("SELECT count(*) FROM violations WHERE kind <> 'fatigue_continuous'")
    check(others == "0", "%s unexpected violations" % others)
    for tid in moved:
        epoch, owner = db.rows("SELECT epoch, split_part(owner, '/w', 1) FROM terminal_owner WHERE terminal_id = '%s'" % tid)[0]
        check(int(epoch) >= 2 and owner != victim, "%s: still %s's (epoch %s)" % (tid, owner, epoch))
    claimed = 0
    for n in names:
        if n != victim:
            with open(os.path.join(tmp, n + ".log"), errors="replace") as f:
                claimed += len(re.findall(r"owner .*claimed, epoch", f.read()))
    check(claimed >= len(moved), "the survivors logged %d claims with a state load for %d moved trucks" % (claimed, len(moved)))
    # --- 3. JT/T 808 through its front on the two survivors: authenticated (claimed) and stored.
    survivors = [n for n in names if n != victim]
    for n in survivors:
        nodes[n] = spawn(n + "b", [args.haulwatch, "serve", "--listen", "127.0.0.1:%d" % ports[n][0],
                                   "--metrics-listen", "127.0.0.1:%d" % ports[n][1],
                                   "--jt808-listen", "127.0.0.1:%d" % ports[n][2], "--pg", pg,
                                   "--redis", "127.0.0.1:%d" % redis_port, "--ownership", "true",
                                   "--proxy-protocol", "true", "--node-name", n,
                                   "--stats-interval-s", "0"],
                         os.path.join(tmp, n + "b.log"))
    for n in survivors:
        wait_until("%s /readyz again" % n, lambda: ready(ports[n][1]), 20)
    def jt808_up():
        with open(hlog, errors="replace") as f:
            text = f.read()
        # A restart quicker than two failed checks (fall 2, inter 1s) is never marked DOWN, and
        # so never logged UP again: a survivor is up unless its last state line says DOWN.
        def up(n):
            states = re.findall(r"haulwatch_jt808/%s is (UP|DOWN)" % n, text)
            return not states or states[-1] == "UP"
        return any(up(n) for n in survivors)
    wait_until("HAProxy takes a restarted daemon back for JT/T 808", jt808_up, 15, 0.2)
    out = run([args.sim, "--server", "127.0.0.1:%d" % front808, "--pg", pg, "--protocol", "jt808",
               "--trucks", "4", "--fixes", "30", "--interval-ms", "20", "--step-ms", "1000",
               "--timeout-s", "60", "--quiet"])
    m = re.search(r"acked=(\d+) unacked=(\d+)", out)
    check(m and m.group(1) == "120" and m.group(2) == "0", "jt808 through the front: %s" % out.strip()[:300])
    check(db.scalar("SELECT count(*) FROM positions p JOIN terminal_owner o USING (terminal_id) "
                    "WHERE p.terminal_id LIKE '0138%'") == "120", "jt808 fixes not stored, or not claimed")
    log("JT/T 808 through the front: 4 terminals claimed, 120 fixes acknowledged and stored")
    log("ok: %d fixes acknowledged = stored, none twice; one closed %d-minute fatigue episode per "
        "truck; %d trucks moved from %s" % (stored, DRIVE_MIN, len(moved), victim))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        log("FAIL: " + str(e))
        sys.exit(1)
